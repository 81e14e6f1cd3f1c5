using System.Net;
using Mobility.Gns.Claims;
using Mobility.Gns.Storage;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using StackExchange.Redis;

namespace Mobility.Gns.Redis.Storage;

public sealed partial class RedisGnsStore
{
    /// <summary>
    /// Up to <paramref name="limit"/> GUIDs whose live records carry the address, attested claims first,
    /// each kind in GUID order (<see cref="AddressClaim.CompareRank"/>). The address's claims set is
    /// bounded by <see cref="ClaimLimits"/>; expired unattested claims are skipped. At most
    /// <see cref="RedisGnsOptions.ReverseScanFactor"/> x (limit + 1) + <see cref="RedisGnsOptions.ReverseScanSlack"/>
    /// entries of each kind are read; a lookup that hits that bound says Truncated. Each candidate is
    /// checked against its record (live, address present) and invalid entries are deleted as they are
    /// met (the index is written after the record, so a crash between the two leaves such entries).
    /// </summary>
    public async ValueTask<ReverseResult> ReverseAsync(IPAddress address, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        var normalized = Locator.Normalize(address);
        var key = _keys.Claims(normalized);
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        // The set is bounded by the claim limits plus entries of records that moved on and are not yet
        // cleaned; the scan bound keeps one lookup's work finite whatever the set holds.
        var take = ((long)_options.ReverseScanFactor * ((long)limit + 1)) + _options.ReverseScanSlack;
        var attested = _db.SortedSetRangeByScoreAsync(key, double.NegativeInfinity, -now, Exclude.Stop, Order.Ascending, 0, take);
        var unattested = _db.SortedSetRangeByScoreAsync(key, now, double.PositiveInfinity, Exclude.Start, Order.Ascending, 0, take);
        var ranked = new List<(HostGuid Guid, bool Attested)>();
        var scanBounded = false;
        foreach (var (members, isAttested) in new[] { (await attested.ConfigureAwait(false), true), (await unattested.ConfigureAwait(false), false) })
        {
            if (members.Length == take)
            {
                scanBounded = true;
                RedisGnsLog.ReverseScanBounded(_logger, normalized.ToString(), take);
            }

            var parsed = new List<HostGuid>(members.Length);
            foreach (var member in members)
            {
                if (HostGuid.TryParse((string?)member, out var guid))
                {
                    parsed.Add(guid);
                }
                else
                {
                    RedisGnsLog.CorruptIndexEntry(_logger, normalized.ToString(), (string?)member ?? "");
                    _ = _db.SortedSetRemoveAsync(key, member, CommandFlags.FireAndForget);
                }
            }

            parsed.Sort();
            ranked.AddRange(parsed.Select(g => (g, isAttested)));
        }

        var records = await Task.WhenAll(ranked.Select(c => ReadLiveAsync(c.Guid))).ConfigureAwait(false);
        var found = new List<HostGuid>();
        for (var i = 0; i < ranked.Count; i++)
        {
            if (records[i].Record is { } record && record.HasAddress(normalized))
            {
                found.Add(ranked[i].Guid);
            }
            else
            {
                // Invalid for good: the record was removed or moved off the address.
                _ = _db.SortedSetRemoveAsync(key, ranked[i].Guid.ToString(), CommandFlags.FireAndForget);
            }
        }

        return found.Count > limit ? new ReverseResult(found[..limit], true) : new ReverseResult(found, scanBounded);
    }

    /// <summary>
    /// Indexes the claims of <paramref name="current"/> (arrived from <paramref name="source"/>) by the
    /// rules of <see cref="ClaimRules"/> and deletes the claims of <paramref name="previous"/> that
    /// <paramref name="current"/> no longer makes.
    /// </summary>
    private async Task IndexAsync(GnsRecord? current, GnsRecord? previous, IPAddress? source)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var sourceKey = source is null ? null : ClaimRules.SourceKey(source);
        var kept = current is null ? [] : RedisKeys.IndexedAddresses(current).ToHashSet();
        var tasks = new List<Task>();
        if (current is not null)
        {
            var expires = ClaimRules.Expiry(current.TtlSeconds, now, _claimLimits);
            tasks.AddRange(kept.Select(a => IndexClaimAsync(a, current.Guid, ClaimRules.IsAttested(a, source), now, expires, sourceKey)));
        }

        if (previous is not null)
        {
            foreach (var address in RedisKeys.IndexedAddresses(previous).Where(a => !kept.Contains(a)))
            {
                tasks.Add(_db.SortedSetRemoveAsync(_keys.Claims(address), previous.Guid.ToString()));
                if (sourceKey is not null)
                {
                    // The common case: the claim was counted against the source the host still sends from.
                    tasks.Add(_db.SortedSetRemoveAsync(_keys.Source(sourceKey), RedisKeys.SourceEntry(address, previous.Guid)));
                }
            }
        }

        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    private async Task IndexClaimAsync(IPAddress address, HostGuid guid, bool attested, long now, long expires, IPAddress? sourceKey)
    {
        var key = _keys.Claims(address);
        var outcome = (string?)await _db.ScriptEvaluateAsync(RedisScripts.IndexClaim, [key],
            [guid.ToString(), attested ? "1" : "0", now, expires, _claimLimits.MaxAttestedPerAddress, _claimLimits.MaxUnattestedPerAddress])
            .ConfigureAwait(false);
        if (sourceKey is null || outcome is not ("added" or "kept"))
        {
            return;
        }

        if (outcome == "kept")
        {
            // An incumbent stays counted where it was; refresh its expiry there if that is this source.
            await _db.SortedSetAddAsync(_keys.Source(sourceKey), RedisKeys.SourceEntry(address, guid), expires, SortedSetWhen.Exists).ConfigureAwait(false);
            return;
        }

        var counted = (long)await _db.ScriptEvaluateAsync(RedisScripts.CountSourceClaim, [_keys.Source(sourceKey)],
            [RedisKeys.SourceEntry(address, guid), now, expires, _claimLimits.MaxUnattestedPerSource]).ConfigureAwait(false);
        if (counted == 0)
        {
            // The source is full: take the new claim back out (only if it is still the one added here).
            await _db.ScriptEvaluateAsync(RedisScripts.RemoveClaimIfScore, [key], [guid.ToString(), expires]).ConfigureAwait(false);
        }
    }
}
