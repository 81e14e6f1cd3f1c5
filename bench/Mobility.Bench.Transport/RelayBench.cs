using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Identity;
using Mobility.Transport;
using Mobility.Transport.Flows;
using Mobility.Transport.Relay;

namespace Mobility.Bench.Transport;

/// <summary>
/// <c>transport-bench relay</c>: a real mobility-relay process on loopback. Throughput of one connection, one
/// direction, alternating in each round: a plain TCP socket, a raw flow through the relay, the same TCP
/// connection through an <c>ssh -L</c> forward over a jump host (<c>ssh -J</c>, <see cref="SshJump"/>), a mobile
/// connection (encrypted) direct and through the relay; then the relay's RSS per idle relayed connection, and
/// what a flood of unauthenticated (silent) connections costs the relay.
/// </summary>
internal static class RelayBench
{
    public static async Task<int> RunAsync(int seconds, int rounds, int chunk, int idle, int flood, string? relayDll, string? json)
    {
        // 10,000 idle relayed connections are 20,000 descriptors here and at the relay (which inherits the limit).
        Limits.RaiseFileLimit();
        using var relay = StartRelay(relayDll ?? Locate());
        var ready = Mobility.Net.Processes.ReadyLine.Find(await relay.StandardOutput.ReadLineAsync(), Mobility.Net.Processes.ReadyLine.RelayPrefix);
        _ = relay.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
        var endpoint = ready.EndPoint("tcp")!;
        Console.WriteLine($"relay {ready.Text}; load {Measure.LoadAverage()}");
        try
        {
            // Two hosts at the relay: one whose raw flows the bench reads itself, one served by a mobile listener.
            using var rawKey = HostKey.Generate();
            using var serverKey = HostKey.Generate();
            using var clientKey = HostKey.Generate();
            await using var registration = await RelayFlowListener.RegisterAsync(rawKey, endpoint);
            await using var mobileRegistration = await RelayFlowListener.RegisterAsync(serverKey, endpoint);
            await using var listener = new MobileListener(serverKey);
            listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
            var serving = listener.ServeAsync(mobileRegistration);
            using var tcpListener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            tcpListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            tcpListener.Listen();
            using var sshTarget = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            sshTarget.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            sshTarget.Listen();
            using var ssh = await SshJump.StartAsync((IPEndPoint)sshTarget.LocalEndPoint!);
            string[] systems = ssh is null ? ["tcp", "relay", "mobile", "mobile-relay"] : ["tcp", "relay", "ssh-jump", "mobile", "mobile-relay"];
            Console.WriteLine(ssh is null ? "no sshd/ssh: the ssh-jump system is left out" : $"ssh -J forward on 127.0.0.1:{ssh.LocalPort}");

            var results = new List<object>();
            var gbps = systems.ToDictionary(s => s, _ => new List<double>());
            var middleCpu = systems.ToDictionary(s => s, _ => new List<double>());
            for (var round = 1; round <= rounds; round++)
            {
                foreach (var system in systems)
                {
                    // The CPU of what sits in the middle: the relay process, or ssh and sshd for ssh-jump (0 for tcp and mobile).
                    Func<double> middle = system == "ssh-jump" ? ssh!.CpuSeconds : () => Measure.CpuSeconds(relay.Id);
                    var middleBefore = middle();
                    var (bytes, elapsed, cpu) = system == "ssh-jump"
                        ? await ThroughSshAsync(ssh!, sshTarget, seconds, chunk)
                        : await RunOneAsync(system, seconds, chunk, endpoint, registration, listener, tcpListener, rawKey.Guid, serverKey.Guid, clientKey);
                    var middleUsed = middle() - middleBefore;
                    var rate = bytes * 8 / elapsed / 1e9;
                    gbps[system].Add(rate);
                    var gb = bytes / 1e9;
                    middleCpu[system].Add(middleUsed / gb);
                    Console.WriteLine($"round {round} {system,-13} {Measure.F(rate)} Gbit/s  CPU-s/GB bench {Measure.F(cpu / gb)} relay or ssh {Measure.F(middleUsed / gb)}");
                    results.Add(new { round, system, gbps = rate, cpuPerGb = cpu / gb, relayCpuPerGb = middleUsed / gb, load = Measure.LoadAverage() });
                }
            }

            double Median(string s) => Measure.Percentile([.. gbps[s].Order()], 50);
            double MedianCpu(string s) => Measure.Percentile([.. middleCpu[s].Order()], 50);
            Console.WriteLine($"median Gbit/s: tcp {Measure.F(Median("tcp"))} relay {Measure.F(Median("relay"))} (x{Measure.F(Median("relay") / Median("tcp"))}), " +
                              $"mobile {Measure.F(Median("mobile"))} mobile-relay {Measure.F(Median("mobile-relay"))} (x{Measure.F(Median("mobile-relay") / Median("mobile"))})");
            if (ssh is not null)
            {
                Console.WriteLine($"median Gbit/s: ssh-jump {Measure.F(Median("ssh-jump"))} (x{Measure.F(Median("ssh-jump") / Median("tcp"))} of tcp); " +
                                  $"relay / ssh-jump x{Measure.F(Median("relay") / Median("ssh-jump"))}, mobile-relay / ssh-jump x{Measure.F(Median("mobile-relay") / Median("ssh-jump"))}; " +
                                  $"median CPU-s per GB in the middle: relay {Measure.F(MedianCpu("relay"))}, mobile-relay {Measure.F(MedianCpu("mobile-relay"))}, ssh-jump {Measure.F(MedianCpu("ssh-jump"))}");
            }

            var (perConnection, idleOpened) = await IdleAsync(relay.Id, endpoint, registration, rawKey.Guid, idle);
            var flooded = flood > 0 ? await RelayFlood.RunAsync(relay.Id, endpoint, registration, rawKey.Guid, flood) : null;
            Measure.WriteJson(json, new { rounds = results, idleConnections = idle, idleOpened, relayRssKibPerIdleConnection = perConnection, flood = flooded });
            await listener.DisposeAsync();
            await serving;
            return 0;
        }
        finally
        {
            relay.Kill();
            await relay.WaitForExitAsync();
        }
    }

