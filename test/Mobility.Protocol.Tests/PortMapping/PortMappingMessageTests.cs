using Mobility.Protocol.PortMapping;

namespace Mobility.Protocol.Tests.PortMapping;

/// <summary>PCP (RFC 6887) and NAT-PMP (RFC 6886) requests pinned byte for byte, and the reply parser against valid and hostile datagrams.</summary>
public sealed class PortMappingMessageTests
{
    private static readonly PcpNonce Nonce = new(0x0102030405060708, 0x090a0b0c);

    [Fact]
    public void A_pcp_map_request_has_the_rfc_6887_layout()
    {
        var bytes = PortMappingMessage.WritePcpMap(IPAddress.Parse("192.168.1.2"), Nonce, MappedTransport.Tcp, 7391, 7391, 7200);
        Assert.Equal(
            "02" + "01" + "0000" + "00001C20" + "00000000000000000000FFFFC0A80102" // version, MAP, reserved, lifetime, client address
            + "0102030405060708090A0B0C" + "06" + "000000" + "1CDF" + "1CDF" // nonce, TCP, reserved, internal port, suggested port
            + "00000000000000000000FFFF00000000", // no preferred external address
            Convert.ToHexString(bytes));
    }

    [Fact]
    public void Nat_pmp_requests_have_the_rfc_6886_layout()
    {
        Assert.Equal("0000", Convert.ToHexString(PortMappingMessage.WriteNatPmpPublicAddress()));
        Assert.Equal("0001" + "0000" + "1CDE" + "1CDE" + "00001C20", Convert.ToHexString(PortMappingMessage.WriteNatPmpMap(MappedTransport.Udp, 7390, 7390, 7200)));
        Assert.Equal("0002" + "0000" + "1CDF" + "0000" + "00000000", Convert.ToHexString(PortMappingMessage.WriteNatPmpMap(MappedTransport.Tcp, 7391, 0, 0)));
    }

    [Fact]
    public void A_pcp_map_reply_is_read_with_its_nonce_and_ipv4_external_address()
    {
        var reply = PortMappingMessage.ParseReply(PortMappingMessage.WritePcpMapReply(0, 3600, 123456, Nonce, MappedTransport.Tcp, 7391, 40001, IPAddress.Parse("9.9.101.2")));
        Assert.Equal(new PortMappingReply(PortMappingProtocol.Pcp, PortMappingMessage.PcpOpMap, 0, 123456, 3600, MappedTransport.Tcp, 7391, 40001,
            IPAddress.Parse("9.9.101.2"), Nonce), reply);
        Assert.True(reply.Succeeded);
    }

    [Fact]
    public void A_pcp_reply_with_options_skips_them_and_an_error_keeps_its_code()
    {
        var reply = PortMappingMessage.WritePcpMapReply(8, 30, 5, Nonce, MappedTransport.Udp, 7390, 0, IPAddress.Any);
        // One option (code 1, THIRD_PARTY, 16 bytes of address) and one of 1 byte padded to 4.
        var withOptions = reply.Concat(new byte[] { 1, 0, 0, 16 }).Concat(new byte[16]).Concat(new byte[] { 0x80, 0, 0, 1, 0xAA, 0, 0, 0 }).ToArray();
        var parsed = PortMappingMessage.ParseReply(withOptions);
        Assert.Equal(8, parsed.ResultCode);
        Assert.False(parsed.Succeeded);
        Assert.Equal(MappedTransport.Udp, parsed.Transport);
        Assert.Equal(Nonce, parsed.Nonce);
    }

    [Fact]
    public void Nat_pmp_replies_are_read_and_the_short_unsupported_version_error_too()
    {
        var address = PortMappingMessage.ParseReply(PortMappingMessage.WriteNatPmpReply(0, 77, null, IPAddress.Parse("9.9.101.2")));
        Assert.Equal((PortMappingProtocol.NatPmp, (byte)0, 77u, IPAddress.Parse("9.9.101.2")), (address.Protocol, address.Opcode, address.Epoch, address.ExternalAddress));

        var map = PortMappingMessage.ParseReply(PortMappingMessage.WriteNatPmpReply(0, 78, MappedTransport.Tcp, null, 7391, 7391, 7200));
        Assert.Equal((MappedTransport.Tcp, (ushort)7391, (ushort)7391, 7200u, (byte)2), (map.Transport, map.InternalPort, map.ExternalPort, map.Lifetime, map.Opcode));

        // What a NAT-PMP-only gateway answers to a PCP request: version 0, result 1, the header alone.
        var unsupported = PortMappingMessage.ParseReply(Convert.FromHexString("00810001000004D2"));
        Assert.Equal((PortMappingProtocol.NatPmp, PortMappingMessage.UnsupportedVersion, 1234u), (unsupported.Protocol, unsupported.ResultCode, unsupported.Epoch));
    }

    [Theory]
    [InlineData("", "shorter")]
    [InlineData("02", "shorter")]
    [InlineData("0181", "unknown version 1")]
    [InlineData("0201000000000000000000000000000000000000000000000000", "multiple of 4")]
    [InlineData("020100000000000000000000000000000000000000000000", "reply bit is clear")]
    [InlineData("028100000000000000000000000000000000000000000000", "shorter than its 36 bytes")]
    [InlineData("0080", "")]
    [InlineData("0000000000000000", "reply bit is clear")]
    [InlineData("00830000000000000000", "unknown opcode 3")]
    [InlineData("0082000000000000", "")]
    public void Malformed_replies_are_refused_with_the_documented_exception(string hex, string reason)
    {
        var e = Assert.Throws<MalformedMessageException>(() => PortMappingMessage.ParseReply(Convert.FromHexString(hex)));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_pcp_option_that_runs_past_the_datagram_or_a_datagram_over_1100_bytes_is_refused()
    {
        var reply = PortMappingMessage.WritePcpMapReply(0, 30, 5, Nonce, MappedTransport.Tcp, 7391, 7391, IPAddress.Parse("9.9.101.2"));
        var overlong = reply.Concat(new byte[] { 1, 0, 0xFF, 0xFC }).ToArray();
        Assert.Throws<MalformedMessageException>(() => PortMappingMessage.ParseReply(overlong));
        var huge = reply.Concat(Enumerable.Repeat<byte>(0, 1100)).ToArray();
        Assert.Throws<MalformedMessageException>(() => PortMappingMessage.ParseReply(huge));
    }

    [Fact]
    public void Every_truncation_and_random_bytes_either_parse_or_throw_the_documented_exception()
    {
        byte[][] valid =
        [
            PortMappingMessage.WritePcpMapReply(0, 3600, 1, Nonce, MappedTransport.Tcp, 7391, 7391, IPAddress.Parse("9.9.101.2")),
            PortMappingMessage.WriteNatPmpReply(0, 1, MappedTransport.Udp, null, 7390, 7390, 3600),
            PortMappingMessage.WriteNatPmpReply(0, 1, null, IPAddress.Parse("9.9.101.2")),
        ];
        var random = new Random(16);
        var inputs = valid.SelectMany(v => Enumerable.Range(0, v.Length + 1).Select(n => v[..n]))
            .Concat(Enumerable.Range(0, 2000).Select(_ =>
            {
                var bytes = new byte[random.Next(0, 80)];
                random.NextBytes(bytes);
                if (bytes.Length > 0)
                {
                    bytes[0] = (byte)random.Next(0, 3);
                }

                return bytes;
            }));
        foreach (var input in inputs)
        {
            try
            {
                PortMappingMessage.ParseReply(input);
            }
            catch (MalformedMessageException)
            {
            }
        }
    }
}
