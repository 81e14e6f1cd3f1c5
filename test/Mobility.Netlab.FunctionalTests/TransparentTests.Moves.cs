using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Mobility.Daemon.Client;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// Unmodified programs by name through transparent mode across every move (issue 17, "Tests"): <c>ssh root@peer.mob</c>
/// carrying a hashed stream to a real sshd, <c>curl http://peer.mob:8080/</c> with a hashed 64 MiB download, and
/// <c>iperf3 -c peer.mob</c> and <c>iperf3 -u -c peer.mob</c>, each across a client move, a server move and both at once.
/// No proxy setting anywhere: the client namespace's resolver is the daemon's stub, and its connections and datagrams
/// are intercepted. Three namespaces on one bridge (server 10.17.0.1, client 10.17.0.2, a standalone gns 10.17.0.53,
/// each with its fd00:17:: twin), so that either host, or both, can move while the GNS stays put. A move adds a new
/// address and deletes the old one of each family. Every wait is for a condition (bytes written, a line printed), and
/// every transfer is paced so that the move lands in its middle on any machine.
/// </summary>
public sealed partial class TransparentTests
{
    private const string GnsV4 = "10.17.0.53";
    private const int SshPort = 22;
    private const int HttpPort = 8080;
    private const int IperfTcpPort = 5201;
    private const int IperfUdpPort = 5202;

    /// <summary>ssh: the remote command writes this many 64 KiB blocks, one every 50 ms (at least 8 s, 10 MiB).</summary>
    private const int SshBlocks = 160;

    /// <summary>curl: 64 MiB at 8 MB/s, at least 8 s.</summary>
    private const int DownloadBytes = 64 << 20;

    private static readonly TimeSpan ApplicationTimeout = TimeSpan.FromMinutes(5);

    private enum MoveKind
    {
        Client,
        Server,
        Both,
    }

    [NetlabFact]
    public Task Ssh_and_curl_by_name_survive_a_client_move_and_sshd_sees_the_clients_virtual_address_before_and_after()
        => SshAndCurlAcrossAsync(MoveKind.Client);

    [NetlabFact]
    public Task Ssh_and_curl_by_name_survive_a_server_move()
        => SshAndCurlAcrossAsync(MoveKind.Server);

    [NetlabFact]
    public Task Ssh_and_curl_by_name_survive_both_hosts_moving_at_once()
        => SshAndCurlAcrossAsync(MoveKind.Both);

