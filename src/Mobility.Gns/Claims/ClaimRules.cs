using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Claims;

/// <summary>
/// What a store needs of its reverse index to apply <see cref="ClaimRules.Index"/> inside its own atomic
/// section (lock or transaction). Counts see only rows not yet purged.
/// </summary>
internal interface IClaimIndex
{
    /// <summary>The claims of <paramref name="guid"/> now in the index (at most one per address).</summary>
    IReadOnlyList<AddressClaim> ClaimsOf(HostGuid guid);

    /// <summary>Removes every claim of <paramref name="guid"/>.</summary>
    void RemoveClaimsOf(HostGuid guid);

    /// <summary>Removes the claims of <paramref name="address"/> that expired at or before <paramref name="now"/>.</summary>
    void PurgeExpiredAt(IPAddress address, long now);

    /// <summary>Removes the claims counted against <paramref name="source"/> that expired at or before <paramref name="now"/>.</summary>
    void PurgeExpiredFrom(IPAddress source, long now);

    /// <summary>Claims of <paramref name="address"/> of one kind.</summary>
    int CountAt(IPAddress address, bool attested);

    /// <summary>Claims counted against <paramref name="source"/>.</summary>
    int CountFrom(IPAddress source);

    void Add(AddressClaim claim);
}

/// <summary>
/// The rules of the reverse index, shared by every store so that they cannot drift apart
/// (docs/protocol.md, "Address claims"): a claim sent from the claimed address is attested and ranks
/// first; any other claim is unattested and bounded per address and per source; every claim expires
/// unless refreshed; a claimant keeps its slot while its records keep the address, and a newcomer
/// never displaces it.
/// </summary>
public static class ClaimRules
{
    /// <summary>IPv6 sources are counted by /64: one subscriber usually holds a whole /64.</summary>
    public const int Ipv6SourcePrefixBits = 64;

    /// <summary>True when a record that arrived from <paramref name="source"/> proves it can send from <paramref name="address"/>.</summary>
    public static bool IsAttested(IPAddress address, IPAddress? source)
        => source is not null && Locator.Normalize(source).Equals(Locator.Normalize(address));

    /// <summary>What unattested claims are counted against: the IPv4 address, or the IPv6 /64 (other bits zero).</summary>
    public static IPAddress SourceKey(IPAddress source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var normalized = Locator.Normalize(source);
        if (normalized.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return normalized;
        }

        Span<byte> bytes = stackalloc byte[16];
        normalized.TryWriteBytes(bytes, out _);
        bytes[(Ipv6SourcePrefixBits / 8)..].Clear();
        return new IPAddress(bytes);
    }

    /// <summary>When a claim made (or refreshed) at <paramref name="now"/> by a record of TTL <paramref name="ttlSeconds"/> expires (Unix ms).</summary>
    public static long Expiry(uint ttlSeconds, long now, ClaimLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        var lifetime = Math.Max((long)limits.ClaimLifetime.TotalMilliseconds, ttlSeconds * 1000L);
        return now > long.MaxValue - lifetime ? long.MaxValue - 1 : now + lifetime;
    }

    /// <summary>
    /// Rewrites <paramref name="record"/>'s claims in <paramref name="index"/> for a put that arrived from
    /// <paramref name="source"/> (null: an in-process caller, never attested and not counted per source).
    /// Returns the addresses the index now lists the record under.
    /// </summary>
    internal static int Index(IClaimIndex index, GnsRecord record, IPAddress? source, long now, ClaimLimits limits)
    {
        var previous = index.ClaimsOf(record.Guid).ToDictionary(c => c.Address);
        index.RemoveClaimsOf(record.Guid);
        var sourceKey = source is null ? null : SourceKey(source);
        var indexed = 0;
        var expires = Expiry(record.TtlSeconds, now, limits);
        foreach (var address in record.Locators.Select(l => Locator.Normalize(l.Address)).Distinct())
        {
            previous.TryGetValue(address, out var prior);
            var incumbent = previous.ContainsKey(address) && prior.Expires > now;
            if (IsAttested(address, source) || (incumbent && prior.Attested))
            {
                // Attested once, attested while the GUID's records keep the address (a multihomed host
                // sends from one address at a time) and refresh it before it expires.
                if (!(incumbent && prior.Attested))
                {
                    index.PurgeExpiredAt(address, now);
                }

                if ((incumbent && prior.Attested) || index.CountAt(address, attested: true) < limits.MaxAttestedPerAddress)
                {
                    index.Add(new AddressClaim(address, record.Guid, true, expires, null));
                    indexed++;
                }

                continue;
            }

            if (incumbent)
            {
                // Refreshed in place: same slot, same source it was counted against.
                index.Add(prior with { Expires = expires });
                indexed++;
                continue;
            }

            index.PurgeExpiredAt(address, now);
            if (index.CountAt(address, attested: false) >= limits.MaxUnattestedPerAddress)
            {
                continue;
            }

            if (sourceKey is not null)
            {
                index.PurgeExpiredFrom(sourceKey, now);
                if (index.CountFrom(sourceKey) >= limits.MaxUnattestedPerSource)
                {
                    continue;
                }
            }

            index.Add(new AddressClaim(address, record.Guid, false, expires, sourceKey));
            indexed++;
        }

        return indexed;
    }
}
