using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Mobility.Daemon.Client;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Interop;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// UDP to virtual addresses (docs/transparent.md, "UDP"): a program in the client namespace sends to
/// <c>peer.mob</c> (resolved by the stub) with nothing configured; nftables marks and TPROXYs the datagrams to
/// the daemon, which carries them over a mobile session to the peer's exposed UDP port and sends the replies
/// from the virtual address.
/// </summary>
public sealed partial class TransparentTests
{
    private const int EchoPort = 7007;

    [NetlabFact]
    public Task Udp_to_a_peer_by_name_is_echoed_from_its_virtual_address_across_a_client_move_and_off_and_stop_remove_rules_and_routes()
        => InClientAndServerAsync(async (lab, server, client) =>
        {
            using var echo = StartUdpEcho(server);
            var peer = await StartDaemonAsync(lab, server, "server", null, ["--embedded-gns", "--name", "peer"]);
            using (var api = new DaemonClient(peer.Socket))
            {
                await api.ExposeAsync(EchoPort, null, udp: true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
            }

            var before = await RoutingAsync(client);
            var near = await StartDaemonAsync(lab, client, "client", null, ["--gns", $"{ServerV4}:7353"]);
            using var nearApi = new DaemonClient(near.Socket);
            await nearApi.SetTransparentAsync(true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
            var ruleset = await RulesetAsync(client);
            Assert.Contains("tproxy ip to 127.0.0.1:", ruleset, StringComparison.Ordinal);
            Assert.Contains("tproxy ip6 to [::1]:", ruleset, StringComparison.Ordinal);

            var ipv4 = IPAddress.Parse(await ResolveAsync(client, "peer.mob") ?? throw new InvalidOperationException("peer.mob has no A record"));
            var ipv6 = IPAddress.Parse(await ResolveAsync(client, "peer.mob", "ahostsv6") ?? throw new InvalidOperationException("peer.mob has no AAAA record"));
            Assert.StartsWith("fd6d:6f62:", ipv6.ToString(), StringComparison.Ordinal);
            foreach (var address in new[] { ipv4, ipv6 })
            {
                using var socket = UdpSocketIn(client, address.AddressFamily);
                var target = new IPEndPoint(address, EchoPort);
                await TestTimeout.Eventually(() => EchoOnceAsync(socket, target, Encoding.ASCII.GetBytes($"hello {address}")), $"an echo from {target}",
                    NetlabTimeouts.Step);
            }

            // Off removes the chains, the policy routing and the routes: everything is as before.
            await nearApi.SetTransparentAsync(false, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
            Assert.Equal(before, await RoutingAsync(client));

            // On again; a flow that keeps sending while the client host moves to a new address keeps being echoed.
            await nearApi.SetTransparentAsync(true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
            using (var socket = UdpSocketIn(client, AddressFamily.InterNetwork))
            {
                var target = new IPEndPoint(ipv4, EchoPort);
                await TestTimeout.Eventually(() => EchoOnceAsync(socket, target, "before the move"u8.ToArray()), "an echo before the move", NetlabTimeouts.Step);
                using var flow = new EchoFlow(socket, target);
                await TestTimeout.Eventually(() => flow.HighestEchoed >= 0, "a flowing echo", NetlabTimeouts.Step);
                await Ip.BatchAsync(client, ["addr add 10.17.0.3/24 dev eth0", "addr add fd00:17::3/64 dev eth0 nodad", "addr del 10.17.0.2/24 dev eth0",
                    "addr del fd00:17::2/64 dev eth0"]).WithTimeout(NetlabTimeouts.Step);
                var sentByTheMove = flow.Sent;
                await TestTimeout.Eventually(() => flow.HighestEchoed > sentByTheMove, "an echo of a datagram sent after the move", NetlabTimeouts.Step);
                Assert.Null(flow.WrongSource);
            }

            var rulesWhileOn = await Ip.InAsync(client, "rule");
            Assert.Contains("lookup 7171939", rulesWhileOn, StringComparison.Ordinal);
            await near.Process.DisposeAsync();
            var after = await RoutingAsync(client);
            Assert.Equal(Section(before, 0), Section(after, 0));
            Assert.Equal(Section(before, 1), Section(after, 1));
            Assert.Equal(Section(before, 2), Section(after, 2));
            Assert.DoesNotContain("7171939", after, StringComparison.Ordinal);
            Assert.DoesNotContain("100.77.0.0/16", after, StringComparison.Ordinal);
            Assert.DoesNotContain("fd6d:6f62::/32", after, StringComparison.Ordinal);
        });

    [NetlabFact]
    public Task Iperf3_udp_to_a_virtual_address_completes_and_a_flood_of_source_ports_stays_within_the_session_cap()
        => InClientAndServerAsync(async (lab, server, client) =>
        {
            const int cap = 4;
            using var echo = StartUdpEcho(server);
            lab.StartProcess(server, "iperf3", ["-s", "-B", "127.0.0.1", "-p", "5201", "--forceflush"], readyLine: "Server listening");
            var peer = await StartDaemonAsync(lab, server, "server", null, ["--embedded-gns", "--name", "peer"]);
            using (var api = new DaemonClient(peer.Socket))
            {
                await api.ExposeAsync(5201, null, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
                await api.ExposeAsync(5201, null, udp: true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
                await api.ExposeAsync(EchoPort, null, udp: true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
            }

            var near = await StartDaemonAsync(lab, client, "client", null,
                ["--gns", $"{ServerV4}:7353", "--Transparent:Enabled", "true", "--Transparent:MaxUdpSessions", $"{cap}"]);
            var address = await ResolveAsync(client, "peer.mob") ?? throw new InvalidOperationException("peer.mob has no A record");

            // iperf3 as it is: its control connection is intercepted TCP, its test stream intercepted UDP.
            var run = await Ip.ExecAsync(client, "iperf3", ["-u", "-c", address, "-p", "5201", "-b", "5M", "-t", "3", "--json"], TimeSpan.FromMinutes(2))
                .WithTimeout(NetlabTimeouts.Step * 2);
            Assert.True(run.Succeeded, $"iperf3 failed ({run.ExitCode}): {run.StandardOutput} {run.StandardError}");
            using var report = JsonDocument.Parse(run.StandardOutput);
            var sum = report.RootElement.GetProperty("end").GetProperty("sum");
            Assert.True(sum.GetProperty("packets").GetInt64() > 0, run.StandardOutput);
            Assert.True(sum.GetProperty("lost_percent").GetDouble() is >= 0 and < 100, run.StandardOutput);

            // 32 programs' sockets send at once: at most the cap of them are carried (iperf3's session may still hold one).
            var sockets = Enumerable.Range(0, 32).Select(_ => UdpSocketIn(client, AddressFamily.InterNetwork)).ToArray();
            try
            {
                var target = new IPEndPoint(IPAddress.Parse(address), EchoPort);
                var echoed = new bool[sockets.Length];
                await TestTimeout.Eventually(async () =>
                {
                    var rounds = await Task.WhenAll(sockets.Select((s, i) => echoed[i] ? Task.FromResult(true) : EchoOnceAsync(s, target, [(byte)i])));
                    for (var i = 0; i < rounds.Length; i++)
                    {
                        echoed[i] |= rounds[i];
                    }

                    return echoed.Any(e => e);
                }, "some flow echoed", NetlabTimeouts.Step);

                // More rounds: the flows beyond the cap still get nothing.
                for (var round = 0; round < 3; round++)
                {
                    var rounds = await Task.WhenAll(sockets.Select((s, i) => echoed[i] ? Task.FromResult(true) : EchoOnceAsync(s, target, [(byte)i])));
                    for (var i = 0; i < rounds.Length; i++)
                    {
                        echoed[i] |= rounds[i];
                    }
                }

                Assert.InRange(echoed.Count(e => e), 1, cap);
            }
            finally
            {
                foreach (var socket in sockets)
                {
                    socket.Dispose();
                }
            }

            await near.Process.DisposeAsync();
        });

    /// <summary>Runs <paramref name="test"/> with a lab of two linked namespaces, the client's resolv.conf written first and removed after.</summary>
    private static async Task InClientAndServerAsync(Func<Lab, string, string, Task> test)
    {
        await using var lab = Lab.Create();
        var (server, client) = await LinkAsync(lab);
        var folder = ResolvConfFolder(client);
        try
        {
            await test(lab, server, client);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// nft list ruleset, ip rule, ip -6 rule, ip route show table all, ip -6 route show table all; sections split by a
    /// line "--". Without the link-local routes: the kernel adds those whenever the link's fe80:: address has passed
    /// duplicate address detection, which may be between two snapshots.
    /// </summary>
    private static async Task<string> RoutingAsync(string ns)
    {
        var all = string.Join("\n--\n", await RulesetAsync(ns), await Ip.InAsync(ns, "rule"), await Ip.InAsync(ns, "-6", "rule"),
            await Ip.InAsync(ns, "-4", "route", "show", "table", "all"), await Ip.InAsync(ns, "-6", "route", "show", "table", "all"));
        return string.Join('\n', all.Split('\n').Where(l => !l.Contains(" fe80:", StringComparison.Ordinal)));
    }

    private static string Section(string routing, int index) => routing.Split("\n--\n")[index];

    private static Socket UdpSocketIn(string ns, AddressFamily family)
    {
        var socket = NetworkNamespace.Run(ns, () => new Socket(family, SocketType.Dgram, ProtocolType.Udp));
        socket.Bind(new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0));
        return socket;
    }

    /// <summary>Sends <paramref name="payload"/>; true when it comes back within a second from exactly <paramref name="target"/>.</summary>
    private static async Task<bool> EchoOnceAsync(Socket socket, IPEndPoint target, byte[] payload)
    {
        await socket.SendToAsync(payload, target);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var buffer = new byte[2048];
        try
        {
            while (true)
            {
                var received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(target.AddressFamily == AddressFamily.InterNetworkV6
                    ? IPAddress.IPv6Any : IPAddress.Any, 0), wait.Token);
                Assert.Equal(target, received.RemoteEndPoint);
                if (buffer.AsSpan(0, received.ReceivedBytes).SequenceEqual(payload))
                {
                    return true;
                }
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>A UDP echo server on 127.0.0.1:<see cref="EchoPort"/> in <paramref name="ns"/> (the peer's exposed UDP port).</summary>
    private static Socket StartUdpEcho(string ns)
    {
        var socket = NetworkNamespace.Run(ns, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        socket.Bind(new IPEndPoint(IPAddress.Loopback, EchoPort));
        _ = Task.Run(async () =>
        {
            var buffer = new byte[65536];
            while (true)
            {
                try
                {
                    var received = await socket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0));
                    await socket.SendToAsync(buffer.AsMemory(0, received.ReceivedBytes), received.RemoteEndPoint);
                }
                catch (SocketException)
                {
                }
                catch (ObjectDisposedException)
                {
                    return;
                }
            }
        });
        return socket;
    }

    /// <summary>Sends a numbered datagram every 50 ms and records the highest number echoed back and any reply from another source.</summary>
    private sealed class EchoFlow : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _sending;
        private readonly Task _receiving;
        private int _sent = -1;
        private int _highest = -1;

        public EchoFlow(Socket socket, IPEndPoint target)
        {
            _sending = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    var next = Interlocked.Increment(ref _sent);
                    await socket.SendToAsync(BitConverter.GetBytes(next), target);
                    await Task.Delay(50);
                }
            });
            _receiving = Task.Run(async () =>
            {
                var buffer = new byte[64];
                while (!_stop.IsCancellationRequested)
                {
                    var received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), _stop.Token);
                    if (!target.Equals(received.RemoteEndPoint))
                    {
                        WrongSource = received.RemoteEndPoint;
                    }
                    else if (received.ReceivedBytes == 4)
                    {
                        var number = BitConverter.ToInt32(buffer);
                        int seen;
                        while (number > (seen = Volatile.Read(ref _highest)) && Interlocked.CompareExchange(ref _highest, number, seen) != seen)
                        {
                        }
                    }
                }
            });
        }

        public int Sent => Volatile.Read(ref _sent);

        public int HighestEchoed => Volatile.Read(ref _highest);

        public EndPoint? WrongSource { get; private set; }

        public void Dispose()
        {
            _stop.Cancel();
            try
            {
                Task.WhenAll(_sending, _receiving).Wait(TestTimeout.Default);
            }
            catch (AggregateException)
            {
            }

            _stop.Dispose();
        }
    }
}
