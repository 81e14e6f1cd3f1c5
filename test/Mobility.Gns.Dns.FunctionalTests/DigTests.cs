using System.Buffers.Binary;
using System.Net.Sockets;
using Mobility.Protocol.Dns;

namespace Mobility.Gns.Dns.FunctionalTests;

/// <summary>Real `dig @127.0.0.1 -p PORT` queries against the DNS front end in a generic host.</summary>
public sealed class DigTests(DnsServerFixture server) : IClassFixture<DnsServerFixture>
{
    [ToolFact("dig", "dnsutils")]
    public async Task Dig_A_by_name_gets_the_authoritative_IPv4_locators_with_the_record_TTL()
    {
        var result = await Dig.RunAsync(server.UdpEndPoint, "alice.gns.test", "A");

        Assert.Equal("NOERROR", result.Status);
        Assert.Contains("aa", result.Flags);
        var answers = result.Section("ANSWER");
        Assert.Equal(["192.0.2.1", "203.0.113.5"], answers.Select(a => a[4]).Order());
        Assert.All(answers, a => Assert.Equal(["alice.gns.test.", "30", "IN", "A"], a[..4]));
    }

    [ToolFact("dig", "dnsutils")]
    public async Task Dig_AAAA_by_guid_in_upper_case_gets_the_IPv6_locator()
    {
        var result = await Dig.RunAsync(server.UdpEndPoint, $"{server.Alice.Guid.ToString().ToUpperInvariant()}.GNS.TEST", "AAAA");

        Assert.Equal("NOERROR", result.Status);
        Assert.Equal("2001:db8::a", Assert.Single(result.Section("ANSWER"))[4]);
    }

    [ToolFact("dig", "dnsutils")]
    public async Task Dig_TXT_gets_the_guid_and_public_key_and_a_TTL_of_0_is_served_as_0()
    {
        var txt = await Dig.RunAsync(server.UdpEndPoint, "alice.gns.test", "TXT");
        var line = string.Join(' ', Assert.Single(txt.Section("ANSWER")));
        Assert.Contains($"\"guid={server.Alice.Guid}\"", line, StringComparison.Ordinal);
        Assert.Contains($"\"key={Convert.ToBase64String(server.Alice.PublicKey)}\"", line, StringComparison.Ordinal);

        var fleeting = await Dig.RunAsync(server.UdpEndPoint, "fleeting.gns.test", "A");
        Assert.Equal("0", Assert.Single(fleeting.Section("ANSWER"))[1]);
    }

    [ToolFact("dig", "dnsutils")]
    public async Task Dig_of_an_unknown_name_is_NXDOMAIN_with_the_SOA_in_authority()
    {
        var result = await Dig.RunAsync(server.UdpEndPoint, "nobody.gns.test", "A");

        Assert.Equal("NXDOMAIN", result.Status);
        var soa = Assert.Single(result.Section("AUTHORITY"));
        Assert.Equal(["gns.test.", "5", "IN", "SOA", "ns1.gns.test.", "hostmaster.gns.test."], soa[..6]);
    }

    [ToolFact("dig", "dnsutils")]
    public async Task Dig_of_a_name_outside_the_zone_is_REFUSED()
    {
        var result = await Dig.RunAsync(server.UdpEndPoint, "www.example.org", "A");

        Assert.Equal("REFUSED", result.Status);
        Assert.Equal(0, result.AnswerCount);
    }

    [ToolFact("dig", "dnsutils")]
    public async Task Dig_with_dnssec_sends_EDNS_and_gets_an_OPT_with_the_DO_bit_and_our_UDP_size()
    {
        var result = await Dig.RunAsync(server.UdpEndPoint, "+dnssec", "alice.gns.test", "AAAA");

        Assert.Equal("NOERROR", result.Status);
        Assert.Matches(@"EDNS: version: 0, flags: do; udp: 1232", result.Output);
    }

