using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Mobility.Netlab.Emulation;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Systems.Mobility;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Applications;

/// <summary>One unmodified application across one move, carried by Mobility (results.json of <c>netlab applications</c>).</summary>
public sealed record ApplicationResult
{
    public required string Application { get; init; }

    /// <summary>The scenario whose move was applied (client-move, server-move, both-move).</summary>
    public required string Move { get; init; }

    public required int RttMs { get; init; }

    /// <summary>The application exited with success and its own end-to-end check (bytes, SHA-256) passed.</summary>
    public bool Survived { get; init; }

    /// <summary>How long the application ran.</summary>
    public double? DurationMs { get; init; }

    /// <summary>Bytes the application moved.</summary>
    public long Bytes { get; init; }

    /// <summary>
    /// Bytes missing or wrong in a hash-checked result (curl, ssh): the file's size when the hash differs. Null for iperf3,
    /// whose totals cannot tell a loss from bytes still queued in the relays when its control connection ends the test.
    /// </summary>
    public long? BytesLost { get; init; }

    /// <summary>iperf3: bytes the client wrote that the server had not read when the test ended (queued in mob forward and the daemons, or lost).</summary>
    public long? UnreceivedAtEnd { get; init; }

    /// <summary>How the result was checked, e.g. <c>sha256 match</c>, <c>iperf3 sent = received</c>.</summary>
    public required string Check { get; init; }

    public required string Outcome { get; init; }

    public string? Notes { get; init; }
}

/// <summary>
/// Runs real, unmodified applications over Mobility in a fresh topology per run: <b>iperf3</b> through
/// <c>mob forward</c> (client) and an exposed port (server), <b>curl</b> through the client daemon's SOCKS5 endpoint
/// (<c>--socks5-hostname</c>, <c>http://&lt;guid&gt;.guid:8080/</c>) from <c>python3 -m http.server</c>, and an <b>ssh</b>
/// session with <c>ProxyCommand='mob connect %h %p'</c> to an sshd in the server namespace. Each transfer lasts about 12 s
/// (rate-limited so that the move lands in its middle and the CPU does not decide the result); the move happens 3 s after the client daemon's GNS watch is up.
/// </summary>
public sealed class ApplicationRunner(TextWriter? log = null)
{
    public static readonly IReadOnlyList<string> Applications = ["iperf3", "curl", "ssh"];

    public static readonly IReadOnlyList<Scenario> Moves = [Scenario.ClientMove, Scenario.ServerMove, Scenario.BothMove];

    /// <summary>When the move happens after the application started.</summary>
    public static readonly TimeSpan MoveAfter = TimeSpan.FromSeconds(3);

    /// <summary>An application that has not finished this long after it started failed.</summary>
    public static readonly TimeSpan AppTimeout = TimeSpan.FromSeconds(60);

    private const int IperfPort = 5201;
    private const int HttpPort = 8080;
    private const int SshPort = 2222;

    /// <summary>curl: file size and rate (about 12 s).</summary>
    private const int FileBytes = 36 << 20;
    private const string CurlRate = "3M";

    /// <summary>ssh: the remote command prints this many 64 KiB blocks, one every 80 ms (at least 12 s, 9.4 MiB).</summary>
    private const int SshBlocks = 150;

