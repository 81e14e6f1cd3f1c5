using System.Buffers.Binary;
using System.Net;
using Mobility.Daemon.Access;
using Mobility.Daemon.Transparent;

namespace Mobility.Daemon.Tests.Transparent;

public sealed class UdpInterceptionTests
{
    private static readonly VirtualAddressPool Pool = VirtualAddressPool.Parse("100.77.0.0/16");

    [Fact]
    public void The_udp_chains_mark_on_output_and_tproxy_on_lo_both_families_except_the_daemons_mark()
    {
        var rules = InterceptionRules.InstallUdp(Pool, 0x6d6f62, 0x6d6f63, 40003, 40004);

        Assert.StartsWith("table inet mobility {\n\tchain udp-output {\n\t\ttype route hook output priority mangle; policy accept;\n\t\tmeta mark 0x006d6f62 return\n",
            rules, StringComparison.Ordinal);
        Assert.Contains("\t\tip daddr 100.77.0.0/16 meta l4proto udp meta mark set 0x006d6f63\n", rules, StringComparison.Ordinal);
        Assert.Contains("\t\tip6 daddr fd6d:6f62::/32 meta l4proto udp meta mark set 0x006d6f63\n", rules, StringComparison.Ordinal);
        Assert.Contains("\tchain udp-prerouting {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\t\tmeta mark 0x006d6f62 return\n",
            rules, StringComparison.Ordinal);
        Assert.Contains("\t\tiif \"lo\" ip daddr 100.77.0.0/16 meta l4proto udp tproxy ip to 127.0.0.1:40003 meta mark set 0x006d6f63 accept\n",
            rules, StringComparison.Ordinal);
        Assert.Contains("\t\tiif \"lo\" ip6 daddr fd6d:6f62::/32 meta l4proto udp tproxy ip6 to [::1]:40004 meta mark set 0x006d6f63 accept\n",
            rules, StringComparison.Ordinal);
        Assert.DoesNotContain("tcp", rules, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_an_ipv6_listener_the_udp_chains_have_no_ipv6_lines()
    {
        var rules = InterceptionRules.InstallUdp(Pool, 0x6d6f62, 0x6d6f63, 40003, null);

        Assert.DoesNotContain("ip6", rules, StringComparison.Ordinal);
        Assert.Contains("tproxy ip to 127.0.0.1:40003", rules, StringComparison.Ordinal);
        Assert.Contains("\t\tip daddr 100.77.0.0/16 meta l4proto udp meta mark set 0x006d6f63\n\t}\n", rules, StringComparison.Ordinal);
    }

    [Fact]
    public void Udp_policy_routing_sends_the_mark_to_a_local_table_and_is_removed_by_the_same_selectors()
    {
        var add = InterceptionRules.UdpRoutes(7171939);
        var del = InterceptionRules.UdpRoutes(7171939, remove: true);

        Assert.Equal(["rule", "add", "fwmark", "7171939", "lookup", "7171939", "priority", "7170"], add[0]);
        Assert.Equal(["route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", "7171939"], add[1]);
        Assert.Equal(["-6", "rule", "add", "fwmark", "7171939", "lookup", "7171939", "priority", "7170"], add[2]);
        Assert.Equal(["-6", "route", "replace", "local", "::/0", "dev", "lo", "table", "7171939"], add[3]);
        for (var i = 0; i < add.Count; i++)
        {
            var verb = Array.IndexOf(add[i], add[i].Contains("rule") ? "add" : "replace");
            Assert.Equal([.. add[i][..verb], "del", .. add[i][(verb + 1)..]], del[i]);
        }
    }

    [Fact]
    public void The_original_destination_is_found_among_control_messages_of_either_family()
    {
        var ipv4 = new IPEndPoint(IPAddress.Parse("100.77.3.4"), 5201);
        var ipv6 = new IPEndPoint(IPAddress.Parse("fd6d:6f62::1234"), 5201);

        Assert.Equal(ipv4, OriginalDestination.FromControlMessages(ControlMessage(0, 20, SockAddr(ipv4))));
        // After another message (a timestamp, SOL_SOCKET 29, 16 octets), aligned to 8.
        Assert.Equal(ipv6, OriginalDestination.FromControlMessages([.. ControlMessage(1, 29, new byte[13]), .. ControlMessage(41, 74, SockAddr(ipv6))]));
    }

    [Fact]
    public void Missing_or_malformed_control_messages_give_no_destination()
    {
        var v4 = SockAddr(new IPEndPoint(IPAddress.Parse("100.77.3.4"), 5201));
        var message = ControlMessage(0, 20, v4);

        Assert.Null(OriginalDestination.FromControlMessages([]));
        Assert.Null(OriginalDestination.FromControlMessages(ControlMessage(0, 8, v4)));
        Assert.Null(OriginalDestination.FromControlMessages(message[..20]));
        var tooLong = message.ToArray();
        BinaryPrimitives.WriteUInt64LittleEndian(tooLong, ulong.MaxValue);
        Assert.Null(OriginalDestination.FromControlMessages(tooLong));
        var tooShort = message.ToArray();
        BinaryPrimitives.WriteUInt64LittleEndian(tooShort, 3);
        Assert.Null(OriginalDestination.FromControlMessages(tooShort));
        Assert.Null(OriginalDestination.FromControlMessages(ControlMessage(0, 20, [2, 0, 0x14])));
        var random = new Random(17);
        for (var i = 0; i < 2000; i++)
        {
            var bytes = new byte[random.Next(0, 80)];
            random.NextBytes(bytes);
            _ = OriginalDestination.FromControlMessages(bytes);
        }
    }

    [Fact]
    public void The_udp_owner_is_the_most_specific_row_and_unknown_when_two_owners_tie()
    {
        var source = new IPEndPoint(IPAddress.Loopback, 40000);
        var destination = new IPEndPoint(IPAddress.Parse("100.77.3.4"), 5201);
        var exact = TcpSocketTable.Format(source);
        var wildcard = TcpSocketTable.Format(new IPEndPoint(IPAddress.Any, 40000));
        var connected = TcpSocketTable.Format(destination);
        var none = TcpSocketTable.Format(new IPEndPoint(IPAddress.Any, 0));
        var other = TcpSocketTable.Format(new IPEndPoint(IPAddress.Loopback, 40001));

        Assert.Equal((2, (uint?)1000u), Owner((wildcard, none, 1000u), (other, none, 0u)));
        Assert.Equal(1001u, Owner((wildcard, none, 1000u), (exact, connected, 1001u)).Owner);
        Assert.Equal(1002u, Owner((exact, none, 1002u), (other, connected, 0u)).Owner);
        Assert.Null(Owner((exact, none, 1002u), (wildcard, connected, 1003u)).Owner);
        Assert.Null(Owner((wildcard, none, 1000u), (wildcard, none, 1001u)).Owner);
        Assert.Equal(1000u, Owner((wildcard, none, 1000u), (wildcard, none, 1000u)).Owner);
        Assert.Equal((0, (uint?)null), Owner((other, connected, 0u)));
        Assert.Null(Owner((exact, connected, null)).Owner);

        (int Score, uint? Owner) Owner(params (string Local, string Remote, uint? Owner)[] rows) => UdpSocketTable.Best(rows, source, destination);
    }

    /// <summary>A sockaddr_in (16 octets) or sockaddr_in6 (28): family in host order, port and address in network order.</summary>
    private static byte[] SockAddr(IPEndPoint endPoint)
    {
        var ipv6 = endPoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        var sockaddr = new byte[ipv6 ? 28 : 16];
        BinaryPrimitives.WriteUInt16LittleEndian(sockaddr, (ushort)(ipv6 ? 10 : 2));
        BinaryPrimitives.WriteUInt16BigEndian(sockaddr.AsSpan(2), (ushort)endPoint.Port);
        endPoint.Address.GetAddressBytes().CopyTo(sockaddr, ipv6 ? 8 : 4);
        return sockaddr;
    }

    /// <summary>A cmsghdr (LP64: length u64, level i32, type i32) and its data, padded to 8 octets.</summary>
    private static byte[] ControlMessage(int level, int type, byte[] data)
    {
        var message = new byte[(16 + data.Length + 7) & ~7];
        BinaryPrimitives.WriteUInt64LittleEndian(message, (ulong)(16 + data.Length));
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(8), level);
        BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(12), type);
        data.CopyTo(message, 16);
        return message;
    }
}
