namespace Mobility.Net.Caching;

/// <summary>
/// A table of at most <see cref="Capacity"/> entries, each kept for the lifetime it was stored with
/// (on a <see cref="TimeProvider"/>, so tests run on virtual time). A full table first drops expired
/// entries, then the one that expires first, so memory stays bounded whatever keys arrive. An expired
/// entry is never returned. Thread-safe (one lock; the work under it is a dictionary operation, and a
/// scan only when the table is full).
/// </summary>
public sealed class ExpiringCache<TKey, TValue>
    where TKey : notnull
{
    private readonly Lock _gate = new();
    private readonly Dictionary<TKey, (TValue Value, long Expires)> _entries;
    private readonly TimeProvider _time;

    public ExpiringCache(int capacity, TimeProvider time, IEqualityComparer<TKey>? comparer = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentNullException.ThrowIfNull(time);
        Capacity = capacity;
        _time = time;
        _entries = new Dictionary<TKey, (TValue, long)>(comparer);
    }

    public int Capacity { get; }

    /// <summary>Entries held, expired ones not yet dropped included.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>The value stored for <paramref name="key"/> while it has not expired; an expired entry is dropped.</summary>
    public bool TryGet(TKey key, out TValue value)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(key, out var entry))
            {
                if (_time.GetTimestamp() < entry.Expires)
                {
                    value = entry.Value;
                    return true;
                }

                _entries.Remove(key);
            }
        }

        value = default!;
        return false;
    }

    /// <summary>Stores <paramref name="value"/> for <paramref name="lifetime"/>; a lifetime of zero or less stores nothing.</summary>
    public void Set(TKey key, TValue value, TimeSpan lifetime)
    {
        if (lifetime <= TimeSpan.Zero)
        {
            return;
        }

        var now = _time.GetTimestamp();
        var ticks = lifetime.TotalSeconds * _time.TimestampFrequency;
        var expires = ticks >= long.MaxValue - now ? long.MaxValue : now + (long)ticks;
        lock (_gate)
        {
            if (_entries.Count >= Capacity && !_entries.ContainsKey(key))
            {
                foreach (var stale in _entries.Where(e => e.Value.Expires <= now).Select(e => e.Key).ToArray())
                {
                    _entries.Remove(stale);
                }

                if (_entries.Count >= Capacity)
                {
                    _entries.Remove(_entries.MinBy(e => e.Value.Expires).Key);
                }
            }

            _entries[key] = (value, expires);
        }
    }

    public bool Remove(TKey key)
    {
        lock (_gate)
        {
            return _entries.Remove(key);
        }
    }

    /// <summary>Drops every entry whose key matches <paramref name="match"/>; returns how many.</summary>
    public int RemoveWhere(Func<TKey, bool> match)
    {
        ArgumentNullException.ThrowIfNull(match);
        lock (_gate)
        {
            var keys = _entries.Keys.Where(match).ToArray();
            foreach (var key in keys)
            {
                _entries.Remove(key);
            }

            return keys.Length;
        }
    }
}
