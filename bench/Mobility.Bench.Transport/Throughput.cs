using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Identity;
using Mobility.Transport;

namespace Mobility.Bench.Transport;

/// <summary>
/// One connection, one direction, both ends in this process on 127.0.0.1: the writer sends
/// <c>chunk</c>-byte writes for a fixed time, then half-closes; the rate is what the reader got
/// divided by the time until it saw the end. Plain TCP (NetworkStream), mobile encrypted and mobile
/// authenticate-only alternate round by round.
/// </summary>
internal static class Throughput
{
    private static readonly string[] AllSystems = ["tcp", "mobile", "mobile-auth"];

    public static async Task<int> RunAsync(int seconds, int rounds, int chunk, string? only, string? json)
    {
        // --only mobile: one system alone, e.g. under a profiler.
        var systems = only is null ? AllSystems : [only];
        using var serverKey = HostKey.Generate();
        using var clientKey = HostKey.Generate();
        await using var listener = new MobileListener(serverKey, new MobileListenerOptions { AllowAuthenticateOnly = true });
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        using var tcpListener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        tcpListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        tcpListener.Listen(16);

        Console.WriteLine($"throughput: {seconds} s per run, {chunk}-byte writes, {rounds} rounds of ({string.Join(", ", systems)}), load average {Measure.LoadAverage()}");
        Console.WriteLine($"{"round",-6} {"system",-12} {"Gbit/s",8} {"CPU-s/GB",9}  load average");
        var results = new List<Row>();
        // A short warm-up run of each (JIT, tiering, pools), not reported.
        foreach (var system in systems)
        {
            await RunOneAsync(system, 1, chunk, listener, tcpListener, clientKey);
        }

        for (var round = 1; round <= rounds; round++)
        {
            foreach (var system in systems)
            {
                var (bytes, elapsed, cpu) = await RunOneAsync(system, seconds, chunk, listener, tcpListener, clientKey);
                var row = new Row(round, system, bytes * 8 / elapsed / 1e9, cpu / (bytes / 1e9), Measure.LoadAverage());
                results.Add(row);
                Console.WriteLine($"{round,-6} {system,-12} {Measure.F(row.Gbps),8} {Measure.F(row.CpuSecondsPerGb),9}  {row.Load}");
            }
        }

        if (only is not null)
        {
            return 0;
        }

        Console.WriteLine();
        Console.WriteLine($"{"round",-6} {"mobile/tcp",11} {"auth/tcp",9} {"CPU mobile/tcp",15}");
        var ratios = new List<(double Mobile, double Auth, double Cpu)>();
        for (var round = 1; round <= rounds; round++)
        {
            var tcp = results.Single(r => r.Round == round && r.System == "tcp");
            var mobile = results.Single(r => r.Round == round && r.System == "mobile");
            var auth = results.Single(r => r.Round == round && r.System == "mobile-auth");
            ratios.Add((mobile.Gbps / tcp.Gbps, auth.Gbps / tcp.Gbps, mobile.CpuSecondsPerGb / tcp.CpuSecondsPerGb));
            Console.WriteLine($"{round,-6} {Measure.F(ratios[^1].Mobile),11} {Measure.F(ratios[^1].Auth),9} {Measure.F(ratios[^1].Cpu),15}");
        }

        Console.WriteLine($"{"mean",-6} {Measure.F(ratios.Average(r => r.Mobile)),11} {Measure.F(ratios.Average(r => r.Auth)),9} {Measure.F(ratios.Average(r => r.Cpu)),15}");
        foreach (var system in AllSystems)
        {
            var rows = results.Where(r => r.System == system).ToList();
            Console.WriteLine($"mean {system}: {Measure.F(rows.Average(r => r.Gbps))} Gbit/s, {Measure.F(rows.Average(r => r.CpuSecondsPerGb))} CPU-s/GB");
        }

        Measure.WriteJson(json, new { seconds, rounds, chunk, results });
        return 0;
    }

    private static async Task<(long Bytes, double Seconds, double Cpu)> RunOneAsync(string system, int seconds, int chunk,
        MobileListener listener, Socket tcpListener, HostKey clientKey)
    {
        Stream writer;
        Stream reader;
        Func<Task> shutdown;
        Func<ValueTask> dispose;
        if (system == "tcp")
        {
            var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            var accept = tcpListener.AcceptAsync();
            await client.ConnectAsync(tcpListener.LocalEndPoint!);
            var server = await accept;
            writer = new NetworkStream(client, ownsSocket: true);
            reader = new NetworkStream(server, ownsSocket: true);
            shutdown = () =>
            {
                client.Shutdown(SocketShutdown.Send);
                return Task.CompletedTask;
            };
            dispose = async () =>
            {
                await writer.DisposeAsync();
                await reader.DisposeAsync();
            };
        }
        else
        {
            var connector = new MobileConnector(clientKey, new MobileConnectionOptions { Encrypt = system == "mobile" });
            var accept = listener.AcceptAsync();
            var client = await connector.ConnectAsync(listener.LocalEndPoint, listener.Guid);
            var server = await accept;
            writer = client.Stream;
            reader = server.Stream;
            shutdown = () =>
            {
                client.ShutdownWrite();
                return Task.CompletedTask;
            };
            dispose = async () =>
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await Task.WhenAll(client.CloseAsync(timeout.Token), server.CloseAsync(timeout.Token));
                await client.DisposeAsync();
                await server.DisposeAsync();
            };
        }

        var (bytes, elapsed, cpu) = await PumpAsync(writer, reader, shutdown, seconds, chunk);
        await dispose();
        return (bytes, elapsed, cpu);
    }

    /// <summary>Writes <paramref name="chunk"/>-byte blocks for <paramref name="seconds"/>, then <paramref name="shutdown"/>; reads everything on the other side. Bytes, seconds, CPU-s of this process.</summary>
    internal static async Task<(long Bytes, double Seconds, double Cpu)> PumpAsync(Stream writer, Stream reader, Func<Task> shutdown, int seconds, int chunk)
    {
        var cpuBefore = Measure.OwnCpuSeconds();
        var clock = Stopwatch.StartNew();
        var reading = Task.Run(async () =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(chunk);
            long total = 0;
            int n;
            while ((n = await reader.ReadAsync(buffer.AsMemory(0, chunk))) > 0)
            {
                total += n;
            }

            ArrayPool<byte>.Shared.Return(buffer);
            return total;
        });
        await Task.Run(async () =>
        {
            var data = new byte[chunk];
            Random.Shared.NextBytes(data);
            var end = TimeSpan.FromSeconds(seconds);
            while (clock.Elapsed < end)
            {
                await writer.WriteAsync(data);
            }

            await shutdown();
        });
        var bytes = await reading;
        return (bytes, clock.Elapsed.TotalSeconds, Measure.OwnCpuSeconds() - cpuBefore);
    }

    private sealed record Row(int Round, string System, double Gbps, double CpuSecondsPerGb, string Load);
}
