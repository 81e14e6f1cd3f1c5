namespace Mobility.Gns.Dns.Tests.Protocol;

/// <summary>The stub side of an A/AAAA lookup (mobilityd's <c>--gns</c> names), against responses this server's writer builds.</summary>
public sealed class DnsAddressLookupTests
{
    private static readonly DnsName Home = DnsName.Parse("home.gns.test");

    [Fact]
    public void The_query_reads_back_as_a_recursive_question_and_the_answer_gives_the_addresses_with_the_least_TTL()
    {
        var buffer = new byte[512];
        var length = DnsAddressLookup.WriteQuery(0x4242, Home, DnsType.AAAA, buffer);
        var query = DnsMessageReader.ReadQuery(buffer.AsSpan(0, length));
        Assert.Equal((ushort)DnsType.AAAA, query.Type);
        Assert.True(query.RecursionDesired);
        Assert.Equal("home.gns.test.", query.Name.ToString());

        var response = Respond(query, [
            new DnsAddressRecord(query.Name, 300, IPAddress.Parse("2001:db8::1")),
            new DnsAddressRecord(DnsName.Parse("other.gns.test"), 1, IPAddress.Parse("2001:db8::66")),
            new DnsAddressRecord(query.Name, 60, IPAddress.Parse("2001:db8::2"))]);

        var answer = DnsAddressLookup.ReadAnswer(response, 0x4242, Home, DnsType.AAAA);

        Assert.NotNull(answer);
        Assert.Equal(DnsResponseCode.NoError, answer.Code);
        Assert.Equal([IPAddress.Parse("2001:db8::1"), IPAddress.Parse("2001:db8::2")], answer.Addresses);
        Assert.Equal(60u, answer.Ttl);
    }

    [Fact]
    public void A_response_to_another_query_is_not_the_answer_and_a_cut_short_one_is_malformed()
    {
        var buffer = new byte[512];
        var query = DnsMessageReader.ReadQuery(buffer.AsSpan(0, DnsAddressLookup.WriteQuery(7, Home, DnsType.A, buffer)));
        var response = Respond(query, [new DnsAddressRecord(query.Name, 30, IPAddress.Parse("192.0.2.1"))]);

        Assert.Null(DnsAddressLookup.ReadAnswer(response, 8, Home, DnsType.A));
        Assert.Null(DnsAddressLookup.ReadAnswer(response, 7, DnsName.Parse("away.gns.test"), DnsType.A));
        Assert.Null(DnsAddressLookup.ReadAnswer(response, 7, Home, DnsType.AAAA));
        Assert.Throws<DnsFormatException>(() => DnsAddressLookup.ReadAnswer(response.AsSpan(0, response.Length - 2), 7, Home, DnsType.A));
        Assert.Empty(DnsAddressLookup.ReadAnswer(Respond(query, [], DnsResponseCode.NXDomain), 7, Home, DnsType.A)!.Addresses);
    }

    private static byte[] Respond(DnsQuery query, DnsRecord[] answers, DnsResponseCode code = DnsResponseCode.NoError)
    {
        var buffer = new byte[DnsLimits.MaxMessageSize];
        var length = DnsMessageWriter.WriteResponse(new DnsResponse(query, code, false, answers, []), buffer, buffer.Length);
        return buffer[..length];
    }
}