    [NetlabFact]
    public async Task Iperf3_tcp_and_udp_by_name_complete_and_keep_flowing_across_a_client_a_server_and_a_simultaneous_move()
    {
        await using var lab = Lab.Create();
        var hosts = await HubAsync(lab);
        var etc = ResolvConfFolder(hosts.Client);
        var processes = new List<NamespaceProcess>();
        try
        {
            var tcpServer = lab.StartProcess(hosts.Server, "iperf3", ["-s", "-B", "127.0.0.1", "-p", $"{IperfTcpPort}", "-i", "1", "--forceflush"],
                readyLine: "Server listening");
            var udpServer = lab.StartProcess(hosts.Server, "iperf3", ["-s", "-B", "127.0.0.1", "-p", $"{IperfUdpPort}", "-i", "1", "--forceflush"],
                readyLine: "Server listening");
            await Task.WhenAll(tcpServer.WaitReadyAsync(NetlabTimeouts.Step), udpServer.WaitReadyAsync(NetlabTimeouts.Step)).WithTimeout(NetlabTimeouts.Step);
            var daemons = await StartMoveDaemonsAsync(lab, hosts, [(IperfTcpPort, false), (IperfUdpPort, false), (IperfUdpPort, true)]);
            processes.AddRange([.. daemons, tcpServer, udpServer]);

            var (client, server) = (2, 1);
            foreach (var kind in new[] { MoveKind.Client, MoveKind.Server, MoveKind.Both })
            {
                // TCP: a fixed byte count, paced (16 Mbit/s, at least 8 s), so a stall makes the run longer, never shorter.
                // UDP: 1 Mbit/s for 2 MB (16 s), the datagrams sent while the session moves are lost, not retried.
                var dir = lab.CreateTemporaryDirectory("iperf3");
                var (tcpStart, udpStart) = (FlowingIntervals(tcpServer), FlowingIntervals(udpServer));
                var tcp = lab.StartProcess(hosts.Client, "iperf3", ["-c", "peer.mob", "-p", $"{IperfTcpPort}", "-n", "16M", "-b", "16M", "--json"],
                    workingDirectory: dir);
                var udp = lab.StartProcess(hosts.Client, "iperf3", ["-u", "-c", "peer.mob", "-p", $"{IperfUdpPort}", "-n", "2M", "-b", "1M", "-l", "1200", "--json"],
                    workingDirectory: dir);
                processes.AddRange([tcp, udp]);
                await TestTimeout.Eventually(() => FlowingIntervals(tcpServer) > tcpStart && FlowingIntervals(udpServer) > udpStart,
                    $"both iperf3 runs flowing before the {kind} move",
                    NetlabTimeouts.Step);
                (client, server) = await MoveAsync(hosts, kind, client, server);

                // The second interval the servers report after the move lies wholly after it.
                var (tcpBefore, udpBefore) = (FlowingIntervals(tcpServer), FlowingIntervals(udpServer));
                await TestTimeout.Eventually(() => FlowingIntervals(tcpServer) >= tcpBefore + 2, $"iperf3 TCP bytes arriving after the {kind} move",
                    NetlabTimeouts.Step);
                await TestTimeout.Eventually(() => FlowingIntervals(udpServer) >= udpBefore + 2, $"iperf3 UDP datagrams arriving after the {kind} move",
                    NetlabTimeouts.Step);

                foreach (var run in new[] { tcp, udp })
                {
                    Assert.True(await run.WaitForExitAsync(ApplicationTimeout), $"iperf3 did not finish after the {kind} move");
                    Assert.True(run.ExitCode == 0, $"iperf3 failed after the {kind} move ({run.ExitCode}): {run.StandardOutput} {run.StandardError}");
                }

                using var tcpReport = JsonDocument.Parse(tcp.StandardOutput);
                var tcpEnd = tcpReport.RootElement.GetProperty("end");
                var sent = tcpEnd.GetProperty("sum_sent").GetProperty("bytes").GetInt64();
                var received = tcpEnd.GetProperty("sum_received").GetProperty("bytes").GetInt64();
                Assert.True(sent >= 16 << 20, $"iperf3 sent {sent} B of 16 MiB");
                // The server counts until the client ends the test: bytes still queued in the daemons then are not counted.
                Assert.InRange(received, 1, sent);

                using var udpReport = JsonDocument.Parse(udp.StandardOutput);
                var udpSum = udpReport.RootElement.GetProperty("end").GetProperty("sum");
                Assert.True(udpSum.GetProperty("packets").GetInt64() > 0, udp.StandardOutput);
                Assert.True(udpSum.GetProperty("lost_percent").GetDouble() is >= 0 and < 100, udp.StandardOutput);
            }
        }
        catch (Exception) when (KeepLogs("iperf3", processes))
        {
            throw;
        }
        finally
        {
            Directory.Delete(etc, recursive: true);
        }
    }

