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
/// direction, alternating in each round: a plain TCP socket and a raw flow through the relay, a mobile
/// connection (encrypted) direct and through the relay; then the relay's RSS per idle relayed connection.
/// </summary>
internal static class RelayBench
{
    private static readonly string[] Systems = ["tcp", "relay", "mobile", "mobile-relay"];

    public static async Task<int> RunAsync(int seconds, int rounds, int chunk, int idle, string? relayDll, string? json)
    {
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

            var results = new List<object>();
            var gbps = Systems.ToDictionary(s => s, _ => new List<double>());
            for (var round = 1; round <= rounds; round++)
            {
                foreach (var system in Systems)
                {
                    var relayCpu = Measure.CpuSeconds(relay.Id);
                    var (bytes, elapsed, cpu) = await RunOneAsync(system, seconds, chunk, endpoint, registration, listener, tcpListener, rawKey.Guid, serverKey.Guid, clientKey);
                    relayCpu = Measure.CpuSeconds(relay.Id) - relayCpu;
                    var rate = bytes * 8 / elapsed / 1e9;
                    gbps[system].Add(rate);
                    var gb = bytes / 1e9;
                    Console.WriteLine($"round {round} {system,-13} {Measure.F(rate)} Gbit/s  CPU-s/GB bench {Measure.F(cpu / gb)} relay {Measure.F(relayCpu / gb)}");
                    results.Add(new { round, system, gbps = rate, cpuPerGb = cpu / gb, relayCpuPerGb = relayCpu / gb, load = Measure.LoadAverage() });
                }
            }

            double Median(string s) => Measure.Percentile([.. gbps[s].Order()], 50);
            Console.WriteLine($"median Gbit/s: tcp {Measure.F(Median("tcp"))} relay {Measure.F(Median("relay"))} (x{Measure.F(Median("relay") / Median("tcp"))}), " +
                              $"mobile {Measure.F(Median("mobile"))} mobile-relay {Measure.F(Median("mobile-relay"))} (x{Measure.F(Median("mobile-relay") / Median("mobile"))})");

            var perConnection = await IdleAsync(relay.Id, endpoint, registration, rawKey.Guid, idle);
            Measure.WriteJson(json, new { rounds = results, idleConnections = idle, relayRssKibPerIdleConnection = perConnection });
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

    /// <summary>Opens <paramref name="count"/> relayed flows that then idle; the relay's RSS growth per relayed connection (two TCP connections at the relay), in KiB.</summary>
    private static async Task<double> IdleAsync(int relayPid, IPEndPoint relay, RelayFlowListener registration, HostGuid host, int count)
    {
        await Task.Delay(TimeSpan.FromSeconds(3));
        var before = Measure.StatusField(relayPid, "VmRSS");
        var flows = new List<IFlow>(count * 2);
        using var gate = new SemaphoreSlim(32);
        await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            await gate.WaitAsync();
            try
            {
                var accept = registration.AcceptAsync(CancellationToken.None).AsTask();
                var dialled = await RelayFlows.DialAsync(relay, host);
                var accepted = await accept;
                lock (flows)
                {
                    flows.Add(dialled);
                    flows.Add(accepted);
                }
            }
            finally
            {
                gate.Release();
            }
        }));
        await Task.Delay(TimeSpan.FromSeconds(5));
        var after = Measure.StatusField(relayPid, "VmRSS");
        var perConnection = (after - before) / (double)count;
        Console.WriteLine($"idle: {count} relayed connections: relay RSS {before / 1024.0:0.0} -> {after / 1024.0:0.0} MiB, {perConnection:0.0} KiB per relayed connection, {Measure.OpenFiles(relayPid)} fds");
        foreach (var flow in flows)
        {
            flow.Abort();
        }

        return perConnection;
    }

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
