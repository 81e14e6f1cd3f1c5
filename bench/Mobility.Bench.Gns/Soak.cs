using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Mobility.Gns.Client;
using Mobility.Netlab.Reporting;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Bench.Gns;

/// <summary>
/// gns-bench soak: a steady, open-loop mix of lookups by GUID and signed updates against one gns for a
/// long time, sampling every few seconds the server's resident memory (VmRSS), CPU, the lookup and
/// update latencies and the errors. At the end every host is looked up once more and its version
/// compared with the highest version the server acknowledged for it: an acknowledged update that a
/// lookup does not return is reported as lost. Writes the samples as CSV and as an SVG chart.
/// </summary>
internal static class Soak
{
    /// <summary>Operations in flight beyond which a due operation is skipped (and counted), so a stalled server cannot grow the generator without bound.</summary>
    private const int MaxInFlight = 4096;

    public sealed record Settings(IPEndPoint Server, int? ServerPid, TimeSpan Duration, int LookupRate, int UpdateRate, int Hosts,
        TimeSpan SampleEvery, string? Csv, string? Svg, string? Json, string Label);

    public static async Task<int> RunAsync(Settings s)
    {
        var keys = new HostKey[s.Hosts];
        for (var i = 0; i < s.Hosts; i++)
        {
            keys[i] = HostKey.FromSeed(SHA256.HashData(Encoding.ASCII.GetBytes("mobility-bench/soak/" + i.ToString(CultureInfo.InvariantCulture))));
        }

        try
        {
            await using var client = new GnsClient(new GnsClientOptions { Server = s.Server, CacheEnabled = false });
            var acked = new long[s.Hosts];
            var version = (long)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;
            GnsRecord Next(int host)
            {
                var v = (ulong)Interlocked.Increment(ref version);
                return GnsRecord.Create(keys[host], v, [new Locator(new IPAddress([10, 201, (byte)(v >> 8), (byte)v]), BenchData.Port)], ttlSeconds: 300);
            }

            void Acked(int host, ulong v)
            {
                long seen;
                do
                {
                    seen = Volatile.Read(ref acked[host]);
                }
                while ((long)v > seen && Interlocked.CompareExchange(ref acked[host], (long)v, seen) != seen);
            }

            Console.Error.WriteLine($"gns-bench soak: registering {s.Hosts} hosts at {s.Server}");
            await Parallel.ForAsync(0, s.Hosts, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, _) =>
            {
                var record = Next(i);
                await client.RegisterAsync(record);
                Acked(i, record.Version);
            });

            var window = new Window();
            var samples = new List<Sample>();
            var inFlight = 0;
            var tasks = new List<Task>();
            var started = Stopwatch.GetTimestamp();
            var cpu0 = CpuTicks(s.ServerPid);
            var lastSample = started;
            var lastCpu = cpu0;
            var nextSample = s.SampleEvery;
            long lookupsLaunched = 0, updatesLaunched = 0, skipped = 0;
            var updateHost = 0;
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(5));
            Console.Error.WriteLine($"gns-bench soak: {s.LookupRate} lookups/s + {s.UpdateRate} signed updates/s for {s.Duration.TotalSeconds:F0} s, sampling every {s.SampleEvery.TotalSeconds:F0} s");
            while (true)
            {
                var elapsed = Stopwatch.GetElapsedTime(started);
                if (elapsed >= s.Duration)
                {
                    break;
                }

                var lookupsDue = (long)(elapsed.TotalSeconds * s.LookupRate);
                var updatesDue = (long)(elapsed.TotalSeconds * s.UpdateRate);
                for (; lookupsLaunched < lookupsDue; lookupsLaunched++)
                {
                    if (Volatile.Read(ref inFlight) >= MaxInFlight)
                    {
                        skipped++;
                        continue;
                    }

                    var host = Random.Shared.Next(s.Hosts);
                    Interlocked.Increment(ref inFlight);
                    tasks.Add(LookupAsync(client, keys[host].Guid, window, () => Interlocked.Decrement(ref inFlight)));
                }

                for (; updatesLaunched < updatesDue; updatesLaunched++)
                {
                    if (Volatile.Read(ref inFlight) >= MaxInFlight)
                    {
                        skipped++;
                        continue;
                    }

                    // Hosts in turn: with hosts >> rate x latency no host has two updates in flight.
                    var host = updateHost;
                    updateHost = (updateHost + 1) % s.Hosts;
                    Interlocked.Increment(ref inFlight);
                    tasks.Add(UpdateAsync(client, Next(host), window, v => Acked(host, v), () => Interlocked.Decrement(ref inFlight)));
                }

                tasks.RemoveAll(t => t.IsCompleted);
                if (elapsed >= nextSample)
                {
                    var now = Stopwatch.GetTimestamp();
                    var cpu = CpuTicks(s.ServerPid);
                    var sample = window.Take(elapsed.TotalSeconds, Stopwatch.GetElapsedTime(lastSample, now).TotalSeconds,
                        ReadRss(s.ServerPid), cpu is { } c && lastCpu is { } l ? (c - l) / (double)TicksPerSecond / Stopwatch.GetElapsedTime(lastSample, now).TotalSeconds : double.NaN,
                        LoadAverage.Read() ?? "", skipped);
                    samples.Add(sample);
                    Console.Error.WriteLine(sample.Describe());
                    lastSample = now;
                    lastCpu = cpu;
                    nextSample += s.SampleEvery;
                }

                await timer.WaitForNextTickAsync();
            }