    /// <summary>
    /// ssh and curl at once, by name, across one move; before it and after it a short ssh session prints <c>$SSH_CLIENT</c>:
    /// sshd sees the client's virtual IPv4 address (the server's mapping, port exposed with <c>--source virtual</c>), the same
    /// one both times, also in the long session.
    /// </summary>
    private static async Task SshAndCurlAcrossAsync(MoveKind kind)
    {
        await using var lab = Lab.Create();
        var hosts = await HubAsync(lab);
        var etc = ResolvConfFolder(hosts.Client);
        try
        {
            var dir = lab.CreateTemporaryDirectory("apps");
            var ssh = await StartSshdAsync(lab, hosts.Server, dir);
            var site = Directory.CreateDirectory(Path.Combine(dir, "site")).FullName;
            var blob = RandomNumberGenerator.GetBytes(DownloadBytes);
            await File.WriteAllBytesAsync(Path.Combine(site, "blob"), blob);
            await lab.StartProcess(hosts.Server, "python3", ["-u", "-m", "http.server", "--bind", "127.0.0.1", $"{HttpPort}", "--directory", site],
                readyLine: "Serving HTTP").WaitReadyAsync(NetlabTimeouts.Step).WithTimeout(NetlabTimeouts.Step);
            await StartMoveDaemonsAsync(lab, hosts, [(SshPort, false), (HttpPort, false)]);

            // The first session may retry while the server's record reaches the GNS; it opens the mobile connection.
            string? sourceBefore = null;
            await TestTimeout.Eventually(async () => (sourceBefore = await SshClientAddressAsync(hosts.Client, ssh)) is not null,
                "ssh root@peer.mob answers", NetlabTimeouts.Step);
            Assert.StartsWith("100.77.", sourceBefore, StringComparison.Ordinal);

            var downloaded = Path.Combine(dir, "downloaded");
            var streamed = Path.Combine(dir, "streamed");
            var curl = lab.StartProcess(hosts.Client, "curl", ["-sS", "--noproxy", "*", "--max-time", "600", "--limit-rate", "8M", "-o", downloaded,
                $"http://peer.mob:{HttpPort}/blob"], workingDirectory: dir);
            var session = lab.StartProcess(hosts.Client, "sh", ["-c", $"exec {ssh.Command} '{ssh.StreamCommand}' > {streamed}"], workingDirectory: dir);
            await TestTimeout.Eventually(() => Length(downloaded) >= 4 << 20 && Length(streamed) >= 1 << 20, "curl and ssh both under way",
                NetlabTimeouts.Step);
            await MoveAsync(hosts, kind, 2, 1);

            foreach (var (name, process) in new[] { ("curl", curl), ("ssh", session) })
            {
                Assert.True(await process.WaitForExitAsync(ApplicationTimeout), $"{name} did not finish after the {kind} move");
                Assert.True(process.ExitCode == 0, $"{name} failed after the {kind} move ({process.ExitCode}): {process.StandardError}");
            }

            Assert.Equal(SHA256.HashData(blob), SHA256.HashData(await File.ReadAllBytesAsync(downloaded)));
            Assert.Equal(ssh.StreamHash, SHA256.HashData(await File.ReadAllBytesAsync(streamed)));
            Assert.Equal(sourceBefore, FirstWord(session.StandardError));
            Assert.Equal(sourceBefore, await SshClientAddressAsync(hosts.Client, ssh).WithTimeout(NetlabTimeouts.Step));
        }
        finally
        {
            Directory.Delete(etc, recursive: true);
        }
    }

    /// <summary>With NETLAB_LOGS set, writes what the processes printed to that folder (<c>&lt;test&gt;-&lt;n&gt;.log</c>); false, so a failure goes on.</summary>
    private static bool KeepLogs(string test, List<NamespaceProcess> processes)
    {
        if (Environment.GetEnvironmentVariable("NETLAB_LOGS") is { Length: > 0 } folder)
        {
            Directory.CreateDirectory(folder);
            for (var i = 0; i < processes.Count; i++)
            {
                File.WriteAllText(Path.Combine(folder, $"{test}-{i}.log"), $"{processes[i].Description}\n{processes[i].StandardOutput}\n--- stderr\n{processes[i].StandardError}");
            }
        }

        return false;
    }

    private sealed record MoveHosts(string Server, string Client, string Gns);

