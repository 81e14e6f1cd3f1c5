using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Client;

/// <summary>
/// Verified records kept for their TTL (capped), indexed by GUID and by name. Bounded: a full cache
/// drops expired entries, then the entry closest to expiry. Never replaces a record with an older
/// version, so a late reply or watch event cannot roll the cache back. Thread-safe (one lock; the
/// work under it is small).
/// </summary>
internal sealed class RecordCache
{
    private readonly Dictionary<HostGuid, Entry> _byGuid = [];
    private readonly Dictionary<string, HostGuid> _byName = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly int _maxEntries;
    private readonly TimeSpan _maxTtl;

    public RecordCache(TimeProvider time, int maxEntries, TimeSpan maxTtl)
    {
        _time = time;
        _maxEntries = maxEntries;
        _maxTtl = maxTtl;
    }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _byGuid.Count;
            }
        }
    }

    public bool TryGet(HostGuid guid, out GnsRecord? record)
    {
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            if (_byGuid.TryGetValue(guid, out var entry))
            {
                if (entry.ExpiresAt > now)
                {
                    record = entry.Record;
                    return true;
                }

                RemoveLocked(guid);
            }
        }

        record = null;
        return false;
    }

    /// <param name="name">Canonical (lowercase) name.</param>
    public bool TryGetByName(string name, out GnsRecord? record)
    {
        HostGuid guid;
        lock (_lock)
        {
            if (!_byName.TryGetValue(name, out guid))
            {
                record = null;
                return false;
            }
        }

        return TryGet(guid, out record) && record!.Name == name;
    }

    /// <summary>Caches a verified record for its TTL; a TTL of 0 drops any older cached version instead.</summary>
    public void Set(GnsRecord record)
    {
        var ttl = TimeSpan.FromSeconds(record.TtlSeconds);
        if (ttl > _maxTtl)
        {
            ttl = _maxTtl;
        }

        var now = _time.GetTimestamp();
        lock (_lock)
        {
            if (_byGuid.TryGetValue(record.Guid, out var existing))
            {
                if (existing.Record.Version > record.Version && existing.ExpiresAt > now)
                {
                    return;
                }

                RemoveLocked(record.Guid);
            }

            if (ttl <= TimeSpan.Zero)
            {
                return;
            }

            if (_byGuid.Count >= _maxEntries)
            {
                MakeRoomLocked(now);
            }

            var expires = now + (long)(ttl.TotalSeconds * _time.TimestampFrequency);
            _byGuid[record.Guid] = new Entry(record, expires);
            if (record.Name is { } name)
            {
                _byName[name] = record.Guid;
            }
        }
    }

    public void Remove(HostGuid guid)
    {
        lock (_lock)
        {
            RemoveLocked(guid);
        }
    }

    /// <summary>Drops the cached record unless it is newer than <paramref name="version"/> (a removal's tombstone version).</summary>
    public void RemoveUpTo(HostGuid guid, ulong version)
    {
        lock (_lock)
        {
            if (_byGuid.TryGetValue(guid, out var entry) && entry.Record.Version <= version)
            {
                RemoveLocked(guid);
            }
        }
    }

    private void RemoveLocked(HostGuid guid)
    {
        if (_byGuid.Remove(guid, out var entry) && entry.Record.Name is { } name
            && _byName.TryGetValue(name, out var owner) && owner == guid)
        {
            _byName.Remove(name);
        }
    }

    private void MakeRoomLocked(long now)
    {
        List<HostGuid>? expired = null;
        var soonest = default(HostGuid);
        var soonestAt = long.MaxValue;
        foreach (var (guid, entry) in _byGuid)
        {
            if (entry.ExpiresAt <= now)
            {
                (expired ??= []).Add(guid);
            }
            else if (entry.ExpiresAt < soonestAt)
            {
                soonestAt = entry.ExpiresAt;
                soonest = guid;
            }
        }

        if (expired is not null)
        {
            foreach (var guid in expired)
            {
                RemoveLocked(guid);
            }
        }

        if (_byGuid.Count >= _maxEntries && soonestAt != long.MaxValue)
        {
            RemoveLocked(soonest);
        }
    }

    private readonly record struct Entry(GnsRecord Record, long ExpiresAt);
}
