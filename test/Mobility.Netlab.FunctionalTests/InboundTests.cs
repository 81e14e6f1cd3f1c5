using System.Net;
using System.Net.Sockets;
using System.Text;
using Mobility.Daemon.Client;
using Mobility.Net.Socks5;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Interop;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// Inbound delivery with the peer's virtual address as the source (issue 17, docs/transparent.md "Inbound"),
/// with real mobilityd processes in two namespaces: the server host exposes ports with <c>source virtual</c>;
/// the applications behind them (sockets of this test, made in the server namespace) see the client host's
/// virtual IPv4 address (the server's pool mapping) on 127.0.0.1, its GUID-derived IPv6 address on ::1, and
/// the same addresses after the client host moved; UDP datagrams come from the virtual IPv4 address and the
/// answers get back. The daemon's stop removes its routes and rule.
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class InboundTests
{
    private const ushort Ipv4Port = 8081;
    private const ushort Ipv6Port = 8082;
    private const ushort UdpPort = 5301;
    private const string RoutingTable = "7171938";

    [NetlabFact]
    public async Task Exposed_ports_see_the_clients_virtual_addresses_before_and_after_it_moves_and_stop_removes_the_routes()
    {
        await using var lab = Lab.Create();
        var (server, client) = await TransparentTests.LinkAsync(lab);

        // The applications: TCP on 127.0.0.1 and on ::1 only, UDP on 127.0.0.1.
        using var tcp4 = Listen(server, new IPEndPoint(IPAddress.Loopback, Ipv4Port));
        using var tcp6 = Listen(server, new IPEndPoint(IPAddress.IPv6Loopback, Ipv6Port));
        using var udp = NetworkNamespace.Run(server, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        udp.Bind(new IPEndPoint(IPAddress.Loopback, UdpPort));

        var serverState = lab.CreateTemporaryDirectory("server");
        var peer = await TransparentTests.StartDaemonAsync(lab, server, "server", serverState, ["--embedded-gns", "--name", "peer"]);
        var peerGuid = peer.Ready.Require("guid");
        using (var api = new DaemonClient(peer.Socket))
        {
            foreach (var (port, isUdp) in new[] { (Ipv4Port, false), (Ipv6Port, false), (UdpPort, true) })
            {
                var reply = await api.ExposeAsync(port, null, isUdp, "virtual", CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
                var entry = reply.GetProperty(isUdp ? "udp" : "exposed").EnumerateArray().Single(e => e.GetProperty("port").GetInt32() == port);
                Assert.Equal("virtual", entry.GetProperty("source").GetString());
            }
        }

        var near = await TransparentTests.StartDaemonAsync(lab, client, "client", null,
            ["--gns", $"{TransparentTests.ServerV4}:7353", "--socks", "127.0.0.1:1080"]);
        var clientGuid = near.Ready.Require("guid");
        var expected6 = VirtualIpv6(clientGuid);

        using var first = await OpenAsync(client, peerGuid, Ipv4Port);
        using var accepted1 = await tcp4.AcceptAsync().WithTimeout(NetlabTimeouts.Step);
        var virtual4 = ((IPEndPoint)accepted1.RemoteEndPoint!).Address;
        Assert.Equal(AddressFamily.InterNetwork, virtual4.AddressFamily);
        Assert.StartsWith("100.77.", virtual4.ToString(), StringComparison.Ordinal);
        // The server's own mapping for the client (its DNS stub answers the same address for the client's name).
        Assert.Contains($"{virtual4} {clientGuid}", await File.ReadAllTextAsync(Path.Combine(serverState, "virtual-ipv4")), StringComparison.Ordinal);
        await ExchangeAsync(first, accepted1, "before");

        using (var v6 = await OpenAsync(client, peerGuid, Ipv6Port))
        using (var accepted6 = await tcp6.AcceptAsync().WithTimeout(NetlabTimeouts.Step))
        {
            // Nothing listens on 127.0.0.1:8082, so the daemon delivered to ::1 from the GUID's IPv6 address.
            Assert.Equal(expected6, ((IPEndPoint)accepted6.RemoteEndPoint!).Address);
            await ExchangeAsync(v6, accepted6, "ipv6");
        }

        using var datagrams = await StartUdpForwardAsync(near, client, peerGuid);
        var from = await DatagramRoundTripAsync(datagrams, udp, "one");
        Assert.Equal(virtual4, from.Address);

        var rules = await Ip.InAsync(server, "rule", "show");
        Assert.Contains($"from 127.0.0.1 to 100.77.0.0/16 lookup {RoutingTable}", rules, StringComparison.Ordinal);

        // The client host moves to a new address (the new IPv4 address is promoted when the old one, primary in the
        // same subnet, goes: without that the kernel would drop it too, and IPv4 with it).
        await Ip.SysctlAsync(client, "net.ipv4.conf.eth0.promote_secondaries", "1").WithTimeout(NetlabTimeouts.Step);
        await Ip.BatchAsync(client, ["addr add 10.17.0.3/24 dev eth0", "addr add fd00:17::3/64 dev eth0 nodad", "addr del 10.17.0.2/24 dev eth0",
            "addr del fd00:17::2/64 dev eth0"]).WithTimeout(NetlabTimeouts.Step);

        // The connection opened before the move goes on; a new one comes from the same address; so do the datagrams.
        await ExchangeAsync(first, accepted1, "after");
        using (var again = await OpenAsync(client, peerGuid, Ipv4Port))
        using (var accepted2 = await tcp4.AcceptAsync().WithTimeout(NetlabTimeouts.Step))
        {
            Assert.Equal(virtual4, ((IPEndPoint)accepted2.RemoteEndPoint!).Address);
            await ExchangeAsync(again, accepted2, "again");
        }

        using (var v6 = await OpenAsync(client, peerGuid, Ipv6Port))
        using (var accepted6 = await tcp6.AcceptAsync().WithTimeout(NetlabTimeouts.Step))
        {
            Assert.Equal(expected6, ((IPEndPoint)accepted6.RemoteEndPoint!).Address);
        }

        Assert.Equal(virtual4, (await DatagramRoundTripAsync(datagrams, udp, "two")).Address);

        await peer.Process.DisposeAsync();
        Assert.DoesNotContain(RoutingTable, await Ip.InAsync(server, "rule", "show"), StringComparison.Ordinal);
        Assert.DoesNotContain(RoutingTable, await Ip.InAsync(server, "-6", "rule", "show"), StringComparison.Ordinal);
        Assert.DoesNotContain(RoutingTable, await Ip.InAsync(server, "route", "show", "table", "all"), StringComparison.Ordinal);
        Assert.DoesNotContain(RoutingTable, await Ip.InAsync(server, "-6", "route", "show", "table", "all"), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(serverState, "inbound-routes")));
    }

    [NetlabFact]
    public async Task With_transparent_mode_on_a_port_exposed_without_a_source_sees_the_virtual_address_and_a_restart_after_SIGKILL_removes_the_routes()
    {
        await using var lab = Lab.Create();
        var (server, client) = await TransparentTests.LinkAsync(lab);
        using var tcp4 = Listen(server, new IPEndPoint(IPAddress.Loopback, Ipv4Port));
        var serverState = lab.CreateTemporaryDirectory("server");
        // No resolver entry: the namespace has no resolv.conf of its own.
        string[] serverArguments = ["--embedded-gns", "--name", "peer", "--Transparent:Resolver", "none"];
        var peer = await TransparentTests.StartDaemonAsync(lab, server, "first", serverState, serverArguments);
        var peerGuid = peer.Ready.Require("guid");
        using (var api = new DaemonClient(peer.Socket))
        {
            await api.SetTransparentAsync(true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
            await api.ExposeAsync(Ipv4Port, null, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
        }

        await TransparentTests.StartDaemonAsync(lab, client, "client", null, ["--gns", $"{TransparentTests.ServerV4}:7353", "--socks", "127.0.0.1:1080"]);
        using (var stream = await OpenAsync(client, peerGuid, Ipv4Port))
        using (var accepted = await tcp4.AcceptAsync().WithTimeout(NetlabTimeouts.Step))
        {
            Assert.StartsWith("100.77.", ((IPEndPoint)accepted.RemoteEndPoint!).Address.ToString(), StringComparison.Ordinal);
            await ExchangeAsync(stream, accepted, "auto");
        }

        Assert.Equal(0, Libc.Kill(peer.Process.ProcessId, 9));
        Assert.True(await peer.Process.WaitForExitAsync(NetlabTimeouts.Step));
        Assert.Contains(RoutingTable, await Ip.InAsync(server, "rule", "show"), StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(serverState, "inbound-routes")));

        var second = await TransparentTests.StartDaemonAsync(lab, server, "second", serverState, serverArguments);
        Assert.DoesNotContain(RoutingTable, await Ip.InAsync(server, "rule", "show"), StringComparison.Ordinal);
        Assert.DoesNotContain(RoutingTable, await Ip.InAsync(server, "-6", "rule", "show"), StringComparison.Ordinal);
        Assert.DoesNotContain(RoutingTable, await Ip.InAsync(server, "route", "show", "table", "all"), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(serverState, "inbound-routes")));
        Assert.Contains("removing them first", second.Process.StandardError + second.Process.StandardOutput, StringComparison.Ordinal);
    }

    /// <summary>fd6d:6f62::/32 followed by the GUID's first 96 bits (docs/protocol.md, "Virtual addresses").</summary>
    private static IPAddress VirtualIpv6(string guid) => new([0xfd, 0x6d, 0x6f, 0x62, .. Convert.FromHexString(guid[..24])]);

    private static Socket Listen(string ns, IPEndPoint endpoint)
    {
        var socket = NetworkNamespace.Run(ns, () => new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        socket.Bind(endpoint);
        socket.Listen();
        return socket;
    }

    /// <summary>A stream to the peer's port through the client daemon's SOCKS5 endpoint; retried while the peer's record reaches the GNS.</summary>
    private static async Task<Socket> OpenAsync(string ns, string peerGuid, ushort port)
    {
        Socket? socket = null;
        await TestTimeout.Eventually(async () =>
        {
            try
            {
                socket = await Socks5Client.OpenAsync(new IPEndPoint(IPAddress.Loopback, 1080), $"{peerGuid}.guid", port, CancellationToken.None,
                    _ => NetworkNamespace.Run(ns, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))).WithTimeout(NetlabTimeouts.Step);
                return true;
            }
            catch (Exception e) when (e is Socks5ReplyException or SocketException or IOException)
            {
                return false;
            }
        }, $"a stream to port {port} through SOCKS5", NetlabTimeouts.Step);
        return socket!;
    }

    /// <summary>A line each way between the client's stream and the application's accepted socket.</summary>
    private static async Task ExchangeAsync(Socket client, Socket application, string text)
    {
        foreach (var (from, to) in new[] { (client, application), (application, client) })
        {
            var bytes = Encoding.ASCII.GetBytes(text);
            await from.SendAsync(bytes, SocketFlags.None).WithTimeout(NetlabTimeouts.Step);
            var received = new byte[bytes.Length];
            var filled = 0;
            while (filled < received.Length)
            {
                var read = await to.ReceiveAsync(received.AsMemory(filled), SocketFlags.None).AsTask().WithTimeout(NetlabTimeouts.Step);
                Assert.NotEqual(0, read);
                filled += read;
            }

            Assert.Equal(text, Encoding.ASCII.GetString(received));
        }
    }

    /// <summary>The client daemon forwards UDP 127.0.0.1:N (a port it picks, in its reply) to the peer's UDP port; the socket the client application sends from.</summary>
    private static async Task<Socket> StartUdpForwardAsync(TransparentTests.Daemon daemon, string ns, string peerGuid)
    {
        using var api = new DaemonClient(daemon.Socket);
        var reply = await api.StartUdpForwardAsync(0, peerGuid, UdpPort, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
        var local = IPEndPoint.Parse(reply.GetProperty("started").GetProperty("local").GetString()!);
        var socket = NetworkNamespace.Run(ns, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        socket.Connect(local);
        return socket;
    }

    /// <summary>
    /// Sends <paramref name="text"/> from the client application until the server's application receives it (datagrams
    /// may be dropped while a session opens or a path moves), answers it to where it came from, and waits for the answer;
    /// returns the source the server's application saw.
    /// </summary>
    private static async Task<IPEndPoint> DatagramRoundTripAsync(Socket client, Socket application, string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        var buffer = new byte[64];
        IPEndPoint? source = null;
        await RepeatUntilAsync(() => client.SendAsync(bytes, SocketFlags.None), async ct =>
        {
            var received = await application.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), ct);
            source = (IPEndPoint)received.RemoteEndPoint;
            return Encoding.ASCII.GetString(buffer, 0, received.ReceivedBytes) == text;
        }, $"datagram '{text}' at the server's application");

        var answer = Encoding.ASCII.GetBytes("re:" + text);
        await RepeatUntilAsync(() => application.SendToAsync(answer, SocketFlags.None, source!),
            async ct => Encoding.ASCII.GetString(buffer, 0, await client.ReceiveAsync(buffer, SocketFlags.None, ct)) == "re:" + text,
            $"the answer to '{text}' at the client's application");
        return source!;
    }

    /// <summary>Sends, then receives for a second until <paramref name="received"/> says the awaited datagram came; again until it does.</summary>
    private static Task RepeatUntilAsync(Func<Task> send, Func<CancellationToken, Task<bool>> received, string what)
        => TestTimeout.Eventually(async () =>
        {
            await send();
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                while (!await received(wait.Token))
                {
                }

                return true;
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }, what, NetlabTimeouts.Step);
}