    [ToolFact("dig", "dnsutils")]
    public async Task A_big_answer_is_truncated_over_UDP_and_complete_over_TCP()
    {
        var name = $"{DnsServerFixture.BigName}.gns.test";

        var udp = await Dig.RunAsync(server.UdpEndPoint, "+noedns", "+ignore", name, "AAAA");
        Assert.Contains("tc", udp.Flags);
        Assert.Equal(0, udp.AnswerCount);

        var small = await Dig.RunAsync(server.UdpEndPoint, "+bufsize=512", "+ignore", name, "AAAA");
        Assert.Contains("tc", small.Flags);

        var tcp = await Dig.RunAsync(server.TcpEndPoint, "+tcp", name, "AAAA");
        Assert.DoesNotContain("tc", tcp.Flags);
        Assert.Equal(16, tcp.Section("ANSWER").Count);

        // Without +ignore dig follows the TC bit and retries over TCP by itself.
        var retried = await Dig.RunAsync(server.UdpEndPoint, "+noedns", name, "AAAA");
        Assert.Contains("Truncated, retrying in TCP mode", retried.Output, StringComparison.Ordinal);
        Assert.Equal(16, retried.AnswerCount);
    }

    [ToolFact("dig", "dnsutils")]
    public async Task Dig_at_the_apex_gets_SOA_and_NS()
    {
        Assert.Equal("SOA", Assert.Single((await Dig.RunAsync(server.UdpEndPoint, "gns.test", "SOA")).Section("ANSWER"))[3]);
        Assert.Equal("ns1.gns.test.", Assert.Single((await Dig.RunAsync(server.UdpEndPoint, "gns.test", "NS")).Section("ANSWER"))[4]);
    }

    [Fact]
    public async Task Garbage_over_UDP_with_a_readable_header_gets_FORMERR()
    {
        using var udp = new UdpClient(AddressFamily.InterNetwork);
        var query = Query.Build("alice.gns.test", DnsType.A, id: 0xBEEF, qdCount: 2);

        await udp.SendAsync(query, server.UdpEndPoint).AsTask().WithTimeout();
        var reply = await udp.ReceiveAsync().WithTimeout();

        Assert.Equal(0xBEEF, BinaryPrimitives.ReadUInt16BigEndian(reply.Buffer));
        Assert.Equal((int)DnsResponseCode.FormErr, BinaryPrimitives.ReadUInt16BigEndian(reply.Buffer.AsSpan(2)) & 0xF);
    }

    [Fact]
    public async Task Two_TCP_queries_on_one_connection_are_both_answered()
    {
        using var client = new TcpClient();
        await client.ConnectAsync(server.TcpEndPoint).WithTimeout();
        var stream = client.GetStream();

        foreach (var id in new ushort[] { 1, 2 })
        {
            var query = Query.Build("alice.gns.test", DnsType.A, id: id);
            await stream.WriteAsync(Frame(query)).AsTask().WithTimeout();
            var response = await ReadFrameAsync(stream);
            Assert.Equal(id, ParsedResponse.Parse(response).Id);
        }
    }

    [Fact]
    public async Task A_TCP_frame_announcing_more_than_the_query_limit_closes_the_connection_without_reading_it()
    {
        using var client = new TcpClient();
        await client.ConnectAsync(server.TcpEndPoint).WithTimeout();
        var stream = client.GetStream();

        await stream.WriteAsync(new byte[] { 0xFF, 0xFF, 1, 2, 3 }).AsTask().WithTimeout();

        Assert.Equal(0, await stream.ReadAsync(new byte[16]).AsTask().WithTimeout());
    }

    [Fact]
    public async Task An_idle_TCP_connection_is_closed_after_the_idle_timeout()
    {
        using var client = new TcpClient();
        await client.ConnectAsync(server.TcpEndPoint).WithTimeout();

        Assert.Equal(0, await client.GetStream().ReadAsync(new byte[16]).AsTask().WithTimeout());
    }

    private static byte[] Frame(byte[] message)
    {
        var frame = new byte[message.Length + 2];
        BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)message.Length);
        message.CopyTo(frame, 2);
        return frame;
    }

    private static async Task<byte[]> ReadFrameAsync(NetworkStream stream)
    {
        var prefix = new byte[2];
        await stream.ReadExactlyAsync(prefix).AsTask().WithTimeout();
        var body = new byte[BinaryPrimitives.ReadUInt16BigEndian(prefix)];
        await stream.ReadExactlyAsync(body).AsTask().WithTimeout();
        return body;
    }
}
