using System.Net;
using Mobility.Netlab.FunctionalTests.Infrastructure;

namespace Mobility.Netlab.FunctionalTests.Addresses;

/// <summary>
/// mobilityd's address monitor against a real kernel (a namespace with IPv6 and duplicate address detection on):
/// each change is one event, and only usable addresses are published. The tests wait on the events; a "fence" (an
/// IPv4 address added and removed after the change) shows that nothing else was published in between.
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class AddressEventTests
{
    private static readonly IPAddress A = IPAddress.Parse("2001:db8:1::10");
    private static readonly IPAddress B = IPAddress.Parse("2001:db8:2::10");

    [NetlabFact]
    public async Task An_ipv6_address_added_and_removed_raises_one_event_each()
    {
        await using var daemon = await AddressWatchingDaemon.StartAsync().WithTimeout(NetlabTimeouts.Step);
        var before = daemon.Changes.Count;

        await daemon.IpAsync($"addr add {A}/64 dev a0 nodad");
        var added = await daemon.WaitForAsync(s => s.Contains(A), "the IPv6 address", before);
        var fence = await daemon.FenceAsync();
        Assert.True(fence == added + 1, "one event for the added address: " + daemon.Describe());

        await daemon.IpAsync($"addr del {A}/64 dev a0");
        var removed = await daemon.WaitForAsync(s => !s.Contains(A), "the IPv6 address removed", fence + 2);
        fence = await daemon.FenceAsync();
        Assert.True(fence == removed + 1, "one event for the removed address: " + daemon.Describe());
    }

    [NetlabFact]
    public async Task A_move_to_a_new_ipv6_prefix_in_one_batch_is_one_event_with_the_new_set()
    {
        await using var daemon = await AddressWatchingDaemon.StartAsync().WithTimeout(NetlabTimeouts.Step);
        await daemon.IpAsync($"addr add {A}/64 dev a0 nodad");
        var start = await daemon.WaitForAsync(s => s.Contains(A), "the first address") + 1;

        // The old prefix goes and the new one comes in one batch (as the netlab's moves do), with the new default route.
        await daemon.IpAsync($"addr del {A}/64 dev a0", $"addr add {B}/64 dev a0 nodad", "route replace default via 2001:db8:2::1 dev a0");
        var moved = await daemon.WaitForAsync(s => s.Contains(B), "the new address", start);
        var fence = await daemon.FenceAsync();

        Assert.True(moved == start && fence == moved + 1, "exactly one event, to the new set: " + daemon.Describe());
        Assert.DoesNotContain(A, daemon.Changes[moved]);
    }

    [NetlabFact]
    public async Task A_move_with_the_link_going_down_and_up_in_one_batch_is_one_event_with_the_new_set()
    {
        await using var daemon = await AddressWatchingDaemon.StartAsync().WithTimeout(NetlabTimeouts.Step);
        var first = IPAddress.Parse("198.51.100.2");
        var next = IPAddress.Parse("203.0.113.2");
        await daemon.IpAsync($"addr add {first}/24 dev a0");
        var start = await daemon.WaitForAsync(s => s.Contains(first), "the first address") + 1;

        // The netlab's IPv4 move: carrier lost, old address deleted, new one added, link up. The link going down
        // empties the set before the new address arrives; the monitor must not publish that empty set.
        await daemon.IpAsync("link set a0 down", $"addr del {first}/24 dev a0", $"addr add {next}/24 dev a0", "link set a0 up");
        var moved = await daemon.WaitForAsync(s => s.Contains(next), "the new address", start);
        var fence = await daemon.FenceAsync();

        Assert.True(moved == start && fence == moved + 1, "exactly one event, to the new set: " + daemon.Describe());
    }

    [NetlabFact]
    public async Task A_deprecated_address_is_not_published_while_a_preferred_one_exists()
    {
        await using var daemon = await AddressWatchingDaemon.StartAsync().WithTimeout(NetlabTimeouts.Step);
        await daemon.IpAsync($"addr add {A}/64 dev a0 nodad");
        var start = await daemon.WaitForAsync(s => s.Contains(A), "the preferred address");

        // A privacy rotation's old address: preferred lifetime 0, still valid.
        await daemon.IpAsync($"addr add {B}/64 dev a0 nodad preferred_lft 0");
        await daemon.FenceAsync();
        Assert.All(daemon.Changes.Skip(start), s => Assert.DoesNotContain(B, s));

        // The preferred one goes: the deprecated one is the only IPv6 address left, and better than none.
        await daemon.IpAsync($"addr del {A}/64 dev a0");
        await daemon.WaitForAsync(s => s.Contains(B) && !s.Contains(A), "the deprecated address once it is the only one", start + 1);
    }

    [NetlabFact]
    public async Task Tentative_and_failed_duplicate_detection_addresses_are_not_published()
    {
        await using var daemon = await AddressWatchingDaemon.StartAsync().WithTimeout(NetlabTimeouts.Step);
        var start = daemon.Changes.Count;
        // a1 already holds B: a0's B fails duplicate detection. A stays tentative for minutes (60 probes 10 s apart).
        await Mobility.Netlab.Topology.Ip.SysctlAsync(daemon.Namespace, "net.ipv6.conf.a0.dad_transmits", "60");
        await Mobility.Netlab.Topology.Ip.SysctlAsync(daemon.Namespace, "net.ipv6.neigh.a0.retrans_time_ms", "10000");
        await daemon.IpAsync($"addr add {B}/64 dev a1 nodad");
        await daemon.WaitForAsync(s => s.Contains(B), "a1's address", start);
        await daemon.IpAsync($"addr add {B}/64 dev a0", $"addr add {A}/64 dev a0");
        await Mobility.Testing.TestTimeout.Eventually(
            async () => (await Mobility.Netlab.Topology.Ip.InAsync(daemon.Namespace, "-6", "addr", "show", "dev", "a0")).Contains("dadfailed", StringComparison.Ordinal),
            "duplicate address detection to fail", NetlabTimeouts.Step);
        await daemon.IpAsync($"addr del {B}/64 dev a1");
        var fence = await daemon.FenceAsync();

        // B was published while a1 held it; after a1 dropped it only a0's failed copy is left.
        Assert.DoesNotContain(B, daemon.Changes[fence]);
        Assert.All(daemon.Changes.Skip(start), s => Assert.DoesNotContain(A, s));
        Assert.Contains("tentative", await Mobility.Netlab.Topology.Ip.InAsync(daemon.Namespace, "-6", "addr", "show", "dev", "a0"), StringComparison.Ordinal);
    }
}
