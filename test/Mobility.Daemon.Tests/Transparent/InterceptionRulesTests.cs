using Mobility.Daemon.Transparent;

namespace Mobility.Daemon.Tests.Transparent;

public sealed class InterceptionRulesTests
{
    [Fact]
    public void The_table_redirects_tcp_to_both_ranges_except_the_daemons_mark_and_replaces_an_old_one_in_one_transaction()
    {
        var rules = InterceptionRules.Install(VirtualAddressPool.Parse("100.77.0.0/16"), 0x6d6f62, 40001, 40002);

        Assert.StartsWith("add table inet mobility\ndelete table inet mobility\ntable inet mobility {\n", rules, StringComparison.Ordinal);
        Assert.Contains("type nat hook output priority -100; policy accept;", rules, StringComparison.Ordinal);
        Assert.Contains("meta mark 0x006d6f62 return", rules, StringComparison.Ordinal);
        Assert.Contains("ip daddr 100.77.0.0/16 meta l4proto tcp redirect to :40001", rules, StringComparison.Ordinal);
        Assert.Contains("ip6 daddr fd6d:6f62::/32 meta l4proto tcp redirect to :40002", rules, StringComparison.Ordinal);
        Assert.True(rules.IndexOf("meta mark", StringComparison.Ordinal) < rules.IndexOf("redirect", StringComparison.Ordinal), "the mark is checked first");
    }

    [Fact]
    public void Routes_go_to_lo_with_a_loopback_source_and_are_removed_by_the_same_prefixes()
    {
        var pool = VirtualAddressPool.Parse("10.20.0.0/24");

        var add = InterceptionRules.AddRoutes(pool);
        var del = InterceptionRules.DeleteRoutes(pool.ToString());

        Assert.Equal(["route", "replace", "10.20.0.0/24", "dev", "lo", "src", "127.0.0.1"], add[0]);
        Assert.Equal(["-6", "route", "replace", "fd6d:6f62::/32", "dev", "lo", "src", "::1"], add[1]);
        Assert.Equal(["route", "del", "10.20.0.0/24", "dev", "lo"], del[0]);
        Assert.Equal(["-6", "route", "del", "fd6d:6f62::/32", "dev", "lo"], del[1]);
        Assert.Equal("add table inet mobility\ndelete table inet mobility\n", InterceptionRules.Remove());
    }

    [Fact]
    public void Original_destinations_are_read_from_sockaddr_in_and_in6()
    {
        byte[] v4 = [2, 0, 0x1f, 0x90, 100, 77, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0];
        var v6 = new byte[28];
        v6[0] = 10;
        v6[2] = 0x01;
        v6[3] = 0xbb;
        IPAddress.Parse("fd6d:6f62::5").GetAddressBytes().CopyTo(v6, 8);

        Assert.Equal(new IPEndPoint(IPAddress.Parse("100.77.1.2"), 8080), OriginalDestination.Parse(v4));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("fd6d:6f62::5"), 443), OriginalDestination.Parse(v6));
        Assert.Null(OriginalDestination.Parse(v4[..6]));
        Assert.Null(OriginalDestination.Parse([1, 0, 0, 0]));
        Assert.Null(OriginalDestination.Parse([]));
    }

    [Fact]
    public void Resolv_conf_gets_the_stub_as_its_only_nameserver_and_keeps_its_other_lines()
    {
        var rewritten = ResolverIntegration.RewriteResolvConf("nameserver 10.0.0.1\nsearch example.org\nnameserver 10.0.0.2\noptions ndots:2\n",
            IPAddress.Parse("127.77.0.1"), "/var/lib/mobility/resolv.conf.backup");

        Assert.StartsWith(ResolverIntegration.Marker, rewritten, StringComparison.Ordinal);
        Assert.Contains("\nnameserver 127.77.0.1\nsearch example.org\noptions ndots:2\n", rewritten, StringComparison.Ordinal);
        Assert.DoesNotContain("10.0.0.", rewritten, StringComparison.Ordinal);
    }

    [Fact]
    public void Upstream_servers_are_the_nameserver_lines_without_the_stub()
    {
        var servers = DnsUpstream.Parse("# c\nnameserver 10.0.0.1\nnameserver 127.77.0.1\nnameserver fe80::1%eth0\nnameserver bogus\nsearch x\n",
            new IPEndPoint(IPAddress.Parse("127.77.0.1"), 53)).ToArray();

        Assert.Equal([new IPEndPoint(IPAddress.Parse("10.0.0.1"), 53), new IPEndPoint(IPAddress.Parse("fe80::1"), 53)], servers);
    }
}
