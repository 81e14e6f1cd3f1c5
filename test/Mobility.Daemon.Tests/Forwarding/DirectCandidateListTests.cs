using System.Net;
using System.Net.Sockets;
using Mobility.Daemon.Forwarding;
using Mobility.Daemon.Nat;
using Mobility.Daemon.PortMapping;
using Mobility.Protocol.PortMapping;
using Mobility.Protocol.Transport;

namespace Mobility.Daemon.Tests.Forwarding;

/// <summary>The direct candidates mobilityd sends on incoming connections (docs/nat.md, "Direct paths").</summary>
public sealed class DirectCandidateListTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UnixEpoch;

    private static NatReport Report(string reflexive, NatMapping mapping, bool behindNat = true)
        => new(AddressFamily.InterNetwork, IPEndPoint.Parse(reflexive), IPEndPoint.Parse("192.168.1.2:40000"), behindNat, mapping, NatFiltering.Unknown,
            Now, IPEndPoint.Parse("198.18.1.2:7353"), "");

    private static PortMappingState Mapped(params PortMappingEntry[] entries) => new(IPEndPoint.Parse("192.168.1.1:5351"), [.. entries], null, Now);

    [Fact]
    public void Mapped_then_reflexive_with_the_transport_port_then_local_addresses()
    {
        var nat = new NatState([Report("198.51.100.7:61000", NatMapping.EndpointIndependent)], Now, null);
        var mappings = Mapped(
            new PortMappingEntry(PortMappingProtocol.Pcp, MappedTransport.Tcp, 7391, IPEndPoint.Parse("198.51.100.7:7391"), TimeSpan.FromHours(1), Now),
            new PortMappingEntry(PortMappingProtocol.Pcp, MappedTransport.Udp, 7390, IPEndPoint.Parse("198.51.100.7:7390"), TimeSpan.FromHours(1), Now));

        var (punch, candidates) = DirectCandidateList.Build(nat, mappings, [IPAddress.Parse("192.168.1.2"), IPAddress.Parse("2001:db8::2")], 7391);

        Assert.True(punch);
        Assert.Equal(
            [
                new DirectCandidate(DirectCandidateKind.Mapped, IPEndPoint.Parse("198.51.100.7:7391")),
                new DirectCandidate(DirectCandidateKind.Local, IPEndPoint.Parse("192.168.1.2:7391")),
                new DirectCandidate(DirectCandidateKind.Local, IPEndPoint.Parse("[2001:db8::2]:7391")),
            ],
            candidates);
    }

    [Fact]
    public void Reflexive_address_is_sent_with_the_transport_port_and_no_punch_without_independent_mapping()
    {
        var nat = new NatState([Report("198.51.100.7:61000", NatMapping.AddressAndPortDependent)], Now, null);

        var (punch, candidates) = DirectCandidateList.Build(nat, PortMappingState.NotYet, [], 7391);

        Assert.False(punch);
        Assert.Equal([new DirectCandidate(DirectCandidateKind.Reflexive, IPEndPoint.Parse("198.51.100.7:7391"))], candidates);
    }

    [Fact]
    public void Loopback_link_local_and_unspecified_addresses_are_left_out_and_the_list_is_capped()
    {
        IPAddress[] locals =
        [
            IPAddress.Loopback, IPAddress.IPv6Loopback, IPAddress.Parse("fe80::1"), IPAddress.Any,
            .. Enumerable.Range(1, 12).Select(i => IPAddress.Parse($"10.0.0.{i}")),
        ];

        var (_, candidates) = DirectCandidateList.Build(NatState.NotYet, PortMappingState.NotYet, locals, 7391);

        Assert.Equal(DirectCandidates.MaxCount, candidates.Length);
        Assert.All(candidates, c => Assert.StartsWith("10.0.0.", c.EndPoint.Address.ToString(), StringComparison.Ordinal));
        DirectCandidates.Encode(false, candidates); // every one can be sent
    }
}