            await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(30));

            // Nothing lost: every host's latest acknowledged version is what a lookup returns now.
            long lost = 0, newer = 0, failedChecks = 0;
            await Parallel.ForAsync(0, s.Hosts, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, _) =>
            {
                try
                {
                    var record = await client.LookupAsync(keys[i].Guid);
                    var expected = (ulong)Volatile.Read(ref acked[i]);
                    if (record is null || record.Version < expected)
                    {
                        Interlocked.Increment(ref lost);
                    }
                    else if (record.Version > expected)
                    {
                        // An update whose ack was lost (counted as an error) may have been stored: allowed.
                        Interlocked.Increment(ref newer);
                    }
                }
                catch (GnsException)
                {
                    Interlocked.Increment(ref failedChecks);
                }
            });

            var totals = new
            {
                phase = "soak",
                label = s.Label,
                seconds = s.Duration.TotalSeconds,
                lookupRate = s.LookupRate,
                updateRate = s.UpdateRate,
                hosts = s.Hosts,
                lookups = samples.Sum(x => x.Lookups),
                updates = samples.Sum(x => x.Updates),
                lookupErrors = samples.Sum(x => x.LookupErrors),
                updateErrors = samples.Sum(x => x.UpdateErrors),
                skipped,
                verifiedHosts = s.Hosts - failedChecks,
                lost,
                newerThanAcked = newer,
                failedChecks,
                rssFirstMb = samples.Count > 0 ? samples[0].RssMb : double.NaN,
                rssLastMb = samples.Count > 0 ? samples[^1].RssMb : double.NaN,
                rssMaxMb = samples.Count > 0 ? samples.Max(x => x.RssMb) : double.NaN,
                samples,
            };
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"soak {s.Label}: {totals.lookups} lookups ({totals.lookupErrors} errors), {totals.updates} updates ({totals.updateErrors} errors), {skipped} skipped; " +
                $"RSS {totals.rssFirstMb:F1} -> {totals.rssLastMb:F1} MB (max {totals.rssMaxMb:F1}); check of {s.Hosts} hosts: lost {lost}, newer than acked {newer}, failed {failedChecks}"));
            WriteOutputs(s, samples, totals);
            return lost == 0 && failedChecks == 0 ? 0 : 1;
        }
        finally
        {
            foreach (var key in keys)
            {
                key.Dispose();
            }
        }
    }

    private static async Task LookupAsync(GnsClient client, HostGuid guid, Window window, Action done)
    {
        var t0 = Stopwatch.GetTimestamp();
        try
        {
            var record = await client.LookupAsync(guid);
            window.Lookup(Stopwatch.GetElapsedTime(t0).TotalMilliseconds, ok: record is not null);
        }
        catch (GnsException)
        {
            window.Lookup(double.NaN, ok: false);
        }
        finally
        {
            done();
        }
    }

    private static async Task UpdateAsync(GnsClient client, GnsRecord record, Window window, Action<ulong> acked, Action done)
    {
        var t0 = Stopwatch.GetTimestamp();
        try
        {
            var result = await client.RegisterAsync(record);
            acked(result.Version);
            window.Update(Stopwatch.GetElapsedTime(t0).TotalMilliseconds, ok: true);
        }
        catch (GnsException)
        {
            window.Update(double.NaN, ok: false);
        }
        finally
        {
            done();
        }
    }

    private static void WriteOutputs(Settings s, List<Sample> samples, object totals)
    {
        if (s.Csv is { } csv)
        {
            var text = new StringBuilder(Sample.CsvHeader).Append('\n');
            foreach (var sample in samples)
            {
                text.Append(sample.ToCsv()).Append('\n');
            }

            File.WriteAllText(csv, text.ToString());
        }

        if (s.Svg is { } svg)
        {
            File.WriteAllText(svg, Chart(string.Create(CultureInfo.InvariantCulture,
                $"gns soak ({s.Label}): {s.LookupRate} lookups/s + {s.UpdateRate} signed updates/s, {s.Hosts} hosts"), samples));
        }

        if (s.Json is { } json)
        {
            File.WriteAllText(json, JsonSerializer.Serialize(totals, new JsonSerializerOptions { WriteIndented = true }));
        }
    }

    /// <summary>gns-bench soak-chart: draws the SVG again from a soak's CSV (for example after a change of the chart).</summary>
    public static int RenderCsv(string csv, string svg, string title)
    {
        var samples = new List<Sample>();
        foreach (var line in File.ReadLines(csv).Skip(1).Where(l => l.Length > 0))
        {
            samples.Add(Sample.FromCsv(line));
        }

        File.WriteAllText(svg, Chart(title, samples));
        return 0;
    }

    private static string Chart(string title, List<Sample> samples)
    {
        List<(double, double)> Points(Func<Sample, double> y) => samples.Select(x => (x.Seconds, y(x))).ToList();
        return SvgChart.Render(
                title,
                "seconds since start",
                [
                    new ChartPanel("gns RSS (MB)", [new ChartSeries("VmRSS", Points(x => x.RssMb), "#1f77b4")]),
                    new ChartPanel("lookup latency (ms, log)", [new ChartSeries("p50", Points(x => x.LookupP50Ms), "#2ca02c"), new ChartSeries("p99", Points(x => x.LookupP99Ms), "#d62728")], Logarithmic: true),
                    new ChartPanel("update latency (ms, log)", [new ChartSeries("p50", Points(x => x.UpdateP50Ms), "#2ca02c"), new ChartSeries("p99", Points(x => x.UpdateP99Ms), "#d62728")], Logarithmic: true),
                    new ChartPanel("per second", [
                        new ChartSeries("lookups/s", Points(x => x.Lookups / x.IntervalSeconds), "#1f77b4"),
                        new ChartSeries("updates/s x10", Points(x => x.Updates * 10 / x.IntervalSeconds), "#ff7f0e"),
                        new ChartSeries("errors/s", Points(x => (x.LookupErrors + x.UpdateErrors) / x.IntervalSeconds), "#d62728"),
                    ]),
                    new ChartPanel("gns CPU (cores) / load avg", [
                        new ChartSeries("gns CPU", Points(x => x.CpuCores), "#9467bd"),
                        new ChartSeries("load avg 1 min", Points(x => x.Load1), "#7f7f7f"),
                    ]),
                ]);
    }

    private static readonly long TicksPerSecond = 100;

    /// <summary>utime + stime of the process in clock ticks (USER_HZ, 100 on Linux), or null.</summary>
    private static long? CpuTicks(int? pid)
    {
        if (pid is not { } p || !File.Exists($"/proc/{p}/stat"))
        {
            return null;
        }

        var stat = File.ReadAllText($"/proc/{p}/stat");
        // Fields after the command name (which may hold spaces) start after the last ')'.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }

    /// <summary>VmRSS of the process in MB, or NaN.</summary>
    private static double ReadRss(int? pid)
    {
        if (pid is not { } p || !File.Exists($"/proc/{p}/status"))
        {
            return double.NaN;
        }

        foreach (var line in File.ReadLines($"/proc/{p}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
            }
        }

        return double.NaN;
    }

    /// <summary>Latencies and errors since the last sample; written by completions on any thread.</summary>
    private sealed class Window
    {
        private readonly Lock _gate = new();
        private List<double> _lookups = new(16_384);
        private List<double> _updates = new(2048);
        private long _lookupErrors;
        private long _updateErrors;

        public void Lookup(double ms, bool ok)
        {
            lock (_gate)
            {
                if (ok)
                {
                    _lookups.Add(ms);
                }
                else
                {
                    _lookupErrors++;
                }
            }
        }

        public void Update(double ms, bool ok)
        {
            lock (_gate)
            {
                if (ok)
                {
                    _updates.Add(ms);
                }
                else
                {
                    _updateErrors++;
                }
            }
        }

        public Sample Take(double seconds, double interval, double rssMb, double cpuCores, string load, long skipped)
        {
            List<double> lookups, updates;
            long lookupErrors, updateErrors;
            lock (_gate)
            {
                (lookups, _lookups) = (_lookups, new List<double>(Math.Max(1024, _lookups.Count)));
                (updates, _updates) = (_updates, new List<double>(Math.Max(256, _updates.Count)));
                (lookupErrors, _lookupErrors) = (_lookupErrors, 0);
                (updateErrors, _updateErrors) = (_updateErrors, 0);
            }

            lookups.Sort();
            updates.Sort();
            var load1 = double.TryParse(load.Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var l) ? l : double.NaN;
            return new Sample(seconds, interval, rssMb, cpuCores, load1, lookups.Count, lookupErrors, Percentile(lookups, 0.5), Percentile(lookups, 0.99),
                updates.Count, updateErrors, Percentile(updates, 0.5), Percentile(updates, 0.99), skipped);
        }

        private static double Percentile(List<double> sorted, double q)
            => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];
    }

    public sealed record Sample(double Seconds, double IntervalSeconds, double RssMb, double CpuCores, double Load1,
        long Lookups, long LookupErrors, double LookupP50Ms, double LookupP99Ms,
        long Updates, long UpdateErrors, double UpdateP50Ms, double UpdateP99Ms, long SkippedTotal)
    {
        public const string CsvHeader =
            "seconds,rss_mb,gns_cpu_cores,load1,lookups,lookup_errors,lookup_p50_ms,lookup_p99_ms,updates,update_errors,update_p50_ms,update_p99_ms,skipped_total,interval_s";

        public static Sample FromCsv(string line)
        {
            var f = line.Split(',');
            double D(int i) => double.Parse(f[i], CultureInfo.InvariantCulture);
            long L(int i) => long.Parse(f[i], CultureInfo.InvariantCulture);
            // Files written before interval_s was added were sampled every 5 s.
            return new Sample(D(0), f.Length > 13 ? D(13) : 5, D(1), D(2), D(3), L(4), L(5), D(6), D(7), L(8), L(9), D(10), D(11), L(12));
        }

        public string ToCsv() => string.Create(CultureInfo.InvariantCulture,
            $"{Seconds:F1},{RssMb:F1},{CpuCores:F3},{Load1:F2},{Lookups},{LookupErrors},{LookupP50Ms:F3},{LookupP99Ms:F3},{Updates},{UpdateErrors},{UpdateP50Ms:F3},{UpdateP99Ms:F3},{SkippedTotal},{IntervalSeconds:F3}");

        public string Describe() => string.Create(CultureInfo.InvariantCulture,
            $"[{Seconds,6:F0} s] RSS {RssMb,7:F1} MB  CPU {CpuCores:F2}  lookups {Lookups / IntervalSeconds,6:F0}/s p50 {LookupP50Ms:F2} p99 {LookupP99Ms:F2} ms err {LookupErrors}  " +
            $"updates {Updates / IntervalSeconds,5:F0}/s p50 {UpdateP50Ms:F2} p99 {UpdateP99Ms:F2} ms err {UpdateErrors}  load {Load1:F2}");
    }
}