    private static async Task<(long Bytes, double Seconds, double Cpu)> RunOneAsync(string system, int seconds, int chunk, IPEndPoint relay,
        RelayFlowListener registration, MobileListener listener, Socket tcpListener, HostGuid raw, HostGuid mobileHost, HostKey clientKey)
    {
        switch (system)
        {
            case "tcp":
            {
                using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                var accept = tcpListener.AcceptAsync();
                await client.ConnectAsync(tcpListener.LocalEndPoint!);
                using var server = await accept;
                await using var writer = new NetworkStream(client);
                await using var reader = new NetworkStream(server);
                return await Throughput.PumpAsync(writer, reader, () => Task.Run(() => client.Shutdown(SocketShutdown.Send)), seconds, chunk);
            }

            case "relay":
            {
                var accept = registration.AcceptAsync(CancellationToken.None).AsTask();
                await using var client = await RelayFlows.DialAsync(relay, raw);
                await using var accepted = await accept;
                return await Throughput.PumpAsync(client.Stream, accepted.Stream, () => client.DisposeAsync().AsTask(), seconds, chunk);
            }

            default:
            {
                var through = system == "mobile-relay";
                var connector = new MobileConnector(clientKey, new MobileConnectionOptions { FlowFactory = new RelayFlowFactory(TcpFlowFactory.Instance) });
                var accept = listener.AcceptAsync();
                IPEndPoint target = through ? new RelayEndPoint(relay.Address, relay.Port, mobileHost) : listener.LocalEndPoint;
                await using var client = await connector.ConnectAsync(target, mobileHost);
                await using var accepted = await accept;
                var result = await Throughput.PumpAsync(client.Stream, accepted.Stream, () =>
                {
                    client.ShutdownWrite();
                    return Task.CompletedTask;
                }, seconds, chunk);
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await Task.WhenAll(client.CloseAsync(timeout.Token), accepted.CloseAsync(timeout.Token));
                return result;
            }
        }
    }

    /// <summary>One TCP connection through the <c>ssh -J</c> forward to <paramref name="target"/>.</summary>
    private static async Task<(long Bytes, double Seconds, double Cpu)> ThroughSshAsync(SshJump ssh, Socket target, int seconds, int chunk)
    {
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accept = target.AcceptAsync();
        await client.ConnectAsync(IPAddress.Loopback, ssh.LocalPort);
        using var server = await accept;
        await using var writer = new NetworkStream(client);
        await using var reader = new NetworkStream(server);
        return await Throughput.PumpAsync(writer, reader, () => Task.Run(() => client.Shutdown(SocketShutdown.Send)), seconds, chunk);
    }

