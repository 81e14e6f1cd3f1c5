using System.Net;
using Mobility.Protocol.Identity;

namespace Mobility.Transport;

/// <summary>
/// Answers "which verified GUID owns this address, and where does its mobile transport listen?" for
/// <see cref="MobileConnector.ConnectToAddressAsync"/>. The daemon implements it with
/// get_guid_from_ip (the GNS reverse index, then a challenge of each claim at the address) and the
/// verified GUID's GNS record. An implementation must never answer with a GUID that was only
/// claimed: a GNS reverse entry is a claim anyone can make, a challenge answered from the address is
/// a proof.
/// </summary>
public interface IAddressOwnerResolver
{
    /// <summary>
    /// The owner of <paramref name="address"/> that proved its GUID and publishes transport
    /// endpoints; null when there is none (no claim, no proof, no transport, or the directory could
    /// not be asked), which means plain TCP. Network failures are answered with null, not thrown.
    /// </summary>
    ValueTask<AddressOwner?> ResolveAsync(IPAddress address, CancellationToken cancellationToken);

    /// <summary>A mobile connection to the owner of <paramref name="address"/> failed: forget any cached answer about it.</summary>
    void Forget(IPAddress address)
    {
    }
}

/// <summary>A verified owner of an address: its GUID and its transport endpoints (best first).</summary>
public sealed record AddressOwner(HostGuid Guid, IReadOnlyList<IPEndPoint> TransportEndPoints);
