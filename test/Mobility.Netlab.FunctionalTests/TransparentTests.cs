using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Mobility.Daemon.Client;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Interop;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Topology;
using Mobility.Protocol.Dns;
using DaemonReadyLine = Mobility.Net.Processes.ReadyLine;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// Transparent mode (issue 17, docs/transparent.md) with real mobilityd processes in two namespaces: an
/// unmodified curl fetches <c>http://peer.mob:8080/</c> with no proxy setting (the stub answers the name in
/// the client namespace's resolv.conf, nftables redirects the connection to the daemon, which opens a mobile
/// connection to the peer); a name outside the zone resolves as before; the ruleset and resolv.conf are as
/// they were after the daemon stops, also after a SIGKILL and a restart. The client namespace's resolv.conf is
/// /etc/netns/&lt;namespace&gt;/resolv.conf, which <c>ip netns exec</c> mounts over /etc/resolv.conf.
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed partial class TransparentTests
{
    internal const string ServerV4 = "10.17.0.1";
    private const string OriginalResolvConf = $"nameserver {ServerV4}\noptions timeout:2\n";
    private static readonly IPAddress OutsideAnswer = IPAddress.Parse("192.0.2.77");

    [NetlabFact]
    public async Task Curl_fetches_from_a_peer_by_name_with_no_proxy_across_a_client_move_and_stop_removes_everything()
    {
        await using var lab = Lab.Create();
        var (server, client) = await LinkAsync(lab);
        var etc = ResolvConfFolder(client);
        try
        {
            using var upstream = StartUpstreamDns(server);
            var blob = RandomNumberGenerator.GetBytes(6 * 1024 * 1024);
            var site = lab.CreateTemporaryDirectory("site");
            await File.WriteAllBytesAsync(Path.Combine(site, "blob"), blob);
            lab.StartProcess(server, "python3", ["-u", "-m", "http.server", "--bind", "127.0.0.1", "8080", "--directory", site], readyLine: "Serving HTTP");
            var peer = await StartDaemonAsync(lab, server, "server", null, ["--embedded-gns", "--name", "peer"]);
            using (var api = new DaemonClient(peer.Socket))
            {
                await api.ExposeAsync(8080, null, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
            }

            var rulesBefore = await RulesetAsync(client);
            var near = await StartDaemonAsync(lab, client, "client", null, ["--gns", $"{ServerV4}:7353"]);
            Assert.Equal(OutsideAnswer.ToString(), await ResolveAsync(client, "outside.test"));
            Assert.Null(await ResolveAsync(client, "peer.mob"));

            using (var api = new DaemonClient(near.Socket))
            {
                var status = await api.SetTransparentAsync(true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
                Assert.True(status.GetProperty("enabled").GetBoolean());
            }

            Assert.Contains("table inet mobility", await RulesetAsync(client), StringComparison.Ordinal);
            Assert.StartsWith(ResolverIntegrationMarker, await File.ReadAllTextAsync(Path.Combine(etc, "resolv.conf")), StringComparison.Ordinal);
            Assert.Equal(OutsideAnswer.ToString(), await ResolveAsync(client, "outside.test"));
            var virtualAddress = await ResolveAsync(client, "peer.mob");
            Assert.NotNull(virtualAddress);
            Assert.StartsWith("100.77.", virtualAddress, StringComparison.Ordinal);

            Assert.Equal(SHA256.HashData(blob), await FetchAsync(lab, client, "http://peer.mob:8080/blob", limitRate: null));

            // Again, slowly, moving the client host to a new address in the middle of the download.
            var download = FetchAsync(lab, client, "http://peer.mob:8080/blob", limitRate: "1M");
            await Task.Delay(TimeSpan.FromSeconds(2));
            await Ip.BatchAsync(client, ["addr add 10.17.0.3/24 dev eth0", "addr add fd00:17::3/64 dev eth0 nodad", "addr del 10.17.0.2/24 dev eth0",
                "addr del fd00:17::2/64 dev eth0"]).WithTimeout(NetlabTimeouts.Step);
            Assert.Equal(SHA256.HashData(blob), await download.WithTimeout(NetlabTimeouts.Step));

            await near.Process.DisposeAsync();
            Assert.Equal(rulesBefore, await RulesetAsync(client));
            Assert.Equal(OriginalResolvConf, await File.ReadAllTextAsync(Path.Combine(etc, "resolv.conf")));
            Assert.DoesNotContain("100.77.0.0/16", await Ip.InAsync(client, "route", "show", "table", "all"), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(etc, recursive: true);
        }
    }

    [NetlabFact]
    public async Task After_a_SIGKILL_the_next_start_removes_what_was_left_and_its_stop_restores_the_ruleset()
    {
        await using var lab = Lab.Create();
        var (_, client) = await LinkAsync(lab);
        var etc = ResolvConfFolder(client);
        try
        {
            var rulesBefore = await RoutingAsync(client);
            var state = lab.CreateTemporaryDirectory("state");
            var first = await StartDaemonAsync(lab, client, "first", state, ["--embedded-gns"]);
            using (var api = new DaemonClient(first.Socket))
            {
                await api.SetTransparentAsync(true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
            }

            Assert.Equal(0, Libc.Kill(first.Process.ProcessId, 9));
            Assert.True(await first.Process.WaitForExitAsync(NetlabTimeouts.Step));
            Assert.Contains("table inet mobility", await RulesetAsync(client), StringComparison.Ordinal);

            var second = await StartDaemonAsync(lab, client, "second", state, ["--embedded-gns"]);
            Assert.Equal(rulesBefore, await RoutingAsync(client));
            Assert.Equal(OriginalResolvConf, await File.ReadAllTextAsync(Path.Combine(etc, "resolv.conf")));
            Assert.Contains("removing its rules", second.Process.StandardError + second.Process.StandardOutput, StringComparison.Ordinal);

            using (var api = new DaemonClient(second.Socket))
            {
                await api.SetTransparentAsync(true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
            }

            await second.Process.DisposeAsync();
            Assert.Equal(rulesBefore, await RoutingAsync(client));
            Assert.Equal(OriginalResolvConf, await File.ReadAllTextAsync(Path.Combine(etc, "resolv.conf")));
        }
        finally
        {
            Directory.Delete(etc, recursive: true);
        }
    }

    [NetlabFact]
    public async Task An_unprivileged_user_cannot_switch_transparent_mode()
    {
        await using var lab = Lab.Create();
        var (_, client) = await LinkAsync(lab);
        var rulesBefore = await RulesetAsync(client);
        await StartDaemonAsync(lab, client, "daemon", null, ["--embedded-gns", "--http", "127.0.0.1:7392"]);

        // nobody reaches the loopback HTTP endpoint (the Unix socket's folder is closed to it) and is refused there.
        var result = await Ip.ExecAsync(client, "setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups", "curl", "-sS", "-o", "/dev/null",
            "-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: application/json", "-d", "{\"enabled\":true}", "http://127.0.0.1:7392/v1/transparent"])
            .WithTimeout(NetlabTimeouts.Step);

        Assert.Equal("403", result.StandardOutput.Trim());
        Assert.Equal(rulesBefore, await RulesetAsync(client));
    }

    private const string ResolverIntegrationMarker = "# mobilityd transparent mode";

    internal sealed record Daemon(NamespaceProcess Process, DaemonReadyLine Ready, string Socket);

    /// <summary>/etc/netns/&lt;ns&gt;/resolv.conf, naming the server host as the namespace's resolver.</summary>
    private static string ResolvConfFolder(string ns)
    {
        var etc = Path.Combine("/etc/netns", ns);
        Directory.CreateDirectory(etc);
        File.WriteAllText(Path.Combine(etc, "resolv.conf"), OriginalResolvConf);
        return etc;
    }

    /// <summary>Two namespaces joined by a veth pair: 10.17.0.1/24 (server), 10.17.0.2/24 (client), and fd00:17::1, ::2.</summary>
    internal static async Task<(string Server, string Client)> LinkAsync(Lab lab)
    {
        var server = await lab.AddNamespaceAsync("tsrv", ipv6: true).WithTimeout(NetlabTimeouts.Step);
        var client = await lab.AddNamespaceAsync("tcli", ipv6: true).WithTimeout(NetlabTimeouts.Step);
        await Lab.AddVethAsync(server, "eth0", client, "eth0").WithTimeout(NetlabTimeouts.Step);
        foreach (var (ns, host) in new[] { (server, "1"), (client, "2") })
        {
            await Ip.BatchAsync(ns, ["link set eth0 up", $"addr add 10.17.0.{host}/24 dev eth0", $"addr add fd00:17::{host}/64 dev eth0 nodad"])
                .WithTimeout(NetlabTimeouts.Step);
        }

        return (server, client);
    }

    internal static async Task<Daemon> StartDaemonAsync(Lab lab, string ns, string role, string? stateDir, string[] extra)
    {
        var dir = stateDir ?? lab.CreateTemporaryDirectory(role);
        var socket = Path.Combine(dir, "api.sock");
        var (file, prefix) = MobilityExecutables.Mobilityd();
        string[] arguments = [.. prefix, "--state-dir", dir, "--socket", socket, "--grpc-socket", "off", "--grpc", "off",
            .. extra.Contains("--socks") ? [] : (string[])["--socks", "off"], .. extra.Contains("--http") ? [] : (string[])["--http", "off"], .. extra];
        var process = lab.StartProcess(ns, file, arguments, readyLine: "mobilityd ready ", workingDirectory: dir);
        await process.WaitReadyAsync(TimeSpan.FromSeconds(60)).WithTimeout(NetlabTimeouts.Step);
        return new Daemon(process, DaemonReadyLine.Find(process.StandardOutput, "mobilityd ready"), socket);
    }

    internal static async Task<string> RulesetAsync(string ns)
    {
        var result = await Ip.ExecAsync(ns, "nft", ["list", "ruleset"]).WithTimeout(NetlabTimeouts.Step);
        Assert.True(result.Succeeded, result.StandardError);
        return result.StandardOutput;
    }

    /// <summary>The first IPv4 (<paramref name="database"/> ahostsv6: IPv6) address getent (the C library's resolver, as any program uses it) finds, or null when none.</summary>
    private static async Task<string?> ResolveAsync(string ns, string name, string database = "ahostsv4")
    {
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var result = await Ip.ExecAsync(ns, "getent", [database, name]).WithTimeout(NetlabTimeouts.Step);
            if (result.Succeeded)
            {
                return result.StandardOutput.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
            }

            if (!name.EndsWith(".mob", StringComparison.Ordinal))
            {
                return null;
            }

            // The peer's record may not have reached the GNS yet.
            await Task.Delay(500);
        }

        return null;
    }

    /// <summary>curl with no proxy setting (the environment's are cleared); the SHA-256 of what it downloaded.</summary>
    internal static async Task<byte[]> FetchAsync(Lab lab, string ns, string url, string? limitRate)
    {
        var output = Path.Combine(lab.CreateTemporaryDirectory("curl"), "out");
        // The first fetch may retry while the peer's record spreads; a slow one must not (a retry would hide a broken move).
        string[] arguments = ["-i", "--", "curl", "-sS", "--noproxy", "*", "--max-time", "120", "-o", output,
            .. limitRate is null ? ["--retry", "5", "--retry-all-errors", "--retry-delay", "1"] : (string[])["--limit-rate", limitRate], url];
        var result = await Ip.ExecAsync(ns, "env", arguments, TimeSpan.FromMinutes(3)).WithTimeout(NetlabTimeouts.Step * 2);
        Assert.True(result.Succeeded, $"curl failed ({result.ExitCode}): {result.StandardError}");
        return SHA256.HashData(await File.ReadAllBytesAsync(output));
    }

    /// <summary>The client namespace's "upstream resolver": answers outside.test A 192.0.2.77 on 10.17.0.1:53, NXDOMAIN otherwise.</summary>
    private static Socket StartUpstreamDns(string ns)
    {
        var socket = NetworkNamespace.Run(ns, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        socket.Bind(new IPEndPoint(IPAddress.Parse(ServerV4), 53));
        _ = Task.Run(async () =>
        {
            var buffer = new byte[DnsLimits.MaxMessageSize];
            var answer = new byte[DnsLimits.ClassicUdpSize];
            while (true)
            {
                SocketReceiveFromResult received;
                try
                {
                    received = await socket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0));
                }
                catch (Exception e) when (e is ObjectDisposedException or SocketException)
                {
                    return;
                }

                var query = DnsMessageReader.ReadQuery(buffer.AsSpan(0, received.ReceivedBytes));
                var known = query.Name.ToString() == "outside.test." && query.Type == (ushort)DnsType.A;
                var response = new DnsResponse(query, known ? DnsResponseCode.NoError : DnsResponseCode.NXDomain, true,
                    known ? [new DnsAddressRecord(query.Name, 60, OutsideAnswer)] : [], []);
                var length = DnsMessageWriter.WriteResponse(response, answer, answer.Length);
                await socket.SendToAsync(answer.AsMemory(0, length), received.RemoteEndPoint);
            }
        });
        return socket;
    }
}