    public async Task<IReadOnlyList<ApplicationResult>> RunAllAsync(IReadOnlyList<int> rtts, IReadOnlyCollection<string>? apps, IReadOnlyCollection<string>? moves, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(rtts);
        var results = new List<ApplicationResult>();
        foreach (var rtt in rtts)
        {
            foreach (var app in Applications.Where(a => apps is null || apps.Contains(a)))
            {
                foreach (var move in Moves.Where(m => moves is null || moves.Contains(m.Name)))
                {
                    ApplicationResult result;
                    try
                    {
                        result = await RunAsync(app, move, rtt, cancellationToken).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is CommandFailedException or IOException or TimeoutException or InvalidOperationException or HttpRequestException
                                                   || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                    {
                        result = new ApplicationResult { Application = app, Move = move.Name, RttMs = rtt, Check = "-", Outcome = "error: " + e.Message.Split('\n')[0] };
                    }

                    log?.WriteLine($"  => {app} {move.Name} rtt={rtt}ms: {result.Outcome} ({result.Check})");
                    results.Add(result);
                }
            }
        }

        return results;
    }

    public async Task<ApplicationResult> RunAsync(string app, Scenario move, int rttMs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(move);
        log?.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {app} / {move.Name} / {rttMs} ms RTT");
        var topology = await EvaluationTopology.CreateAsync(new TopologyOptions { Link = LinkEmulatorOptions.ForRtt(TimeSpan.FromMilliseconds(rttMs)) }, log).ConfigureAwait(false);
        await using (topology.ConfigureAwait(false))
        {
            var deployment = await MobilitySystem.Deployment.StartAsync(topology, cancellationToken).ConfigureAwait(false);
            var dir = topology.Lab.CreateTemporaryDirectory("app");
            var run = app switch
            {
                "iperf3" => await StartIperfAsync(topology, deployment, dir, cancellationToken).ConfigureAwait(false),
                "curl" => await StartCurlAsync(topology, deployment, dir, cancellationToken).ConfigureAwait(false),
                "ssh" => await StartSshAsync(topology, deployment, dir, cancellationToken).ConfigureAwait(false),
                _ => throw new ArgumentException($"unknown application {app}", nameof(app)),
            };

            // As in the scenarios: the client daemon's GNS watch of the server (started by the application's first
            // connection) must be up, as it is on a daemon that has run for a while; then the move comes 3 s later.
            var watch = await deployment.Client.WaitForWatchAsync(MobilitySystem.WatchTimeout, cancellationToken).ConfigureAwait(false);
            await Task.Delay(MoveAfter, cancellationToken).ConfigureAwait(false);
            await move.Move(new MoveContext(topology, _ => Task.CompletedTask, cancellationToken)).ConfigureAwait(false);
            var exited = await run.Process.WaitForExitAsync(AppTimeout - MoveAfter, cancellationToken).ConfigureAwait(false);
            var duration = StallAnalysis.Ms(Stopwatch.GetTimestamp() - run.StartedAt);
            var notes = $"{deployment.Client.Describe(deployment.StartedAt)}; {deployment.Server.Describe(deployment.StartedAt)}" + (watch ? "" : "; client's GNS watch not connected before the move");
            await SaveLogsAsync($"{app}-{move.Name}-{rttMs}ms", deployment, cancellationToken).ConfigureAwait(false);
            if (!exited)
            {
                return new ApplicationResult { Application = app, Move = move.Name, RttMs = rttMs, Check = "-", Outcome = $"hang: still running after {AppTimeout.TotalSeconds:0} s", Notes = notes };
            }

            var (ok, bytes, lost, unreceived, check) = run.Check(run.Process);
            var outcome = run.Process.ExitCode != 0
                ? $"exit {run.Process.ExitCode}: {LastLine(run.Process.StandardError)}"
                : ok ? "survived" : "wrong result";
            return new ApplicationResult
            {
                Application = app,
                Move = move.Name,
                RttMs = rttMs,
                Survived = run.Process.ExitCode == 0 && ok,
                DurationMs = Math.Round(duration, 0),
                Bytes = bytes,
                BytesLost = lost,
                UnreceivedAtEnd = unreceived,
                Check = check,
                Outcome = outcome,
                Notes = notes,
            };
        }
    }

    private sealed record AppRun(NamespaceProcess Process, long StartedAt, Func<NamespaceProcess, (bool Ok, long Bytes, long? Lost, long? Unreceived, string Check)> Check);

    private static async Task<AppRun> StartIperfAsync(EvaluationTopology topology, MobilitySystem.Deployment deployment, string dir, CancellationToken cancellationToken)
    {
        var lab = topology.Lab;
        var server = lab.StartProcess(topology.Server.Namespace, "iperf3", ["-s", "-1", "-B", "127.0.0.1", "-p", Port(IperfPort)], workingDirectory: dir);
        await ExposeAsync(deployment, IperfPort, cancellationToken).ConfigureAwait(false);
        var (mob, prefix) = MobilityExecutables.Mob();
        var forward = lab.StartProcess(topology.Client.Namespace, mob, [.. prefix, "forward", "--socks", Socks(deployment), Port(IperfPort), $"{deployment.Server.Guid}:{Port(IperfPort)}"], readyLine: "forwarding ");
        await forward.WaitReadyAsync(DaemonProcess.StartTimeout, cancellationToken).ConfigureAwait(false);
        _ = server;
        // 20 Mbit/s for 12 s: enough to fill the emulated path's queues, not enough to make the loaded CPU the bottleneck.
        var client = lab.StartProcess(topology.Client.Namespace, "iperf3", ["-c", "127.0.0.1", "-p", Port(IperfPort), "-t", "12", "-b", "20M", "-J"], workingDirectory: dir);
        return new AppRun(client, Stopwatch.GetTimestamp(), p =>
        {
            try
            {
                using var json = JsonDocument.Parse(p.StandardOutput);
                var end = json.RootElement.GetProperty("end");
                var sent = (long)end.GetProperty("sum_sent").GetProperty("bytes").GetDouble();
                var received = (long)end.GetProperty("sum_received").GetProperty("bytes").GetDouble();
                // A time-limited iperf3 test ends when the client says so on its control connection; bytes still queued
                // in the relays (after a stall) are then never counted, so sent > received is not by itself a loss.
                return (received > 0, received, null, sent - received, $"iperf3 sent {sent} B, server counted {received} B by the end of the test");
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                return (false, 0, null, null, "iperf3 printed no result: " + e.Message);
            }
        });
    }

    private static async Task<AppRun> StartCurlAsync(EvaluationTopology topology, MobilitySystem.Deployment deployment, string dir, CancellationToken cancellationToken)
    {
        var lab = topology.Lab;
        var served = Directory.CreateDirectory(Path.Combine(dir, "www")).FullName;
        var file = Path.Combine(served, "big.bin");
        var content = new byte[FileBytes];
        new Random(7).NextBytes(content);
        await File.WriteAllBytesAsync(file, content, cancellationToken).ConfigureAwait(false);
        var expected = Convert.ToHexStringLower(SHA256.HashData(content));
        var http = lab.StartProcess(topology.Server.Namespace, "python3", ["-u", "-m", "http.server", Port(HttpPort), "--bind", "127.0.0.1", "--directory", served], workingDirectory: dir);
        await WaitForLineAsync(http, "Serving HTTP", cancellationToken).ConfigureAwait(false);
        await ExposeAsync(deployment, HttpPort, cancellationToken).ConfigureAwait(false);
        var output = Path.Combine(dir, "downloaded.bin");
        var client = lab.StartProcess(topology.Client.Namespace, "curl",
            ["-sS", "--fail", "--socks5-hostname", Socks(deployment), "--limit-rate", CurlRate, "-o", output, $"http://{deployment.Server.Guid}.guid:{Port(HttpPort)}/big.bin"], workingDirectory: dir);
        return new AppRun(client, Stopwatch.GetTimestamp(), _ => HashCheck(output, expected, FileBytes));
    }

    private static async Task<AppRun> StartSshAsync(EvaluationTopology topology, MobilitySystem.Deployment deployment, string dir, CancellationToken cancellationToken)
    {
        var lab = topology.Lab;
        if (!File.Exists("/usr/sbin/sshd"))
        {
            throw new InvalidOperationException("sshd is not installed (apt-get install openssh-server)");
        }

        var hostKey = Path.Combine(dir, "host_key");
        var userKey = Path.Combine(dir, "user_key");
        await CommandRunner.RunCheckedAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey], cancellationToken: cancellationToken).ConfigureAwait(false);
        await CommandRunner.RunCheckedAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", userKey], cancellationToken: cancellationToken).ConfigureAwait(false);
        File.Copy(userKey + ".pub", Path.Combine(dir, "authorized_keys"));
        var block = new byte[64 * 1024];
        new Random(11).NextBytes(block);
        var blockFile = Path.Combine(dir, "block.bin");
        await File.WriteAllBytesAsync(blockFile, block, cancellationToken).ConfigureAwait(false);
        var expected = Convert.ToHexStringLower(SHA256.HashData(Enumerable.Repeat(block, SshBlocks).SelectMany(b => b).ToArray()));
        var config = Path.Combine(dir, "sshd_config");
        await File.WriteAllLinesAsync(config,
        [
            $"Port {Port(SshPort)}", "ListenAddress 127.0.0.1", $"HostKey {hostKey}", $"AuthorizedKeysFile {Path.Combine(dir, "authorized_keys")}",
            "PermitRootLogin yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PidFile none",
        ], cancellationToken).ConfigureAwait(false);
        Directory.CreateDirectory("/run/sshd"); // privilege separation directory sshd insists on
        var sshd = lab.StartProcess(topology.Server.Namespace, "/usr/sbin/sshd", ["-D", "-e", "-f", config], workingDirectory: dir);
        await WaitForLineAsync(sshd, "Server listening", cancellationToken).ConfigureAwait(false);
        await ExposeAsync(deployment, SshPort, cancellationToken).ConfigureAwait(false);

