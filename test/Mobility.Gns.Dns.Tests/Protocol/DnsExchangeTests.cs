namespace Mobility.Gns.Dns.Tests.Protocol;

/// <summary>The steps both DNS responders share (the GNS front end, mobilityd's stub), on bytes alone.</summary>
public sealed class DnsExchangeTests
{
    private readonly byte[] _response = new byte[DnsLimits.MaxMessageSize];

    [Fact]
    public void A_standard_query_is_read_and_nothing_is_written()
    {
        Assert.True(DnsExchange.TryReadStandardQuery(Query.Build("a.gns.test", DnsType.A), _response, out var query, out var written, out var malformed));

        Assert.Equal("a.gns.test.", query.Name.ToString());
        Assert.Equal(0, written);
        Assert.Null(malformed);
    }

    [Fact]
    public void A_malformed_query_gets_FORMERR_and_its_reason_another_opcode_NOTIMP_and_a_runt_nothing()
    {
        Assert.False(DnsExchange.TryReadStandardQuery(Query.Build("a.gns.test", DnsType.A, qdCount: 2), _response, out _, out var written, out var malformed));
        Assert.Equal((int)DnsResponseCode.FormErr, ParsedResponse.Parse(_response.AsSpan(0, written)).Code);
        Assert.False(string.IsNullOrEmpty(malformed));

        Assert.False(DnsExchange.TryReadStandardQuery(Query.Build("a.gns.test", DnsType.A, flags: 4 << 11), _response, out _, out written, out malformed));
        Assert.Equal((int)DnsResponseCode.NotImp, ParsedResponse.Parse(_response.AsSpan(0, written)).Code);
        Assert.Null(malformed);

        Assert.False(DnsExchange.TryReadStandardQuery(new byte[5], _response, out _, out written, out malformed));
        Assert.Equal(0, written);
        Assert.NotNull(malformed);
    }

    [Theory]
    [InlineData(false, false, 4096, 512)]
    [InlineData(false, true, 100, 512)]
    [InlineData(false, true, 1000, 1000)]
    [InlineData(false, true, 4096, 1232)]
    [InlineData(true, false, 0, DnsLimits.MaxMessageSize)]
    public void The_response_limit_is_512_without_EDNS_the_advertised_size_within_our_maximum_with_it_and_65535_over_TCP(
        bool overTcp, bool edns, ushort advertised, int limit)
    {
        var query = DnsMessageReader.ReadQuery(Query.Build("a.gns.test", DnsType.A, edns: edns, udpSize: advertised));

        Assert.Equal(limit, DnsExchange.MaxResponseSize(query, overTcp, maxUdpResponseSize: 1232));
    }
}
