using System.Net;
using System.Net.Sockets;
using Mobility.Netlab.Emulation;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Interop;
using Mobility.Netlab.Systems;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// The NAT kit's NATs behave as their kind says: the mapping two outside servers observe (RFC 4787 / RFC 5780
/// terms), what happens to unsolicited inbound packets, port forwards with and without hairpinning, the HTTPS-only
/// firewall, and rebinding. Real nftables in real namespaces; root only.
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class NatKitTests
{
    private const int InsidePort = 40000;

    private static Task<NatTopology> CreateAsync(params NatSiteOptions[] sites) =>
        NatTopology.CreateAsync(["s1", "s2"], sites).WithTimeout(NetlabTimeouts.Step);

    private static Socket Udp(LabHost host, int port = InsidePort)
    {
        var socket = NetworkNamespace.Run(host.Namespace, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        socket.Bind(new IPEndPoint(IPAddress.Any, port));
        return socket;
    }

    private static Socket Tcp(LabHost host, int port = InsidePort)
    {
        var socket = LabSockets.Create(host.Namespace, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.Bind(new IPEndPoint(IPAddress.Any, port));
        return socket;
    }

    private static AddressReflector Reflector(NatTopology topology, string role) => new(topology.Public(role).Namespace, topology.Public(role).PrimaryAddress);

    /// <summary>From one UDP socket of the site's host: the mapping s1 sees, the one s2 sees, and s1's again.</summary>
    private static async Task<(IPEndPoint S1, IPEndPoint S2, IPEndPoint S1Again)> ObserveFromBothAsync(NatTopology topology, NatSite site)
    {
        await using var s1 = Reflector(topology, "s1");
        await using var s2 = Reflector(topology, "s2");
        using var udp = Udp(site.Host);
        var first = await s1.ObserveUdpAsync(udp);
        var second = await s2.ObserveUdpAsync(udp);
        return (first, second, await s1.ObserveUdpAsync(udp));
    }

    [NatKitFact]
    public async Task Masquerade_maps_one_inside_endpoint_to_the_same_outside_endpoint_for_every_server()
    {
        string prefix;
        await using (var topology = await CreateAsync(new NatSiteOptions { Role = "home" }))
        {
            prefix = topology.Lab.Prefix;
            var site = topology.Site("home");
            var (seenByS1, seenByS2, _) = await ObserveFromBothAsync(topology, site);

            Assert.Equal(new IPEndPoint(site.PublicAddress, InsidePort), seenByS1); // translated, port kept
            Assert.Equal(seenByS1, seenByS2); // endpoint-independent mapping

            // TCP from one bound port to both servers: the same mapping too.
            await using var s1 = Reflector(topology, "s1");
            await using var s2 = Reflector(topology, "s2");
            using var tcp1 = Tcp(site.Host);
            using var tcp2 = Tcp(site.Host);
            Assert.Equal(await s1.ObserveTcpAsync(tcp1), await s2.ObserveTcpAsync(tcp2));
            Assert.Equal(4, (await LabCleanup.ListNamespacesAsync()).Count(n => n.StartsWith(prefix + "s", StringComparison.Ordinal) || n.StartsWith(prefix + "home", StringComparison.Ordinal)));
        }

        Assert.DoesNotContain(await LabCleanup.ListNamespacesAsync().WithTimeout(NetlabTimeouts.Step), n => n.StartsWith(prefix, StringComparison.Ordinal));
    }

    [NatKitFact]
    public async Task Random_fully_masquerade_maps_each_server_to_a_different_outside_port()
    {
        await using var topology = await CreateAsync(new NatSiteOptions { Role = "hotel", Kind = NatKind.Symmetric });
        var site = topology.Site("hotel");

        var (seenByS1, seenByS2, seenByS1Again) = await ObserveFromBothAsync(topology, site);

        Assert.Equal(site.PublicAddress, seenByS1.Address);
        Assert.Equal(site.PublicAddress, seenByS2.Address);
        Assert.NotEqual(seenByS1.Port, seenByS2.Port); // destination-dependent mapping
        Assert.Equal(seenByS1, seenByS1Again); // but stable for one destination
    }

    [NatKitFact]
    public async Task Double_nat_shows_the_carrier_address_with_an_endpoint_independent_mapping()
    {
        await using var topology = await CreateAsync(new NatSiteOptions { Role = "phone", Kind = NatKind.Double });
        var site = topology.Site("phone");
        Assert.Equal(2, site.Routers.Count);

        var (seenByS1, seenByS2, _) = await ObserveFromBothAsync(topology, site);

        Assert.Equal(new IPEndPoint(site.PublicAddress, InsidePort), seenByS1);
        Assert.Equal(seenByS1, seenByS2);
        // Two translations: the home router's outside address is carrier-private, not what servers see.
        var homeWan = await new LabHost("home", site.Routers[1], []).GetAddressesAsync().WithTimeout(NetlabTimeouts.Step);
        Assert.Contains(homeWan, a => a.Interface == "wan" && a.Address.ToString().StartsWith("100.64.", StringComparison.Ordinal));
    }

    [NatKitFact]
    public async Task Unsolicited_inbound_is_reset_by_plain_masquerade_even_from_the_mapped_server()
    {
        await using var topology = await CreateAsync(new NatSiteOptions { Role = "home" });
        var site = topology.Site("home");
        await using var s1 = Reflector(topology, "s1");
        // A TCP connection from the host to s1 stays open: its mapping exists while others knock on it.
        using var open = Tcp(site.Host);
        var mapping = await s1.ObserveTcpAsync(open);
        Assert.Equal(site.PublicAddress, mapping.Address);

        foreach (var from in new[] { topology.Public("s2"), topology.Public("s1") })
        {
            using var intruder = LabSockets.Create(from.Namespace, ProtocolType.Tcp);
            var error = await Assert.ThrowsAsync<SocketException>(() => intruder.ConnectAsync(mapping).WithTimeout());
            Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode); // the NAT router itself answers RST
        }
    }

    [NatKitFact]
    public async Task Unsolicited_inbound_is_dropped_silently_when_the_nat_drops()
    {
        await using var topology = await CreateAsync(new NatSiteOptions { Role = "home", DropUnsolicited = true });
        var site = topology.Site("home");
        await using var reflector = Reflector(topology, "s1");
        using var open = Tcp(site.Host);
        var mapping = await reflector.ObserveTcpAsync(open);

        using var intruder = LabSockets.Create(topology.Public("s2").Namespace, ProtocolType.Tcp);
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        // Neither a connection nor a refusal: the SYN vanished (a reset would have ended the attempt at once).
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => intruder.ConnectAsync(mapping, patience.Token).AsTask().WithTimeout());
        var counters = await Ip.ExecAsync(site.Routers[0], "nft", ["list", "table", "ip", "unsolicited"]).WithTimeout(NetlabTimeouts.Step);
        Assert.Matches(@"counter packets [1-9]", counters.StandardOutput);
    }

    [NatKitFact]
    public async Task Https_only_firewall_lets_tcp_443_out_and_nothing_else()
    {
        await using var topology = await CreateAsync(new NatSiteOptions { Role = "hotel", Kind = NatKind.HttpsOnly });
        var site = topology.Site("hotel");
        var server = topology.Public("s1");
        using var https = LabSockets.Create(server.Namespace, ProtocolType.Tcp);
        https.Bind(new IPEndPoint(server.PrimaryAddress, 443));
        https.Listen(4);
        using var other = LabSockets.Create(server.Namespace, ProtocolType.Tcp);
        other.Bind(new IPEndPoint(server.PrimaryAddress, 7391));
        other.Listen(4);

        using var allowed = LabSockets.Create(site.Host.Namespace, ProtocolType.Tcp);
        await allowed.ConnectAsync(new IPEndPoint(server.PrimaryAddress, 443)).WithTimeout();
        using var accepted = await https.AcceptAsync().WithTimeout();
        Assert.Equal(site.PublicAddress, ((IPEndPoint)accepted.RemoteEndPoint!).Address);

        using var blocked = LabSockets.Create(site.Host.Namespace, ProtocolType.Tcp);
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => blocked.ConnectAsync(new IPEndPoint(server.PrimaryAddress, 7391), patience.Token).AsTask().WithTimeout());
        using var udp = Udp(site.Host);
        await using var reflector = new AddressReflector(server.Namespace, server.PrimaryAddress);
        await udp.SendToAsync(new byte[] { 1 }, reflector.EndPoint).WithTimeout();
        using var udpPatience = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => udp.ReceiveFromAsync(new byte[64], new IPEndPoint(IPAddress.Any, 0), udpPatience.Token).AsTask().WithTimeout());
    }

    [NatKitFact]
    public async Task Port_forward_reaches_the_inside_host_and_hairpins_only_when_asked()
    {
        const int Forwarded = 7391;
        await using var topology = await CreateAsync(
            new NatSiteOptions { Role = "hairpin", Forwards = [PortForward.Tcp(Forwarded)], Hairpin = true },
            new NatSiteOptions { Role = "plain", Forwards = [PortForward.Tcp(Forwarded)] },
            new NatSiteOptions { Role = "cgn", Kind = NatKind.Double, Forwards = [PortForward.Tcp(Forwarded)] });
        var outside = topology.Public("s1");
        foreach (var role in new[] { "hairpin", "plain", "cgn" })
        {
            var site = topology.Site(role);
            using var listener = Tcp(site.Host, Forwarded);
            listener.Listen(4);

            using var client = LabSockets.Create(outside.Namespace, ProtocolType.Tcp);
            await client.ConnectAsync(new IPEndPoint(site.PublicAddress, Forwarded)).WithTimeout();
            using var accepted = await listener.AcceptAsync().WithTimeout();
            Assert.Equal(outside.PrimaryAddress, ((IPEndPoint)accepted.RemoteEndPoint!).Address); // DNAT only: the source is kept

            using var inside = LabSockets.Create(site.Host.Namespace, ProtocolType.Tcp);
            if (role == "hairpin")
            {
                await inside.ConnectAsync(new IPEndPoint(site.PublicAddress, Forwarded)).WithTimeout();
                using var hairpinned = await listener.AcceptAsync().WithTimeout();
                Assert.Equal(IPAddress.Parse("192.168.1.1"), ((IPEndPoint)hairpinned.RemoteEndPoint!).Address); // through the NAT
            }
            else
            {
                var error = await Assert.ThrowsAsync<SocketException>(() => inside.ConnectAsync(new IPEndPoint(site.PublicAddress, Forwarded)).WithTimeout());
                Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);
            }
        }
    }

    [NatKitFact]
    public async Task A_site_without_a_nat_is_public_and_two_sites_behind_one_nat_reach_each_other_only_by_private_address()
    {
        await using var topology = await CreateAsync(
            new NatSiteOptions { Role = "public", Kind = NatKind.None },
            new NatSiteOptions { Role = "a" },
            new NatSiteOptions { Role = "b", SameNatAs = "a" });
        await using var s1 = Reflector(topology, "s1");

        // No NAT: servers see the host's own address, and anyone outside reaches its listener.
        var open = topology.Site("public");
        Assert.Empty(open.Routers);
        using (var tcp = Tcp(open.Host))
        {
            Assert.Equal(new IPEndPoint(open.Host.PrimaryAddress, InsidePort), await s1.ObserveTcpAsync(tcp));
        }

        using (var listener = Tcp(open.Host, InsidePort + 1))
        {
            listener.Listen(4);
            using var outsider = LabSockets.Create(topology.Public("s2").Namespace, ProtocolType.Tcp);
            await outsider.ConnectAsync(new IPEndPoint(open.PublicAddress, InsidePort + 1)).WithTimeout();
            using var accepted = await listener.AcceptAsync().WithTimeout();
        }

        // One NAT, two LAN ports: b goes out through a's NAT, reaches a's private address untranslated, never its mapping.
        var a = topology.Site("a");
        var b = topology.Site("b");
        Assert.Equal(a.PublicAddress, b.PublicAddress);
        using var aOut = Tcp(a.Host);
        var aMapping = await s1.ObserveTcpAsync(aOut);
        using (var bOut = Tcp(b.Host))
        {
            Assert.Equal(a.PublicAddress, (await s1.ObserveTcpAsync(bOut)).Address);
        }

        using var aListener = Tcp(a.Host, InsidePort + 1);
        aListener.Listen(4);
        using (var lan = LabSockets.Create(b.Host.Namespace, ProtocolType.Tcp))
        {
            await lan.ConnectAsync(new IPEndPoint(a.Host.PrimaryAddress, InsidePort + 1)).WithTimeout();
            using var accepted = await aListener.AcceptAsync().WithTimeout();
            Assert.Equal(b.Host.PrimaryAddress, ((IPEndPoint)accepted.RemoteEndPoint!).Address); // LAN to LAN: no translation
        }

        foreach (var target in new[] { aMapping, new IPEndPoint(a.PublicAddress, InsidePort + 1) })
        {
            using var hairpin = LabSockets.Create(b.Host.Namespace, ProtocolType.Tcp);
            var error = await Assert.ThrowsAsync<SocketException>(() => hairpin.ConnectAsync(target).WithTimeout());
            Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode); // no hairpinning: the NAT router answers RST
        }
    }

    [NatKitFact]
    public async Task Flushing_keeps_the_port_but_a_new_port_range_rebinds_the_mapping()
    {
        await using var topology = await CreateAsync(new NatSiteOptions { Role = "home" });
        var site = topology.Site("home");
        using var udp = Udp(site.Host);
        await using var reflector = Reflector(topology, "s1");
        Assert.Equal(InsidePort, (await reflector.ObserveUdpAsync(udp)).Port);

        await site.FlushMappingsAsync().WithTimeout(NetlabTimeouts.Step);
        Assert.Equal(InsidePort, (await reflector.ObserveUdpAsync(udp)).Port); // masquerade keeps a free source port

        await site.ChangePortRangeAsync(20000, 20999).WithTimeout(NetlabTimeouts.Step);
        var rebound = await reflector.ObserveUdpAsync(udp);
        Assert.Equal(site.PublicAddress, rebound.Address);
        Assert.InRange(rebound.Port, 20000, 20999);
    }

    [NatKitFact]
    public async Task A_far_public_host_crosses_the_link_between_the_sites_and_the_others_do_not()
    {
        // DelayBetweenSitesAsync(alsoPublic: s1) puts s1 (a far relay) behind the sites' emulated link both ways: a TCP
        // connect from either site to s1 takes a round trip of it (2 x 20 ms), however loaded the machine (the emulator
        // holds each packet for its delay); s2 stays reachable without it.
        await using var topology = await CreateAsync(new NatSiteOptions { Role = "a" }, new NatSiteOptions { Role = "b" });
        await topology.DelayBetweenSitesAsync("a", "b", new LinkEmulatorOptions { Delay = TimeSpan.FromMilliseconds(20) }, NetlabTimeouts.Step, ["s1"])
            .WithTimeout(NetlabTimeouts.Step);
        foreach (var role in new[] { "s1", "s2" })
        {
            var server = topology.Public(role);
            using var listener = LabSockets.Create(server.Namespace, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(server.PrimaryAddress, 7391));
            listener.Listen(8);
            foreach (var site in new[] { "a", "b" })
            {
                using var client = LabSockets.Create(topology.Site(site).Host.Namespace, ProtocolType.Tcp);
                var started = System.Diagnostics.Stopwatch.GetTimestamp();
                await client.ConnectAsync(new IPEndPoint(server.PrimaryAddress, 7391)).WithTimeout();
                var took = System.Diagnostics.Stopwatch.GetElapsedTime(started);
                using var accepted = await listener.AcceptAsync().WithTimeout();
                Assert.Equal(topology.Site(site).PublicAddress, ((IPEndPoint)accepted.RemoteEndPoint!).Address);
                if (role == "s1")
                {
                    Assert.True(took >= TimeSpan.FromMilliseconds(39), $"{site} to {role}: connect took {took.TotalMilliseconds:F1} ms");
                }
            }
        }
    }
}