        var (mob, prefix) = MobilityExecutables.Mob();
        var proxy = string.Join(' ', new[] { mob }.Concat(prefix).Append("connect").Append("--socks").Append(Socks(deployment))) + " %h %p";
        var output = Path.Combine(dir, "received.bin");
        var remote = $"i=0; while [ $i -lt {SshBlocks.ToString(CultureInfo.InvariantCulture)} ]; do cat {blockFile}; sleep 0.08; i=$((i+1)); done";
        var command = $"ssh -F /dev/null -i {userKey} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes " +
                      $"-o ProxyCommand='{proxy}' -p {Port(SshPort)} root@{deployment.Server.Guid}.guid '{remote}' > {output}";
        var client = lab.StartProcess(topology.Client.Namespace, "sh", ["-c", command], workingDirectory: dir);
        return new AppRun(client, Stopwatch.GetTimestamp(), _ => HashCheck(output, expected, SshBlocks * block.Length));
    }

    private static (bool, long, long?, long?, string) HashCheck(string path, string expected, long size)
    {
        if (!File.Exists(path))
        {
            return (false, 0, size, null, "no output file");
        }

        using var stream = File.OpenRead(path);
        var actual = Convert.ToHexStringLower(SHA256.HashData(stream));
        var length = new FileInfo(path).Length;
        return actual == expected ? (true, length, 0, null, $"sha256 match ({length} B)") : (false, length, size, null, $"sha256 MISMATCH ({length} of {size} B)");
    }

    private static Task ExposeAsync(MobilitySystem.Deployment deployment, int port, CancellationToken cancellationToken) =>
        MobilitySystem.ExposeAsync(deployment.Server, port, cancellationToken);

    private static async Task WaitForLineAsync(NamespaceProcess process, string text, CancellationToken cancellationToken)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnLine(object? sender, OutputLine line)
        {
            if (line.Text.Contains(text, StringComparison.Ordinal))
            {
                seen.TrySetResult();
            }
        }

        process.LineReceived += OnLine;
        try
        {
            if ((process.StandardOutput + process.StandardError).Contains(text, StringComparison.Ordinal))
            {
                return;
            }

            await seen.Task.WaitAsync(DaemonProcess.StartTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new CommandFailedException($"'{process.Description}' did not print '{text}'; stderr: {process.StandardError.Trim()}");
        }
        finally
        {
            process.LineReceived -= OnLine;
        }
    }

    private static string Socks(MobilitySystem.Deployment deployment) => (deployment.Client.Socks ?? throw new InvalidOperationException("no SOCKS5 endpoint")).ToString();

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);

    private static string LastLine(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault()?.Trim() ?? "";

    public static string FormatTable(IEnumerable<ApplicationResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var text = new System.Text.StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{"application",-11} {"move",-12} {"rtt",4} {"duration_ms",11} {"bytes",10} {"lost_B",7} {"survived",8}  check / outcome");
        foreach (var r in results)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{r.Application,-11} {r.Move,-12} {r.RttMs,4} {r.DurationMs?.ToString("0", CultureInfo.InvariantCulture) ?? "-",11} {r.Bytes,10} {r.BytesLost?.ToString(CultureInfo.InvariantCulture) ?? "-",7} {(r.Survived ? "yes" : "no"),8}  {r.Check}; {r.Outcome}");
        }

        return text.ToString();
    }

    /// <summary>With <c>NETLAB_LOGS</c> set: the logs of gns and both daemons of one run, as <c>APP-MOVE-RTT-TIME-ROLE.log</c> there.</summary>
    private static async Task SaveLogsAsync(string run, MobilitySystem.Deployment deployment, CancellationToken cancellationToken)
    {
        if (System.Environment.GetEnvironmentVariable(MobilitySystem.LogDirectoryVariable) is not { Length: > 0 } logs)
        {
            return;
        }

        Directory.CreateDirectory(logs);
        var name = $"{run}-{DateTime.UtcNow:HHmmss}";
        foreach (var (role, text) in new[] { ("gns", deployment.Gns.Process.StandardError), ("client", deployment.Client.Process.StandardError), ("server", deployment.Server.Process.StandardError) })
        {
            await File.WriteAllTextAsync(Path.Combine(logs, $"{name}-{role}.log"), text, cancellationToken).ConfigureAwait(false);
        }
    }
}
