using System.Net;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.FunctionalTests.Addresses;

/// <summary>
/// An IPv6-only topology (no IPv4 address anywhere but loopback), no link emulator:
/// <code>
///   client ─e1── 2001:db8:c1::/64, 2001:db8:c2::/64 ──c1─┐
///   server ─e1── 2001:db8:51::/64, 2001:db8:52::/64 ──s1─┤ router (fe80::1 on every link)
///   gns    ─e1── 2001:db8:99::/64 ────────────────────g1─┘
/// </code>
/// The router serves both prefixes of each host link, so a move to the new prefix is the host's address change alone
/// (<see cref="LabHost.MoveAsync"/>: link down, old address deleted, new one added, link up, routes via fe80::1).
/// Hosts keep their addresses across link down (keep_addr_on_down) and skip duplicate address detection, so the
/// moves behave as the IPv4 ones of <see cref="EvaluationTopology"/>.
/// </summary>
internal sealed class Ipv6Lab(Lab lab, LabHost client, LabHost server, LabHost gns) : IAsyncDisposable
{
    private static readonly IPAddress RouterLinkLocal = IPAddress.Parse("fe80::1");

    public Lab Lab { get; } = lab;

    /// <summary>Interfaces: e1 on 2001:db8:c1::10 (attached), then the same link on 2001:db8:c2::10.</summary>
    public LabHost Client { get; } = client;

    /// <summary>Interfaces: e1 on 2001:db8:51::10 (attached), then the same link on 2001:db8:52::10.</summary>
    public LabHost Server { get; } = server;

    public LabHost Gns { get; } = gns;

    public static async Task<Ipv6Lab> CreateAsync()
    {
        var lab = Lab.Create();
        try
        {
            var router = await AddIpv6NamespaceAsync(lab, "r6", router: true);
            var client = await AddIpv6NamespaceAsync(lab, "c6", router: false);
            var server = await AddIpv6NamespaceAsync(lab, "s6", router: false);
            var gns = await AddIpv6NamespaceAsync(lab, "g6", router: false);
            await Lab.AddVethAsync(client, "e1", router, "c1");
            await Lab.AddVethAsync(server, "e1", router, "s1");
            await Lab.AddVethAsync(gns, "e1", router, "g1");
            await Ip.BatchAsync(router,
            [
                "addr add fe80::1/64 dev c1 nodad", "addr add 2001:db8:c1::1/64 dev c1 nodad", "addr add 2001:db8:c2::1/64 dev c1 nodad", "link set c1 up",
                "addr add fe80::1/64 dev s1 nodad", "addr add 2001:db8:51::1/64 dev s1 nodad", "addr add 2001:db8:52::1/64 dev s1 nodad", "link set s1 up",
                "addr add fe80::1/64 dev g1 nodad", "addr add 2001:db8:99::1/64 dev g1 nodad", "link set g1 up",
            ]);

            var clientHost = Host("client", client, "2001:db8:c1::10", "2001:db8:c2::10");
            var serverHost = Host("server", server, "2001:db8:51::10", "2001:db8:52::10");
            var gnsHost = new LabHost("gns", gns, [new HostInterface("e1", IPAddress.Parse("2001:db8:99::2"), 64, RouterLinkLocal, 201)]);
            foreach (var host in new[] { clientHost, serverHost, gnsHost })
            {
                await host.AttachAsync(host.Interfaces[0]);
            }

            return new Ipv6Lab(lab, clientHost, serverHost, gnsHost);
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
    }

    public ValueTask DisposeAsync() => Lab.DisposeAsync();

    private static LabHost Host(string role, string ns, string first, string second) => new(role, ns,
    [
        new HostInterface("e1", IPAddress.Parse(first), 64, RouterLinkLocal, 201),
        new HostInterface("e1", IPAddress.Parse(second), 64, RouterLinkLocal, 202),
    ]);

    /// <summary>A lab namespace with IPv6 turned back on (before any interface exists, so every interface inherits it).</summary>
    private static async Task<string> AddIpv6NamespaceAsync(Lab lab, string role, bool router)
    {
        var ns = await lab.AddNamespaceAsync(role, router);
        string[] settings = router
            ? ["net.ipv6.conf.all.forwarding=1"]
            : ["net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"];
        foreach (var setting in (string[])["net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0", .. settings])
        {
            var (key, value) = (setting[..setting.IndexOf('=', StringComparison.Ordinal)], setting[(setting.IndexOf('=', StringComparison.Ordinal) + 1)..]);
            await Ip.SysctlAsync(ns, key, value);
        }

        return ns;
    }
}
