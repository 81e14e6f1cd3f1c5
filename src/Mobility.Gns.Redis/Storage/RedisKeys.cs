using System.Globalization;
using System.Net;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using StackExchange.Redis;

namespace Mobility.Gns.Redis.Storage;

/// <summary>
/// The key layout (docs/redis.md). Every key carries a hash tag, so that what one Lua script touches
/// is one key in one slot of a cluster:
/// <list type="bullet">
/// <item><c>{prefix}{&lt;guid&gt;}</c>: hash of the GUID's record: <c>v</c> (version), <c>r</c> ("1" tombstone),
/// <c>n</c> (name or ""), <c>e</c> (the signed encoded record; absent in a tombstone).</item>
/// <item><c>{prefix}name:{&lt;name&gt;}</c>: string claim of a name: <c>&lt;guid&gt;|&lt;version&gt;|&lt;lease expiry ms&gt;</c>.</item>
/// <item><c>{prefix}claims:{&lt;address&gt;}</c>: sorted set, the address's claims (docs/protocol.md,
/// "Address claims"): member the claimant's GUID, score the Unix ms at which the claim expires,
/// negated for an attested claim.</item>
/// <item><c>{prefix}claimv:{&lt;address&gt;}</c>: hash, beside the claims set in its slot: member the claimant's
/// GUID, value the record version (16 hex digits) whose update last wrote its claim, so that a slower update of
/// an older version never removes or overwrites a newer one's claim.</item>
/// <item><c>{prefix}src:{&lt;source key&gt;}</c>: sorted set, the unattested claims counted against one
/// source: member <c>&lt;address&gt;|&lt;guid&gt;</c>, score the claim's expiry (Unix ms).</item>
/// </list>
/// Versions are written as 16 lowercase hexadecimal digits, so they compare exactly as unsigned 64-bit
/// numbers in Lua (whose numbers are doubles) and in lexicographic order.
/// </summary>
internal sealed class RedisKeys(string prefix)
{
    public const int VersionLength = 16;

    public string Prefix { get; } = prefix;

    public RedisKey Record(HostGuid guid) => $"{Prefix}{{{guid}}}";

    public RedisKey Name(string canonicalName) => $"{Prefix}name:{{{canonicalName}}}";

    public RedisKey Claims(IPAddress address) => $"{Prefix}claims:{{{Locator.Normalize(address)}}}";

    /// <summary>The claim versions of an address: the same hash tag as <see cref="Claims"/>, so one script can touch both.</summary>
    public RedisKey ClaimVersions(IPAddress address) => $"{Prefix}claimv:{{{Locator.Normalize(address)}}}";

    public RedisKey Source(IPAddress sourceKey) => $"{Prefix}src:{{{sourceKey}}}";

    /// <summary>A member of a <see cref="Source"/> set.</summary>
    public static string SourceEntry(IPAddress address, HostGuid guid) => $"{Locator.Normalize(address)}|{guid}";

    public static string Version(ulong version) => version.ToString("x16", CultureInfo.InvariantCulture);

    public static bool TryParseVersion(ReadOnlySpan<char> text, out ulong version)
    {
        version = 0;
        return text.Length == VersionLength
            && !text.ContainsAnyExcept("0123456789abcdef")
            && ulong.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out version);
    }

    /// <summary>The distinct, normalized addresses of a record's locators (as GnsStoreRules.IndexedAddresses).</summary>
    public static IEnumerable<IPAddress> IndexedAddresses(GnsRecord record)
        => record.Locators.Select(l => Locator.Normalize(l.Address)).Distinct();
}

/// <summary>A parsed name claim: who claimed, for which record version, and until when (ms since the epoch, Redis clock).</summary>
internal readonly record struct NameClaim(HostGuid Owner, ulong Version, long ExpiresAtMs)
{
    public static bool TryParse(string? text, out NameClaim claim)
    {
        claim = default;
        if (text is null)
        {
            return false;
        }

        var parts = text.Split('|');
        if (parts.Length != 3
            || !HostGuid.TryParse(parts[0], out var owner)
            || !RedisKeys.TryParseVersion(parts[1], out var version)
            || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var expires))
        {
            return false;
        }

        claim = new NameClaim(owner, version, expires);
        return true;
    }
}