    /// <summary>
    /// Opens <paramref name="count"/> relayed flows (fewer when the file limit does not hold them) that then
    /// idle; the relay's RSS growth per relayed connection (two TCP connections at the relay), in KiB, and how many were opened.
    /// </summary>
    private static async Task<(double KibPerConnection, int Count)> IdleAsync(int relayPid, IPEndPoint relay, RelayFlowListener registration, HostGuid host, int count)
    {
        await Task.Delay(TimeSpan.FromSeconds(3));
        // Each relayed connection holds two descriptors in the relay and two here (the dialler's end and the
        // host's): a file limit that cannot be raised (a root without CAP_SYS_RESOURCE keeps the hard one)
        // caps the count, said up front instead of failing mid-way (at 20,000 here: ~9,900 pairs).
        var limit = (long)Limits.FileLimit();
        var fits = (int)Math.Max(0, (limit - Math.Max(Measure.OpenFiles(Environment.ProcessId), Measure.OpenFiles(relayPid)) - FileMargin) / 2);
        if (count > fits)
        {
            Console.WriteLine($"idle: {count} asked, {fits} fit: the file limit is {limit} here and the relay inherits it (each relayed connection holds " +
                              "two descriptors in the relay and two in this process; raising the hard limit needs CAP_SYS_RESOURCE)");
            count = fits;
        }

        var before = Measure.StatusField(relayPid, "VmRSS");
        var flows = new List<IFlow>(count * 2);
        var refused = new List<string>();
        var acceptedCount = 0;
        using var stopAccepting = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var accepted = await registration.AcceptAsync(stopAccepting.Token);
                    lock (flows)
                    {
                        flows.Add(accepted);
                        acceptedCount++;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
        using var gate = new SemaphoreSlim(32);
        await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            await gate.WaitAsync();
            try
            {
                // A dial the relay refuses (HostTimeout on a saturated machine) or that fails is counted, not fatal.
                var dialled = await RelayFlows.DialAsync(relay, host);
                lock (flows)
                {
                    flows.Add(dialled);
                }
            }
            catch (Exception e) when (e is RelayException or IOException or SocketException)
            {
                lock (flows)
                {
                    refused.Add(e.Message);
                }
            }
            finally
            {
                gate.Release();
            }
        }));
        await Task.Delay(TimeSpan.FromSeconds(5));
        await stopAccepting.CancelAsync();
        await accepting;
        var after = Measure.StatusField(relayPid, "VmRSS");
        var relayed = count - refused.Count;
        var perConnection = (after - before) / (double)Math.Max(1, relayed);
        Console.WriteLine($"idle: {relayed} relayed connections ({refused.Count} dials refused or failed{(refused.Count > 0 ? ", first: " + refused[0] : "")}): " +
                          $"relay RSS {before / 1024.0:0.0} -> {after / 1024.0:0.0} MiB, {perConnection:0.0} KiB per relayed connection, {acceptedCount} accepted by the host, {Measure.OpenFiles(relayPid)} fds");
        foreach (var flow in flows)
        {
            flow.Abort();
        }

        return (perConnection, relayed);
    }

    /// <summary>Descriptors kept free beside the idle connections (the runtime's, a late accept).</summary>
    private const int FileMargin = 64;

    private static Process StartRelay(string dll)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { dll, "serve", "--listen", "127.0.0.1:0" })
        {
            info.ArgumentList.Add(a);
        }

        // The idle phase dials from one source faster than the default per-source dial rate allows.
        info.Environment["RELAY_Relay__Limits__DialsPerSecond"] = "100000";
        info.Environment["RELAY_Relay__Limits__DialBurst"] = "100000";
        info.Environment["RELAY_Relay__Limits__GuidDialsPerSecond"] = "100000";
        info.Environment["RELAY_Relay__Limits__GuidDialBurst"] = "100000";

        var process = Process.Start(info)!;
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        return process;
    }

    private static string Locate()
    {
        var here = AppContext.BaseDirectory;
        return new[]
        {
            Path.Combine(here, "mobility-relay.dll"),
            Path.Combine(here, "..", "..", "..", "..", "..", "src", "Mobility.Relay.Host", "bin", new DirectoryInfo(Path.GetDirectoryName(here.TrimEnd('/'))!).Name, new DirectoryInfo(here).Name, "mobility-relay.dll"),
        }.Where(File.Exists).Select(Path.GetFullPath).FirstOrDefault() ?? throw new FileNotFoundException("mobility-relay.dll not found; pass --relay PATH");
    }
}
