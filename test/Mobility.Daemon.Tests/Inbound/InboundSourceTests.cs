using Mobility.Daemon.Forwarding;
using Mobility.Daemon.Inbound;
using Mobility.Daemon.Transparent;

namespace Mobility.Daemon.Tests.Inbound;

public sealed class InboundSourceTests
{
    private static readonly HostGuid Peer = HostGuid.Parse("0123456789abcdef0123456789abcdef01234567");

    [Theory]
    [InlineData(InboundSource.Auto, true, InboundSource.Virtual)]
    [InlineData(InboundSource.Auto, false, InboundSource.Local)]
    [InlineData(InboundSource.Virtual, false, InboundSource.Virtual)]
    [InlineData(InboundSource.Virtual, true, InboundSource.Virtual)]
    [InlineData(InboundSource.Local, true, InboundSource.Local)]
    [InlineData(InboundSource.Local, false, InboundSource.Local)]
    public void Auto_is_virtual_only_while_transparent_mode_is_on_and_a_chosen_source_is_kept(InboundSource requested, bool transparentOn,
        InboundSource expected)
        => Assert.Equal(expected, InboundDelivery.Choose(requested, transparentOn));

    [Theory]
    [InlineData("virtual", InboundSource.Virtual)]
    [InlineData("local", InboundSource.Local)]
    [InlineData("auto", InboundSource.Auto)]
    [InlineData("", InboundSource.Auto)]
    [InlineData(null, InboundSource.Auto)]
    public void Source_names_parse_and_auto_has_the_empty_name(string? name, InboundSource expected)
    {
        Assert.Equal(expected, InboundSources.Parse(name));
        Assert.Equal(expected, InboundSources.Parse(InboundSources.ToName(expected) is { Length: > 0 } back ? back : null));
    }

    [Theory]
    [InlineData("Virtual")]
    [InlineData("remote")]
    [InlineData("virtual\n")]
    public void An_unknown_source_name_is_refused_with_one_safe_line(string name)
    {
        var e = Assert.Throws<ArgumentException>(() => InboundSources.Parse(name));
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void The_routes_are_local_routes_in_the_daemons_table_for_loopback_answers_to_the_virtual_ranges()
    {
        var pool = VirtualAddressPool.Parse("100.77.0.0/16");

        Assert.Equal(
        [
            "route replace local 100.77.0.0/16 dev lo src 127.0.0.1 table 7171938",
            "rule add from 127.0.0.1 to 100.77.0.0/16 lookup 7171938 priority 32700",
        ], InboundRoutes.AddIpv4(pool).Select(c => string.Join(' ', c)));
        Assert.Equal(
        [
            "-6 route replace local fd6d:6f62::/32 dev lo table 7171938",
            "-6 rule add from ::1 to fd6d:6f62::/32 lookup 7171938 priority 32700",
        ], InboundRoutes.AddIpv6().Select(c => string.Join(' ', c)));
    }

    [Fact]
    public void Each_route_and_rule_added_is_deleted_with_the_same_selector()
    {
        var pool = VirtualAddressPool.Parse("10.99.0.0/24");
        string[] added = [.. InboundRoutes.AddIpv4(pool).Concat(InboundRoutes.AddIpv6()).Select(Selector)];
        string[] deleted = [.. InboundRoutes.DeleteIpv4(pool.ToString()).Concat(InboundRoutes.DeleteIpv6()).Select(Selector)];

        Assert.Equal(added.Order(StringComparer.Ordinal), deleted.Order(StringComparer.Ordinal));

        // "route replace local P dev lo src S table T" is removed by "route del local P dev lo table T": compare without the verb and src.
        static string Selector(string[] command)
        {
            var words = command.Where(w => w is not ("add" or "del" or "replace")).ToList();
            var src = words.IndexOf("src");
            if (src >= 0)
            {
                words.RemoveRange(src, 2);
            }

            return string.Join(' ', words);
        }
    }

    [Fact]
    public void An_exposed_port_keeps_its_source_until_exposed_again_and_only_an_allowed_peer_finds_it()
    {
        var ports = new ExposedPorts(Options.Create(new MobilitydOptions()));
        var other = HostGuid.Parse("ffffffffffffffffffffffffffffffffffffffff");

        ports.Expose(8080, source: InboundSource.Virtual);
        ports.Expose(5353, [Peer], udp: true, source: InboundSource.Local);

        Assert.Equal(InboundSource.Virtual, ports.Find(8080, Peer)?.Source);
        Assert.Equal(InboundSource.Local, ports.Find(5353, Peer, udp: true)?.Source);
        Assert.Null(ports.Find(5353, other, udp: true));
        Assert.Null(ports.Find(5353, Peer));

        ports.Expose(8080);
        Assert.Equal(InboundSource.Auto, ports.Find(8080, Peer)?.Source);
    }
}
