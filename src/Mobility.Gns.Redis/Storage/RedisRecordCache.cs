using System.Collections.Concurrent;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Redis.Storage;

/// <summary>What a GNS process last knew of one GUID in Redis: whether a record hash exists, its version, and the live record (null for a tombstone).</summary>
internal sealed class RedisCachedState(bool exists, ulong version, GnsRecord? record, long filledAt)
{
    public bool Exists { get; } = exists;

    public ulong Version { get; } = version;

    public GnsRecord? Record { get; } = record;

    /// <summary>TimeProvider timestamp of the read (or change) that produced this state.</summary>
    public long FilledAt { get; } = filledAt;

    /// <summary>Set on every hit; the clock hand clears it and spares the entry once (second chance).</summary>
    public bool Referenced { get; set; }
}

/// <summary>
/// The Redis store's in-process read cache: states by GUID and name → GUID hints, bounded, kept current
/// by the change feed (<see cref="Watch.RedisRecordChangeFeed"/>) that every GNS process already
/// subscribes to. It serves only while the feed is <em>live</em>, i.e. while every change another process
/// publishes is known to reach this one: the feed turns it on once its own probe has come back on every
/// channel, and off (dropping everything) as soon as a connection fails or a probe goes unanswered. Off,
/// every read goes to Redis.
/// <list type="bullet">
/// <item>A change (from the feed, or this process's own commit) replaces an older cached state of its GUID
/// and bumps the GUID's stripe counter; a reader's fill is refused when the stripe or the live epoch moved
/// since the reader started, so a read that raced a change can never put an older state back, even if the
/// newer entry was evicted meanwhile.</item>
/// <item>Cached versions are lower bounds of the truth in Redis (versions only grow, changes are applied
/// only once committed), so a stale entry can only lag, never lead.</item>
/// <item>Entries older than <see cref="RedisGnsOptions.CacheMaxAge"/> are read again: the backstop for a
/// change committed by a process that died before publishing it.</item>
/// </list>
/// Eviction is CLOCK (second chance) over insertion order, as in the SQLite store's cache.
/// </summary>
internal sealed class RedisRecordCache
{
    /// <summary>Stripes of change counters; more stripes make a refused fill (a harmless extra miss) rarer.</summary>
    private const int StripeCount = 256;

    private readonly int _capacity;
    private readonly TimeSpan _maxAge;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<HostGuid, RedisCachedState> _entries = new();
    private readonly ConcurrentDictionary<string, HostGuid> _names = new(StringComparer.Ordinal);
    private readonly Queue<HostGuid> _clock = new();
    private readonly long[] _stripes = new long[StripeCount];
    private readonly Lock _gate = new();
    private long _epoch;
    private volatile bool _live;

