using System.Net;
using System.Net.Sockets;
using Mobility.Daemon.Client;
using Mobility.Net.Socks5;
using Mobility.Protocol.Forwarding;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Interop;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Topology;
using DaemonReadyLine = Mobility.Net.Processes.ReadyLine;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// Dual stack by default (issue 15), with real mobilityd processes in two namespaces joined by a veth pair,
/// IPv6 turned on inside them: an echo server on the server host's loopback, exposed by its daemon, reached
/// from the client host through its daemon's SOCKS5 endpoint as <c>&lt;guid&gt;.guid</c> over mobile TCP.
/// The server daemon embeds the GNS (its datagram endpoint on the default, [::]:7353).
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class DualStackTests
{
    private const string ServerV6 = "fd00:15::1";
    private const string ClientV6 = "fd00:15::2";

    [NetlabFact]
    public async Task Two_IPv6_only_hosts_connect_with_default_listeners()
    {
        await using var lab = Lab.Create();
        var (server, client) = await LinkAsync(lab, v4: false, v6: true);

        var echo = await StartServerAsync(lab, server, []);
        await StartDaemonAsync(lab, client, "client", ["--gns", $"[{ServerV6}]:7353", "--socks", "127.0.0.1:1080"]);

        Assert.StartsWith("[::]:", echo.Daemon.Ready["transport"], StringComparison.Ordinal);
        await AssertEchoAsync(client, echo);
    }

    [NetlabFact]
    public async Task A_dual_stack_pair_connects_over_IPv4_to_a_transport_on_the_IPv6_wildcard()
    {
        // Both hosts have both families, but only IPv4 routes between them: the server's IPv6 address is on
        // a link the client cannot reach. A transport on [::] must take the IPv4 connection (DualMode).
        await using var lab = Lab.Create();
        var (server, client) = await LinkAsync(lab, v4: true, v6: false);
        foreach (var (ns, prefix) in new[] { (server, "fd00:16"), (client, "fd00:17") })
        {
            // A veth pair inside the namespace: an IPv6 address on a link that leads nowhere.
            await Ip.BatchAsync(ns, ["link add side6 type veth peer name side6p", "link set side6 up", "link set side6p up", $"addr add {prefix}::1/64 dev side6 nodad"])
                .WithTimeout(NetlabTimeouts.Step);
        }

        var echo = await StartServerAsync(lab, server, ["--transport", "[::]:7391"]);
        await StartDaemonAsync(lab, client, "client", ["--gns", "10.15.0.1:7353", "--socks", "127.0.0.1:1080"]);

        Assert.Equal("[::]:7391", echo.Daemon.Ready["transport"]);
        await AssertEchoAsync(client, echo);
    }

    [NetlabFact]
    public async Task A_daemon_reaches_its_gns_over_IPv6_when_the_IPv4_address_it_was_given_first_does_not_answer()
    {
        await using var lab = Lab.Create();
        var (server, client) = await LinkAsync(lab, v4: true, v6: true);
        // IPv4 between the hosts is dropped: only the GNS's IPv6 address answers.
        await Ip.InAsync(client, "route", "add", "blackhole", "10.15.0.1/32").WithTimeout(NetlabTimeouts.Step);

        var echo = await StartServerAsync(lab, server, []);
        var near = await StartDaemonAsync(lab, client, "client", ["--gns", $"10.15.0.1:7353,[{ServerV6}]:7353", "--socks", "127.0.0.1:1080"]);

        Assert.Contains($"GNS at [{ServerV6}]:7353 answered first", near.Process.StandardError, StringComparison.Ordinal);
        await AssertEchoAsync(client, echo);
    }

    internal sealed record Daemon(NamespaceProcess Process, DaemonReadyLine Ready, string Socket);

    private sealed record ExposedEcho(Daemon Daemon, EchoServer Echo);

    /// <summary>Two host namespaces and a veth pair; 10.15.0.1/24 and fd00:15::1/64 on the server, .2 and ::2 on the client.</summary>
    private static async Task<(string Server, string Client)> LinkAsync(Lab lab, bool v4, bool v6)
    {
        var server = await lab.AddNamespaceAsync("srv", ipv6: true).WithTimeout(NetlabTimeouts.Step);
        var client = await lab.AddNamespaceAsync("cli", ipv6: true).WithTimeout(NetlabTimeouts.Step);
        await Lab.AddVethAsync(server, "eth0", client, "eth0").WithTimeout(NetlabTimeouts.Step);
        foreach (var (ns, host) in new[] { (server, "1"), (client, "2") })
        {
            var commands = new List<string> { "link set eth0 up" };
            if (v4)
            {
                commands.Add($"addr add 10.15.0.{host}/24 dev eth0");
            }

            if (v6)
            {
                commands.Add($"addr add fd00:15::{host}/64 dev eth0 nodad");
            }

            await Ip.BatchAsync(ns, commands).WithTimeout(NetlabTimeouts.Step);
        }

        return (server, client);
    }

    /// <summary>The server host: an echo server on its loopback, exposed by a daemon with the embedded GNS.</summary>
    private static async Task<ExposedEcho> StartServerAsync(Lab lab, string ns, string[] extra)
    {
        var echo = NetworkNamespace.Run(ns, () => new EchoServer(IPAddress.Loopback));
        var daemon = await StartDaemonAsync(lab, ns, "server", ["--embedded-gns", "--socks", "off", .. extra]);
        using var api = new DaemonClient(daemon.Socket);
        await api.ExposeAsync(echo.Port, null, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
        return new ExposedEcho(daemon, echo);
    }

    /// <summary>A mobilityd in <paramref name="ns"/> with its API on a Unix socket and no HTTP or gRPC endpoints (also GnsNameMoveTests).</summary>
    internal static async Task<Daemon> StartDaemonAsync(Lab lab, string ns, string role, string[] extra)
    {
        var dir = lab.CreateTemporaryDirectory(role);
        var socket = Path.Combine(dir, "api.sock");
        var (file, prefix) = MobilityExecutables.Mobilityd();
        string[] arguments = [.. prefix, "--state-dir", dir, "--socket", socket, "--grpc-socket", "off", "--http", "off", "--grpc", "off", .. extra];
        var process = lab.StartProcess(ns, file, arguments, readyLine: "mobilityd ready ", workingDirectory: dir);
        await process.WaitReadyAsync(TimeSpan.FromSeconds(60)).WithTimeout(NetlabTimeouts.Step);
        return new Daemon(process, DaemonReadyLine.Find(process.StandardOutput, "mobilityd ready"), socket);
    }

    /// <summary>Bytes sent through the client host's SOCKS5 endpoint to the server's GUID come back (retrying while the record spreads).</summary>
    private static async Task AssertEchoAsync(string clientNamespace, ExposedEcho server)
    {
        var guid = server.Daemon.Ready["guid"] ?? throw new InvalidOperationException("no guid in the ready line");
        var payload = System.Text.Encoding.ASCII.GetBytes("dual stack by default\n");
        string? lastError = null;
        for (var attempt = 0; attempt < 20; attempt++)
        {
            using var socket = NetworkNamespace.Run(clientNamespace, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
            try
            {
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, 1080)).WithTimeout(NetlabTimeouts.Step);
                var reply = await Socks5Client.ConnectAsync(socket, guid + ".guid", (ushort)server.Echo.Port, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
                if (reply == Socks5Reply.Succeeded)
                {
                    await socket.SendAsync(payload).WithTimeout(NetlabTimeouts.Step);
                    var received = new byte[payload.Length];
                    for (var n = 0; n < received.Length;)
                    {
                        var read = await socket.ReceiveAsync(received.AsMemory(n)).AsTask().WithTimeout(NetlabTimeouts.Step);
                        Assert.NotEqual(0, read);
                        n += read;
                    }

                    Assert.Equal(payload, received);
                    return;
                }

                lastError = reply.ToString();
            }
            catch (IOException e)
            {
                lastError = e.Message;
            }
            catch (SocketException e)
            {
                lastError = e.Message;
            }

            await Task.Delay(500);
        }

        Assert.Fail($"no echo through SOCKS5: {lastError}");
    }
}
