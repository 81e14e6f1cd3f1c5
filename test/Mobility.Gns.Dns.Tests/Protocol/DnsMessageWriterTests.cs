namespace Mobility.Gns.Dns.Tests.Protocol;

public sealed class DnsMessageWriterTests
{
    private static readonly DnsName Zone = DnsName.Parse("gns.test");

    [Fact]
    public void Answer_owners_are_pointers_to_the_question_and_the_zone_suffix_is_shared()
    {
        var query = DnsMessageReader.ReadQuery(Query.Build("Host.GNS.test", DnsType.A));
        var soa = new DnsSoaRecord(Zone, 5, DnsName.Parse("ns1.gns.test"), DnsName.Parse("hostmaster.gns.test"), 1, 2, 3, 4, 5);
        var response = new DnsResponse(query, DnsResponseCode.NoError, true,
            [new DnsAddressRecord(query.Name, 30, IPAddress.Parse("192.0.2.1")), new DnsAddressRecord(query.Name, 30, IPAddress.Parse("192.0.2.2"))], [soa]);
        var buffer = new byte[512];

        var length = DnsMessageWriter.WriteResponse(response, buffer, 512);
        var parsed = ParsedResponse.Parse(buffer.AsSpan(0, length));

        Assert.All(parsed.Answers, a => Assert.Equal(new byte[] { 0xC0, 12 }, buffer[a.NameOffset..(a.NameOffset + 2)]));
        Assert.Equal("Host.GNS.test.", parsed.Answers[0].Owner.ToString());

        // The SOA owner (the apex) points at "GNS.test" inside the question: offset 12 + 5.
        Assert.Equal(new byte[] { 0xC0, 17 }, buffer[parsed.Authority[0].NameOffset..(parsed.Authority[0].NameOffset + 2)]);
        Assert.True(parsed.Authoritative);
        Assert.Equal(0x1234, parsed.Id);
    }

    [Fact]
    public void A_response_over_the_size_limit_is_truncated_to_the_question_with_TC()
    {
        var query = DnsMessageReader.ReadQuery(Query.Build("big.gns.test", DnsType.AAAA));
        var answers = Enumerable.Range(1, 30).Select(i => (DnsRecord)new DnsAddressRecord(query.Name, 30, IPAddress.Parse($"2001:db8::{i:x}"))).ToArray();
        var buffer = new byte[DnsLimits.MaxMessageSize];

        var full = ParsedResponse.Parse(buffer.AsSpan(0, DnsMessageWriter.WriteResponse(new DnsResponse(query, DnsResponseCode.NoError, true, answers, []), buffer, 65535)));
        Assert.False(full.Truncated);
        Assert.Equal(30, full.Answers.Count);
        Assert.True(full.Length > 512);

        var length = DnsMessageWriter.WriteResponse(new DnsResponse(query, DnsResponseCode.NoError, true, answers, []), buffer, 512);
        var truncated = ParsedResponse.Parse(buffer.AsSpan(0, length));
        Assert.True(truncated.Truncated);
        Assert.Empty(truncated.Answers);
        Assert.Equal("big.gns.test.", truncated.Question.ToString());
    }

    [Fact]
    public void An_EDNS_query_gets_an_OPT_with_our_size_the_DO_bit_and_extended_BADVERS()
    {
        var query = DnsMessageReader.ReadQuery(Query.Build("x.gns.test", DnsType.A, edns: true, dnssecOk: true, ednsVersion: 1));
        var buffer = new byte[512];

        var length = DnsMessageWriter.WriteResponse(new DnsResponse(query, DnsResponseCode.BadVers, false, [], []) { AdvertisedUdpSize = 1232 }, buffer, 512);
        var parsed = ParsedResponse.Parse(buffer.AsSpan(0, length));

        var opt = Assert.Single(parsed.Additional);
        Assert.Equal(DnsType.OPT, opt.Type);
        Assert.Equal(1232, opt.Class);
        Assert.Equal(0x8000u, opt.Ttl & 0x8000);
        Assert.Equal((int)DnsResponseCode.BadVers, parsed.Code);
    }
}
