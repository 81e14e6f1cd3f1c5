using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Bench.Gns;

/// <summary>
/// gns-bench watch-latency: how long a signed update sent to one gns process takes to reach a watcher
/// subscribed through another gns process (both on the same Redis: the push crosses Redis pub/sub).
/// One update at a time: sign (untimed), send over UDP to A and time until B's Watch stream delivers
/// that exact (GUID, version). The ack from A is timed too.
/// </summary>
internal static class WatchLatency
{
    public static async Task<int> RunAsync(IPEndPoint updateServer, Uri watchGrpc, int updates, int hosts, TimeSpan pause, string? json)
    {
        var keys = new HostKey[hosts];
        for (var i = 0; i < hosts; i++)
        {
            var seed = SHA256.HashData(Encoding.ASCII.GetBytes("mobility-bench/watch/" + i.ToString(CultureInfo.InvariantCulture)));
            keys[i] = HostKey.FromSeed(seed);
        }

        try
        {
            await using var sender = new GnsClient(new GnsClientOptions { Server = updateServer, CacheEnabled = false });
            await using var watcher = new GnsClient(new GnsClientOptions { Server = updateServer, GrpcAddress = watchGrpc, CacheEnabled = false });
            var version = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;
            GnsRecord Next(int host) => GnsRecord.Create(keys[host], ++version,
                [new Locator(new IPAddress([10, 200, (byte)(version >> 8), (byte)version]), BenchData.Port)], ttlSeconds: 300);

            // Every host gets a record before the watch opens (a watch of a GUID with no record is allowed, but this keeps the runs alike).
            for (var i = 0; i < hosts; i++)
            {
                await sender.RegisterAsync(Next(i));
            }

            var arrivals = Channel.CreateUnbounded<(HostGuid Guid, ulong Version, long At)>(new UnboundedChannelOptions { SingleReader = true });
            using var stop = new CancellationTokenSource();
            var watch = Task.Run(async () =>
            {
                try
                {
                    await foreach (var e in watcher.WatchAsync(keys.Select(k => k.Guid), stop.Token))
                    {
                        arrivals.Writer.TryWrite((e.Guid, e.Version, Stopwatch.GetTimestamp()));
                    }
                }
                catch (OperationCanceledException)
                {
                }
            });

            // Warm-up: update host 0 until its push arrives (the watch is then open end to end).
            var warm = Stopwatch.StartNew();
            var connected = false;
            while (!connected && warm.Elapsed < TimeSpan.FromSeconds(20))
            {
                var record = Next(0);
                await sender.RegisterAsync(record);
                connected = await WaitForAsync(arrivals.Reader, record.Guid, record.Version, TimeSpan.FromSeconds(1)) is not null;
            }

            if (!connected)
            {
                await Console.Error.WriteLineAsync($"gns-bench: watch-latency: no push from {watchGrpc} within 20 s");
                return 1;
            }

            var push = new List<double>(updates);
            var ack = new List<double>(updates);
            var afterAck = new List<double>(updates);
            var missed = 0;
            for (var i = 0; i < updates; i++)
            {
                var record = Next(i % hosts);
                var t0 = Stopwatch.GetTimestamp();
                await sender.RegisterAsync(record);
                var acked = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                ack.Add(acked);
                if (await WaitForAsync(arrivals.Reader, record.Guid, record.Version, TimeSpan.FromSeconds(5)) is { } at)
                {
                    var pushed = Stopwatch.GetElapsedTime(t0, at).TotalMilliseconds;
                    push.Add(pushed);
                    // Negative when the push overtook the ack.
                    afterAck.Add(pushed - acked);
                }
                else
                {
                    missed++;
                }

                if (pause > TimeSpan.Zero)
                {
                    await Task.Delay(pause);
                }
            }

            await stop.CancelAsync();
            await watch.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { });

            push.Sort();
            ack.Sort();
            afterAck.Sort();
            var load = File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "";
            var result = new
            {
                phase = "watch-latency",
                updates,
                hosts,
                received = push.Count,
                missed,
                pushP50Ms = Percentile(push, 0.50),
                pushP90Ms = Percentile(push, 0.90),
                pushP99Ms = Percentile(push, 0.99),
                pushMaxMs = push.Count > 0 ? push[^1] : double.NaN,
                pushMeanMs = push.Count > 0 ? push.Average() : double.NaN,
                ackP50Ms = Percentile(ack, 0.50),
                ackP99Ms = Percentile(ack, 0.99),
                pushAfterAckP50Ms = Percentile(afterAck, 0.50),
                pushAfterAckP99Ms = Percentile(afterAck, 0.99),
                loadAverageAfter = load,
            };
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"watch-latency: {updates} updates to {updateServer} (UDP), pushes from {watchGrpc} (gRPC Watch): received {push.Count}, missed {missed}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  send->push  p50 {result.pushP50Ms:F3} ms  p90 {result.pushP90Ms:F3} ms  p99 {result.pushP99Ms:F3} ms  max {result.pushMaxMs:F3} ms  mean {result.pushMeanMs:F3} ms"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  send->ack   p50 {result.ackP50Ms:F3} ms  p99 {result.ackP99Ms:F3} ms   push-ack p50 {result.pushAfterAckP50Ms:F3} ms  p99 {result.pushAfterAckP99Ms:F3} ms   load avg {load}"));
            if (json is not null)
            {
                File.WriteAllText(json, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
            }

            return missed == 0 ? 0 : 1;
        }
        finally
        {
            foreach (var key in keys)
            {
                key.Dispose();
            }
        }
    }

    private static async Task<long?> WaitForAsync(ChannelReader<(HostGuid Guid, ulong Version, long At)> reader, HostGuid guid, ulong version, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var e = await reader.ReadAsync(cts.Token);
                if (e.Guid == guid && e.Version == version)
                {
                    return e.At;
                }
            }
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    private static double Percentile(List<double> sorted, double q)
        => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];
}