    /// <summary>
    /// Three namespaces joined by a bridge in a fourth: 10.17.0.1 (server), 10.17.0.2 (client), 10.17.0.53 (gns), and fd00:17::1,
    /// ::2, ::53. A secondary IPv4 address is promoted when the primary goes, so a move keeps IPv4.
    /// </summary>
    private static async Task<MoveHosts> HubAsync(Lab lab)
    {
        var hub = await lab.AddNamespaceAsync("thub").WithTimeout(NetlabTimeouts.Step);
        await Ip.BatchAsync(hub, ["link add br0 type bridge", "link set br0 up"]).WithTimeout(NetlabTimeouts.Step);
        var names = new List<string>();
        foreach (var (role, host) in new[] { ("tsrv", 1), ("tcli", 2), ("tgns", 53) })
        {
            var ns = await lab.AddNamespaceAsync(role, ipv6: true).WithTimeout(NetlabTimeouts.Step);
            await Lab.AddVethAsync(ns, "eth0", hub, $"p{host}").WithTimeout(NetlabTimeouts.Step);
            await Ip.BatchAsync(hub, [$"link set p{host} master br0", $"link set p{host} up"]).WithTimeout(NetlabTimeouts.Step);
            await Ip.SysctlAsync(ns, "net.ipv4.conf.eth0.promote_secondaries", "1").WithTimeout(NetlabTimeouts.Step);
            await Ip.BatchAsync(ns, ["link set eth0 up", $"addr add 10.17.0.{host}/24 dev eth0", $"addr add fd00:17::{host}/64 dev eth0 nodad"])
                .WithTimeout(NetlabTimeouts.Step);
            names.Add(ns);
        }

        return new MoveHosts(names[0], names[1], names[2]);
    }

    /// <summary>
    /// A standalone gns in the gns namespace; the server's daemon (name <c>peer</c>) exposing <paramref name="ports"/> with the
    /// virtual source; the client's daemon with transparent mode on. Both daemons watch the GNS over gRPC.
    /// </summary>
    private static async Task<NamespaceProcess[]> StartMoveDaemonsAsync(Lab lab, MoveHosts hosts, (int Port, bool Udp)[] ports)
    {
        var (gns, prefix) = MobilityExecutables.Gns();
        var gnsProcess = lab.StartProcess(hosts.Gns, gns, [.. prefix, "serve", "--memory", "--udp", $"{GnsV4}:7353", "--grpc", $"{GnsV4}:7381",
            "--http", "127.0.0.1:7380"], readyLine: "gns listening ", workingDirectory: lab.CreateTemporaryDirectory("gns"));
        await gnsProcess.WaitReadyAsync(TimeSpan.FromSeconds(60)).WithTimeout(NetlabTimeouts.Step);
        string[] gnsOptions = ["--gns", $"{GnsV4}:7353", "--gns-grpc", $"http://{GnsV4}:7381",
            .. Environment.GetEnvironmentVariable("NETLAB_LOGS") is { Length: > 0 } ? ["--Logging:LogLevel:Mobility", "Debug"] : (string[])[]];
        var peer = await StartDaemonAsync(lab, hosts.Server, "server", null, [.. gnsOptions, "--name", "peer", "--Transparent:Dns", "off"]);
        using (var api = new DaemonClient(peer.Socket))
        {
            foreach (var (port, udp) in ports)
            {
                await api.ExposeAsync(port, null, udp, "virtual", CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
            }
        }

        var near = await StartDaemonAsync(lab, hosts.Client, "client", null, [.. gnsOptions, "--Transparent:Enabled", "true"]);
        await TestTimeout.Eventually(async () => await ResolveAsync(hosts.Client, "peer.mob") is not null, "peer.mob resolves", NetlabTimeouts.Step);
        return [gnsProcess, peer.Process, near.Process];
    }

    /// <summary>Moves the client (10.17.0.<paramref name="client"/>), the server or both at once to a new address; the addresses after it.</summary>
    private static async Task<(int Client, int Server)> MoveAsync(MoveHosts hosts, MoveKind kind, int client, int server)
    {
        static Task Move(string ns, int from, int to) => Ip.BatchAsync(ns, [$"addr add 10.17.0.{to}/24 dev eth0", $"addr add fd00:17::{to}/64 dev eth0 nodad",
            $"addr del 10.17.0.{from}/24 dev eth0", $"addr del fd00:17::{from}/64 dev eth0"]);

        var (newClient, newServer) = (kind == MoveKind.Server ? client : client == 2 ? 3 : 2, kind == MoveKind.Client ? server : server == 1 ? 4 : 1);
        await Task.WhenAll(
            newClient == client ? Task.CompletedTask : Move(hosts.Client, client, newClient),
            newServer == server ? Task.CompletedTask : Move(hosts.Server, server, newServer)).WithTimeout(NetlabTimeouts.Step);
        return (newClient, newServer);
    }

    /// <summary>The sshd of a test and the ssh command line that reaches it by name with key authentication.</summary>
    private sealed record Sshd(string Command, string StreamCommand, byte[] StreamHash);

    /// <summary>
    /// A real sshd on 127.0.0.1:22 of <paramref name="ns"/> (its own host key, key authentication for root with a key made
    /// here); the stream command prints <c>$SSH_CLIENT</c> on stderr, then <see cref="SshBlocks"/> blocks of random bytes, paced.
    /// </summary>
    private static async Task<Sshd> StartSshdAsync(Lab lab, string ns, string dir)
    {
        var hostKey = Path.Combine(dir, "host_key");
        var userKey = Path.Combine(dir, "user_key");
        foreach (var key in new[] { hostKey, userKey })
        {
            await CommandRunner.RunCheckedAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]).WithTimeout(NetlabTimeouts.Step);
        }

