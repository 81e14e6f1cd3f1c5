using System.Net;
using Mobility.Protocol.Identity;

namespace Mobility.Gns.Claims;

/// <summary>
/// One entry of the reverse index: <paramref name="Guid"/>'s live record carries <paramref name="Address"/>.
/// </summary>
/// <param name="Address">The claimed address, normalized.</param>
/// <param name="Guid">The claimant.</param>
/// <param name="Attested">A record carrying the address arrived from the address itself.</param>
/// <param name="Expires">Unix milliseconds after which the claim is no longer listed (<see cref="ClaimRules.Expiry"/>).</param>
/// <param name="Source">The source key (<see cref="ClaimRules.SourceKey"/>) an unattested claim is counted against; null for attested claims and in-process callers.</param>
public readonly record struct AddressClaim(IPAddress Address, HostGuid Guid, bool Attested, long Expires, IPAddress? Source)
{
    /// <summary>The order of a reverse lookup: attested claims first, each kind in GUID order.</summary>
    public static int CompareRank(AddressClaim x, AddressClaim y)
    {
        var byKind = y.Attested.CompareTo(x.Attested);
        return byKind != 0 ? byKind : x.Guid.CompareTo(y.Guid);
    }
}
