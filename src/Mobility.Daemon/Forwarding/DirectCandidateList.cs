using System.Net;
using Mobility.Daemon.Nat;
using Mobility.Daemon.PortMapping;
using Mobility.Protocol.PortMapping;
using Mobility.Protocol.Transport;

namespace Mobility.Daemon.Forwarding;

/// <summary>
/// The direct candidates mobilityd sends on each connection (docs/nat.md, "Direct paths"):
/// the transport endpoint its gateway mapped (PCP / NAT-PMP), its reflexive address from NAT discovery
/// with the transport port (a masquerading NAT keeps source ports), and its usable local addresses
/// with the transport port; at most <see cref="DirectCandidates.MaxCount"/>, duplicates once. The
/// punch flag says NAT discovery found endpoint-independent mapping in some family.
/// </summary>
public static class DirectCandidateList
{
    public static (bool Punch, DirectCandidate[] Candidates) Build(NatState nat, PortMappingState mappings, IEnumerable<IPAddress> locals, int transportPort)
    {
        ArgumentNullException.ThrowIfNull(nat);
        ArgumentNullException.ThrowIfNull(mappings);
        ArgumentNullException.ThrowIfNull(locals);
        var list = new List<DirectCandidate>();
        void Add(DirectCandidateKind kind, IPEndPoint endpoint)
        {
            var address = endpoint.Address.IsIPv4MappedToIPv6 ? endpoint.Address.MapToIPv4() : endpoint.Address;
            if (list.Count < DirectCandidates.MaxCount && endpoint.Port != 0 && !IPAddress.IsLoopback(address) && !address.IsIPv6LinkLocal
                && !address.Equals(IPAddress.Any) && !address.Equals(IPAddress.IPv6Any) && !list.Any(c => c.EndPoint.Equals(new IPEndPoint(address, endpoint.Port))))
            {
                list.Add(new DirectCandidate(kind, new IPEndPoint(address, endpoint.Port)));
            }
        }

        foreach (var mapping in mappings.Mappings.Where(m => m.Transport == MappedTransport.Tcp && m.InternalPort == transportPort))
        {
            Add(DirectCandidateKind.Mapped, mapping.External);
        }

        foreach (var report in nat.Families.Where(r => r.BehindNat == true && r.Reflexive is not null))
        {
            Add(DirectCandidateKind.Reflexive, new IPEndPoint(report.Reflexive!.Address, transportPort));
        }

        foreach (var local in locals)
        {
            Add(DirectCandidateKind.Local, new IPEndPoint(local, transportPort));
        }

        var punch = nat.Families.Any(r => r.BehindNat == true && r.Mapping == NatMapping.EndpointIndependent);
        return (punch, [.. list]);
    }
}
