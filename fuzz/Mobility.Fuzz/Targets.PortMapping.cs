using System.Net;
using Mobility.Protocol;
using Mobility.Protocol.PortMapping;

namespace Mobility.Fuzz;

public static partial class Targets
{
    private static readonly Type[] PortMappingMalformed = [typeof(MalformedMessageException)];

    /// <summary>The PCP and NAT-PMP replies mobilityd's port mapper reads from its default gateway.</summary>
    private static FuzzTarget PortMappingTarget() => new("port-mapping",
        "PortMappingMessage.ParseReply (PCP MAP and ANNOUNCE with options, NAT-PMP public address and mapping replies, short error replies)",
        PortMappingMalformed,
        input =>
        {
            var reply = PortMappingMessage.ParseReply(input);
            Require(reply.Protocol == (input[0] == PortMappingMessage.PcpVersion ? PortMappingProtocol.Pcp : PortMappingProtocol.NatPmp), "A reply read as the other protocol.");
            Require(reply.Opcode < PortMappingMessage.ReplyBit, "The reply bit left in the opcode.");
            Require(reply.Protocol == PortMappingProtocol.Pcp || reply.ResultCode <= ushort.MaxValue, "A NAT-PMP result wider than 16 bits.");
            return FuzzOutcome.Accepted;
        },
        PortMappingSeeds);

    private static IEnumerable<FuzzSeed> PortMappingSeeds()
    {
        var nonce = new PcpNonce(0x0102030405060708, 0x090a0b0c);
        var mapped = PortMappingMessage.WritePcpMapReply(0, 7200, 5000, nonce, MappedTransport.Tcp, 7391, 7391, IPAddress.Parse("9.9.101.2"));
        yield return new("valid-pcp-map", mapped);
        yield return new("valid-pcp-map-error-with-option", SeedKit.Concat(
            PortMappingMessage.WritePcpMapReply(8, 30, 5000, nonce, MappedTransport.Udp, 7390, 0, IPAddress.Any), [1, 0, 0, 16], new byte[16]));
        yield return new("valid-natpmp-public-address", PortMappingMessage.WriteNatPmpReply(0, 5000, null, IPAddress.Parse("9.9.101.2")));
        yield return new("valid-natpmp-map", PortMappingMessage.WriteNatPmpReply(0, 5000, MappedTransport.Udp, null, 7390, 7390, 7200));
        yield return new("valid-natpmp-unsupported-version", Convert.FromHexString("00810001000004D2"));
        yield return new("edge-pcp-truncated", mapped[..40]);
    }
}
