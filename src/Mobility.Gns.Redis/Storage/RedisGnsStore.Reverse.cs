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
    /// met (the index is written after the record, so a crash between the two leaves such entries), unless
    /// a newer version of the GUID wrote the claim after the record was read.
    /// </summary>
    public async ValueTask<ReverseResult> ReverseAsync(IPAddress address, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        var normalized = Locator.Normalize(address);
        var key = _keys.Claims(normalized);
        var versionsKey = _keys.ClaimVersions(normalized);
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
                    _ = _db.ScriptEvaluateAsync(RedisScripts.RemoveClaim, [key, versionsKey], [member, AnyVersion], CommandFlags.FireAndForget);
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
                // Invalid: the record read (at its version) was removed or does not carry the address. An update
                // past that version may have written the claim since; RemoveClaim keeps such a claim.
                RedisValue seen = records[i].Version is { } version ? RedisKeys.Version(version) : AnyVersion;
                _ = _db.ScriptEvaluateAsync(RedisScripts.RemoveClaim, [key, versionsKey], [ranked[i].Guid.ToString(), seen], CommandFlags.FireAndForget);
            }
        }

        return found.Count > limit ? new ReverseResult(found[..limit], true) : new ReverseResult(found, scanBounded);
    }

    /// <summary>The highest version: a claim whose GUID has no record (or an unreadable one) is removed whoever wrote it.</summary>
    private static readonly RedisValue AnyVersion = RedisKeys.Version(ulong.MaxValue);

    /// <summary>
    /// Indexes the claims of <paramref name="current"/> (arrived from <paramref name="source"/>) by the
    /// rules of <see cref="ClaimRules"/> and deletes the claims of <paramref name="previous"/> that
    /// <paramref name="current"/> no longer makes. <paramref name="version"/> is the version just stored
    /// (the record's, or a tombstone's): claims are written and withdrawn in its name, so that a slower
    /// update of an older version can neither withdraw nor overwrite the claims of a newer one (two GNS
    /// processes indexing consecutive versions of one GUID at the same time).
    /// </summary>
    internal async Task IndexAsync(GnsRecord? current, GnsRecord? previous, IPAddress? source, ulong version)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var sourceKey = source is null ? null : ClaimRules.SourceKey(source);
        var kept = current is null ? [] : RedisKeys.IndexedAddresses(current).ToHashSet();
        var tasks = new List<Task>();
        if (current is not null)
        {
            var expires = ClaimRules.Expiry(current.TtlSeconds, now, _claimLimits);
            tasks.AddRange(kept.Select(a => IndexClaimAsync(a, current.Guid, ClaimRules.IsAttested(a, source), now, expires, sourceKey, version)));
        }

        if (previous is not null)
        {
            foreach (var address in RedisKeys.IndexedAddresses(previous).Where(a => !kept.Contains(a)))
            {
                tasks.Add(WithdrawClaimAsync(address, previous.Guid, version, sourceKey));
            }
        }

        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    private async Task WithdrawClaimAsync(IPAddress address, HostGuid guid, ulong version, IPAddress? sourceKey)
    {
        var removed = (long)await _db.ScriptEvaluateAsync(RedisScripts.RemoveClaim, [_keys.Claims(address), _keys.ClaimVersions(address)],
            [guid.ToString(), RedisKeys.Version(version)]).ConfigureAwait(false);
        if (removed == 1 && sourceKey is not null)
        {
            // The common case: the claim was counted against the source the host still sends from. A claim kept
            // for a newer version stays counted where that version counted it.
            await _db.SortedSetRemoveAsync(_keys.Source(sourceKey), RedisKeys.SourceEntry(address, guid)).ConfigureAwait(false);
        }
    }

    private async Task IndexClaimAsync(IPAddress address, HostGuid guid, bool attested, long now, long expires, IPAddress? sourceKey, ulong version)
    {
        var key = _keys.Claims(address);
        var versionsKey = _keys.ClaimVersions(address);
        var outcome = (string?)await _db.ScriptEvaluateAsync(RedisScripts.IndexClaim, [key, versionsKey],
            [guid.ToString(), attested ? "1" : "0", now, expires, _claimLimits.MaxAttestedPerAddress, _claimLimits.MaxUnattestedPerAddress,
                RedisKeys.Version(version)])
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
            await _db.ScriptEvaluateAsync(RedisScripts.RemoveClaimIfScore, [key, versionsKey], [guid.ToString(), expires]).ConfigureAwait(false);
        }
    }
}
