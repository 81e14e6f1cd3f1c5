using System.Net;
using Mobility.Gns.Storage;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using StackExchange.Redis;

namespace Mobility.Gns.Redis.Storage;

public sealed partial class RedisGnsStore
{
    /// <summary>Most index entries read in one ZRANGEBYLEX: bounds one reply's size.</summary>
    private const int MaxReverseChunk = 512;

    /// <summary>
    /// Up to <paramref name="limit"/> GUIDs, in ascending order, whose live records carry the address.
    /// Candidates come from the index in GUID order; each is checked against its record (entry version ==
    /// record version, record live, address present) and invalid entries are deleted as they are met.
    /// At most <see cref="RedisGnsOptions.ReverseScanFactor"/> x (limit + 1) + <see cref="RedisGnsOptions.ReverseScanSlack"/>
    /// entries are examined; a lookup that hits that bound says Truncated.
    /// </summary>
    public async ValueTask<ReverseResult> ReverseAsync(IPAddress address, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        var normalized = Locator.Normalize(address);
        var key = _keys.Address(normalized);
        var budget = ((long)_options.ReverseScanFactor * ((long)limit + 1)) + _options.ReverseScanSlack;
        var found = new List<HostGuid>();
        var scanned = 0L;
        // default(RedisValue) is "-" (the lowest member) for min and "+" for max.
        RedisValue start = default;
        var startExclusive = false;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var take = (int)Math.Min(Math.Clamp((long)limit + 1 - found.Count + 8, 16, MaxReverseChunk), Math.Max(1, budget - scanned));
            var entries = await _db.SortedSetRangeByValueAsync(key, start, default, startExclusive ? Exclude.Start : Exclude.None, Order.Ascending, 0, take)
                .ConfigureAwait(false);
            if (entries.Length == 0)
            {
                return new ReverseResult(found, false);
            }

            scanned += entries.Length;
            var candidates = new List<(RedisValue Entry, HostGuid Guid, ulong Version)>(entries.Length);
            foreach (var entry in entries)
            {
                if (RedisKeys.TryParseEntry((string?)entry, out var guid, out var version))
                {
                    candidates.Add(((RedisValue)entry, guid, version));
                }
                else
                {
                    Log.CorruptIndexEntry(_logger, normalized.ToString(), (string?)entry ?? "");
                    _ = _db.SortedSetRemoveAsync(key, entry, CommandFlags.FireAndForget);
                }
            }

            var guids = candidates.Select(c => c.Guid).Distinct().ToArray();
            var records = await Task.WhenAll(guids.Select(g => ReadLiveAsync(g))).ConfigureAwait(false);
            var byGuid = new Dictionary<HostGuid, GnsRecord?>(guids.Length);
            for (var i = 0; i < guids.Length; i++)
            {
                byGuid[guids[i]] = records[i].Record;
            }

            foreach (var (entry, guid, version) in candidates)
            {
                var record = byGuid[guid];
                if (record is not null && record.Version == version && record.HasAddress(normalized))
                {
                    if (found.Count > 0 && found[^1] == guid)
                    {
                        continue;
                    }

                    found.Add(guid);
                    if (found.Count > limit)
                    {
                        found.RemoveAt(found.Count - 1);
                        return new ReverseResult(found, true);
                    }
                }
                else
                {
                    // Invalid for good: the record moved past this version (or never held the address at it).
                    _ = _db.SortedSetRemoveAsync(key, entry, CommandFlags.FireAndForget);
                }
            }

            if (entries.Length < take)
            {
                return new ReverseResult(found, false);
            }

            if (scanned >= budget)
            {
                Log.ReverseScanBounded(_logger, normalized.ToString(), scanned);
                return new ReverseResult(found, true);
            }

            start = entries[^1];
            startExclusive = true;
        }
    }

    /// <summary>Adds the entries of <paramref name="current"/> and deletes the exact entries of <paramref name="previous"/>.</summary>
    private async Task IndexAsync(GnsRecord? current, GnsRecord? previous)
    {
        var tasks = new List<Task>();
        if (current is not null)
        {
            var entry = RedisKeys.Entry(current.Guid, current.Version);
            foreach (var address in RedisKeys.IndexedAddresses(current))
            {
                tasks.Add(_db.SortedSetAddAsync(_keys.Address(address), entry, 0));
            }
        }

        if (previous is not null && previous.Version != current?.Version)
        {
            var entry = RedisKeys.Entry(previous.Guid, previous.Version);
            foreach (var address in RedisKeys.IndexedAddresses(previous))
            {
                tasks.Add(_db.SortedSetRemoveAsync(_keys.Address(address), entry));
            }
        }

        await Task.WhenAll(tasks).ConfigureAwait(false);
    }
}