    public RedisRecordCache(int capacity, TimeSpan maxAge, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxAge, TimeSpan.Zero);
        ArgumentNullException.ThrowIfNull(time);
        _capacity = capacity;
        _maxAge = maxAge;
        _time = time;
    }

    /// <summary>True while the change feed vouches for the cache; false before the feed is live and after it lost contact.</summary>
    public bool IsLive => _live;

    public int Count => _entries.Count;

    public int NameCount => _names.Count;

    /// <summary>Times the cache was dropped because the feed lost contact.</summary>
    public long Invalidations { get; private set; }

    /// <summary>The GUID's cached state, if the cache is live and the state is younger than the maximum age.</summary>
    public bool TryGet(HostGuid guid, out RedisCachedState state)
    {
        if (_live && _entries.TryGetValue(guid, out state!) && _time.GetElapsedTime(state.FilledAt) < _maxAge)
        {
            state.Referenced = true;
            return true;
        }

        state = null!;
        return false;
    }

    /// <summary>The GUID last seen holding <paramref name="name"/>: a hint, to be checked against that GUID's record.</summary>
    public bool TryGetName(string name, out HostGuid guid)
    {
        guid = default;
        return _live && _names.TryGetValue(name, out guid);
    }

    /// <summary>Taken before reading a GUID from Redis; <see cref="TryFill"/> refuses the result if anything changed since.</summary>
    public FillToken Stamp(HostGuid guid)
    {
        // The epoch first: a change of liveness after this read moves it, a change of the GUID moves the stripe.
        var epoch = Volatile.Read(ref _epoch);
        return new FillToken(_live ? epoch : -1, Volatile.Read(ref _stripes[Stripe(guid)]), _time.GetTimestamp());
    }

    /// <summary>Caches what a reader loaded, unless the cache was off at the stamp, or a change or an invalidation came since.</summary>
    public void TryFill(HostGuid guid, bool exists, ulong version, GnsRecord? record, FillToken token, string? name = null)
    {
        if (_capacity == 0 || token.Epoch < 0)
        {
            return;
        }

        lock (_gate)
        {
            if (token.Epoch != _epoch || _stripes[Stripe(guid)] != token.Stripe)
            {
                return;
            }

            if (_entries.TryGetValue(guid, out var current))
            {
                if (current.Version > version || (current.Version == version && current.Exists == exists && current.FilledAt >= token.At))
                {
                    return;
                }

                var replacement = new RedisCachedState(exists, version, record, token.At) { Referenced = current.Referenced };
                _entries[guid] = replacement;
                DropNameOf(guid, current.Record, record);
            }
            else
            {
                Insert(guid, new RedisCachedState(exists, version, record, token.At));
            }

            if (name is not null && record?.Name == name)
            {
                _names[name] = guid;
            }
        }
    }

    /// <summary>
    /// A committed change of <paramref name="guid"/> (a live record, or a tombstone when <paramref name="record"/>
    /// is null): replaces an older cached state, and makes every read in flight for the GUID's stripe
    /// refill later. GUIDs that are not cached are not added: a process need not hold every change it hears.
    /// </summary>
    public void Apply(HostGuid guid, ulong version, GnsRecord? record)
    {
        lock (_gate)
        {
            _stripes[Stripe(guid)]++;
            if (_entries.TryGetValue(guid, out var current) && (!current.Exists || current.Version < version))
            {
                _entries[guid] = new RedisCachedState(true, version, record, _time.GetTimestamp()) { Referenced = current.Referenced };
                DropNameOf(guid, current.Record, record);
            }
        }
    }

    /// <summary>The feed vouches for the cache from now on: it starts empty.</summary>
    public void GoLive()
    {
        lock (_gate)
        {
            ClearLocked();
            _live = true;
        }
    }

    /// <summary>The feed lost contact (or was never live): drop everything and serve nothing until <see cref="GoLive"/>.</summary>
    public void GoOffline()
    {
        lock (_gate)
        {
            if (_live)
            {
                Invalidations++;
            }

            _live = false;
            ClearLocked();
        }
    }

    private void ClearLocked()
    {
        _epoch++;
        _entries.Clear();
        _names.Clear();
        _clock.Clear();
    }

    /// <summary>Forgets the name hint of the previous record when the new state no longer holds that name.</summary>
    private void DropNameOf(HostGuid guid, GnsRecord? previous, GnsRecord? next)
    {
        if (previous?.Name is { } name && next?.Name != name && _names.TryGetValue(name, out var owner) && owner == guid)
        {
            _names.TryRemove(name, out _);
        }
    }

    private void Insert(HostGuid guid, RedisCachedState state)
    {
        while (_entries.Count >= _capacity && _clock.TryDequeue(out var candidate))
        {
            if (_entries.TryGetValue(candidate, out var victim) && victim.Referenced)
            {
                victim.Referenced = false;
                _clock.Enqueue(candidate);
            }
            else if (_entries.TryRemove(candidate, out var evicted))
            {
                // Name hints live only as long as their GUID's entry, so they are bounded by the capacity too.
                DropNameOf(candidate, evicted.Record, null);
            }
        }

        _entries[guid] = state;
        _clock.Enqueue(guid);
    }

    private static int Stripe(HostGuid guid) => (int)((uint)guid.GetHashCode() % StripeCount);

    /// <param name="Epoch">The live epoch at the stamp, or -1 when the cache was off (the fill will be refused).</param>
    internal readonly record struct FillToken(long Epoch, long Stripe, long At);
}
