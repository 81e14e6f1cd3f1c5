using System.Globalization;
using Mobility.Protocol.Identity;
using StackExchange.Redis;

namespace Mobility.Gns.Redis.Storage;

public sealed partial class RedisGnsStore
{
    /// <summary>
    /// Makes <paramref name="guid"/> the owner of <paramref name="name"/> for <paramref name="version"/>,
    /// taking over a dead claim of another GUID. False when a live claim of another GUID holds it.
    /// </summary>
    private async Task<bool> AcquireNameAsync(string name, HostGuid guid, ulong version, CancellationToken cancellationToken)
    {
        var nameKey = _keys.Name(name);
        var guidText = guid.ToString();
        var versionText = RedisKeys.Version(version);
        var lease = ((long)_options.ClaimLease.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        for (var attempt = 0; attempt < MaxClaimAttempts; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var reply = (RedisResult[]?)await _db.ScriptEvaluateAsync(RedisScripts.Claim, [nameKey], [guidText, versionText, lease]).ConfigureAwait(false);
            if (reply is not { Length: 3 })
            {
                throw new InvalidDataException("The GNS claim script returned an unexpected reply.");
            }

            if ((string?)reply[0] == "ok")
            {
                await WaitDurableAsync(nameKey).ConfigureAwait(false);
                return true;
            }

            var held = (string?)reply[1] ?? "";
            if (!await IsDeadClaimAsync(name, held, expired: (string?)reply[2] == "1").ConfigureAwait(false))
            {
                return false;
            }

            var stolen = (long)await _db.ScriptEvaluateAsync(RedisScripts.Steal, [nameKey], [held, guidText, versionText, lease]).ConfigureAwait(false);
            if (stolen == 1)
            {
                RedisGnsLog.ClaimTakenOver(_logger, name, held, guid);
                await WaitDurableAsync(nameKey).ConfigureAwait(false);
                return true;
            }

            // The claim changed between our look and the compare-and-set: look again.
        }

        throw new InvalidOperationException($"The claim of name '{name}' kept changing over {MaxClaimAttempts} attempts; retry the update.");
    }

    /// <summary>
    /// A claim of another GUID is dead when that GUID's record is at or past the claim's version and
    /// does not hold the name (the claim outlived its update), or when its record is still older (the
    /// update is in flight or its process died) and the lease has expired. A malformed claim is dead.
    /// </summary>
    private async Task<bool> IsDeadClaimAsync(string name, string held, bool expired)
    {
        if (!NameClaim.TryParse(held, out var claim))
        {
            RedisGnsLog.CorruptClaim(_logger, name, held);
            return true;
        }

        var (record, version) = await ReadLiveAsync(claim.Owner).ConfigureAwait(false);
        if (record is not null && record.Name == name)
        {
            return false;
        }

        return (version is { } stored && stored >= claim.Version) || expired;
    }

    /// <summary>
    /// Deletes the GUID's claim of <paramref name="name"/> when its version is <paramref name="version"/>
    /// (<paramref name="exact"/>) or not above it. Best effort: a claim left behind is dead by the rule of
    /// <see cref="IsDeadClaimAsync"/> and is taken over by the next claimant.
    /// </summary>
    private async Task ReleaseNameAsync(string name, HostGuid guid, ulong version, bool exact)
    {
        var nameKey = _keys.Name(name);
        var released = (long)await _db.ScriptEvaluateAsync(RedisScripts.Release, [nameKey],
            [guid.ToString(), RedisKeys.Version(version), exact ? "eq" : "le"]).ConfigureAwait(false);
        if (released == 1)
        {
            await WaitDurableAsync(nameKey).ConfigureAwait(false);
        }
    }
}
