// daemon-bench moves: how long after a peer moves does another daemon's get_ip answer its new address?
//
//   dotnet daemon-bench.dll moves [--mobilityd PATH/mobilityd.dll] [--moves 30] [--json FILE]
//
// Three real mobilityd processes on loopback: A runs the embedded GNS (UDP, and gRPC for watches),
// B and C publish to it. B looks C up once (get_ip), which makes B watch C. Then C moves --moves times
// (PUT /v1/addresses over its Unix socket, a new loopback address each time) while the benchmark
// polls get_ip of C at B over B's Unix socket until it lists the new address. The anchor, in the same
// moves: a plain GNS client watching C at A's GNS, timed from the same start to the push that carries
// the new record. The difference is what B adds to the push (the watch at B, its cache, one get_ip round trip).
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Threading.Channels;
using Mobility.Daemon.Client;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;

internal static class MoveLatency
{
    public static async Task<int> RunAsync(string[] args, Func<string> locate)
    {
        var moves = 30;
        string? mobilityd = null;
        string? jsonOut = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--moves": moves = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--mobilityd": mobilityd = args[++i]; break;
                case "--json": jsonOut = args[++i]; break;
                default: Console.Error.WriteLine($"daemon-bench moves: unknown argument {args[i]}"); return 64;
            }
        }

        if (moves < 1)
        {
            Console.Error.WriteLine("daemon-bench moves: --moves must be at least 1");
            return 64;
        }

        mobilityd ??= locate();
        var root = Directory.CreateTempSubdirectory("daemon-bench-moves-").FullName;
        await using var a = await Daemon.StartAsync(mobilityd, Path.Combine(root, "a"),
            ["--embedded-gns", "--embedded-gns-udp", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--address", "127.0.0.2", "--control", "127.0.0.2:0"]);
        var gnsUdp = a.Field("gns");
        var gnsGrpc = a.Field("grpc");
        await using var b = await Daemon.StartAsync(mobilityd, Path.Combine(root, "b"),
            ["--gns", gnsUdp, "--gns-grpc", gnsGrpc, "--address", "127.0.0.3", "--control", "127.0.0.3:0"]);
        await using var c = await Daemon.StartAsync(mobilityd, Path.Combine(root, "c"),
            ["--gns", gnsUdp, "--gns-grpc", gnsGrpc, "--address", "127.0.0.4", "--control", "127.0.0.4:0"]);
        var cGuid = c.Field("guid");
        using var atB = new DaemonClient(b.Socket);
        using var atC = new DaemonClient(c.Socket);

        // The anchor: a watch of C straight at the GNS; every event goes into a channel with its arrival time.
        await using var gns = new GnsClient(new GnsClientOptions { Server = IPEndPoint.Parse(gnsUdp), GrpcAddress = new Uri(gnsGrpc) });
        var pushes = Channel.CreateUnbounded<(long At, GnsWatchEvent Event)>();
        using var stop = new CancellationTokenSource();
        var watch = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in gns.WatchAsync([HostGuid.Parse(cGuid)], stop.Token))
                {
                    pushes.Writer.TryWrite((Stopwatch.GetTimestamp(), e));
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        // B looks C up once (C publishes shortly after start), which starts B's watch of C.
        await UntilAsync(async () => (await atB.GetIpAddressesAsync(cGuid, CancellationToken.None)).Contains("127.0.0.4"), "B resolves C");

        var getIp = new List<double>();
        var push = new List<double>();
        // Move 0 warms up (JIT in three processes, B's watch opening); it is not counted.
        for (var i = 0; i <= moves; i++)
        {
            var to = $"127.0.{10 + (i / 200)}.{2 + (i % 200)}";
            var start = Stopwatch.GetTimestamp();
            var call = atC.SetAddressesAsync([to], CancellationToken.None);
            await UntilAsync(async () => (await atB.GetIpAddressesAsync(cGuid, CancellationToken.None)).Contains(to), $"B's get_ip answers move {i}");
            var seenAtB = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            double pushed;
            while (true)
            {
                var (at, e) = await pushes.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
                if (e.Record is { } record && record.HasAddress(IPAddress.Parse(to)))
                {
                    pushed = Stopwatch.GetElapsedTime(start, at).TotalMilliseconds;
                    break;
                }
            }

            await call;
            if (i > 0)
            {
                getIp.Add(seenAtB);
                push.Add(pushed);
            }

            await Task.Delay(100);
        }

        await stop.CancelAsync();
        await watch;
        var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
        var results = new[]
        {
            Summary("move -> get_ip at another daemon answers the new address", getIp),
            Summary("anchor: move -> GNS watch push of the new record", push),
        };
        Console.WriteLine($"move latency, {moves} moves (after one warm-up), load average {load}");
        Console.WriteLine($"{"measure",-58} {"p50 ms",8} {"p90 ms",8} {"max ms",8}");
        foreach (var r in results)
        {
            Console.WriteLine($"{r.Name,-58} {r.P50,8:0.0} {r.P90,8:0.0} {r.Max,8:0.0}");
        }

        Console.WriteLine($"get_ip p50 / push p50: {results[0].P50 / results[1].P50:0.00}; get_ip p50 - push p50: {results[0].P50 - results[1].P50:0.0} ms");
        if (jsonOut is not null)
        {
            await File.WriteAllTextAsync(jsonOut, JsonSerializer.Serialize(new { load, moves, results, getIp, push }, new JsonSerializerOptions { WriteIndented = true }));
        }

        Directory.Delete(root, recursive: true);
        return 0;
    }

    private static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(90))
            {
                throw new TimeoutException($"daemon-bench moves: {what} did not happen within 90 s");
            }
        }
    }

    private static MoveResult Summary(string name, List<double> samples)
    {
        var sorted = samples.Order().ToArray();
        return new MoveResult(name, sorted[sorted.Length / 2], sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * 0.9))], sorted[^1]);
    }
}

internal sealed record MoveResult(string Name, double P50, double P90, double Max);