        File.Copy(userKey + ".pub", Path.Combine(dir, "authorized_keys"));
        var block = RandomNumberGenerator.GetBytes(64 * 1024);
        var blockFile = Path.Combine(dir, "block");
        await File.WriteAllBytesAsync(blockFile, block);
        var config = Path.Combine(dir, "sshd_config");
        await File.WriteAllLinesAsync(config,
        [
            $"Port {SshPort}", "ListenAddress 127.0.0.1", $"HostKey {hostKey}", $"AuthorizedKeysFile {Path.Combine(dir, "authorized_keys")}",
            "PermitRootLogin yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PidFile none",
        ]);
        Directory.CreateDirectory("/run/sshd"); // the privilege separation directory sshd insists on
        var sshd = lab.StartProcess(ns, "/usr/sbin/sshd", ["-D", "-e", "-f", config], workingDirectory: dir);
        await TestTimeout.Eventually(() => sshd.StandardError.Contains("Server listening", StringComparison.Ordinal), "sshd listening", NetlabTimeouts.Step);
        var command = $"ssh -F /dev/null -i {userKey} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR " +
                      "-o ConnectTimeout=60 root@peer.mob";
        var stream = $"echo $SSH_CLIENT >&2; i=0; while [ $i -lt {SshBlocks} ]; do cat {blockFile}; sleep 0.05; i=$((i+1)); done";
        return new Sshd(command, stream, SHA256.HashData(Enumerable.Repeat(block, SshBlocks).SelectMany(b => b).ToArray()));
    }

    /// <summary>A short ssh session to peer.mob; the address sshd saw it from (<c>$SSH_CLIENT</c>), or null when it failed.</summary>
    private static async Task<string?> SshClientAddressAsync(string ns, Sshd sshd)
    {
        var result = await Ip.ExecAsync(ns, "sh", ["-c", $"{sshd.Command} 'echo $SSH_CLIENT'"], TimeSpan.FromMinutes(2)).WithTimeout(NetlabTimeouts.Step);
        return result.Succeeded ? FirstWord(result.StandardOutput) : null;
    }

    private static string? FirstWord(string text) => text.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();

    private static long Length(string path) => File.Exists(path) ? new FileInfo(path).Length : 0;

    /// <summary>The interval lines (not the summaries) an iperf3 server printed with a non-zero byte count.</summary>
    private static int FlowingIntervals(NamespaceProcess server)
        => IntervalLine().Matches(server.StandardOutput)
            .Count(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) > 0 && !m.Value.Contains("receiver", StringComparison.Ordinal)
                        && !m.Value.Contains("sender", StringComparison.Ordinal));

    [GeneratedRegex(@"^\[\s*\d+\]\s+[\d.]+-[\d.]+\s+sec\s+([\d.]+) \w?Bytes.*$", RegexOptions.Multiline)]
    private static partial Regex IntervalLine();
}
