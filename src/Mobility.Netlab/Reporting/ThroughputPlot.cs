using System.Diagnostics;
using System.Globalization;
using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Traffic;

namespace Mobility.Netlab.Reporting;

/// <summary>Throughput at the receiver over time across the move, one line per system, from the runs' timelines.</summary>
public static class ThroughputPlot
{
    /// <summary>Bin width of the throughput series.</summary>
    public static readonly TimeSpan Bin = TimeSpan.FromMilliseconds(50);

    /// <summary>The window plotted around the move's start.</summary>
    public static readonly TimeSpan Before = TimeSpan.FromSeconds(1);

    public static readonly TimeSpan After = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Top of the y axis. After a stall the queued chunks arrive in one burst (2 s of a 200 KiB/s stream in one 50 ms bin
    /// is 8000 KiB/s), which would flatten the steady rate to nothing; bursts are drawn clipped at this value.
    /// </summary>
    public const double ClipKiBps = 1000;

    /// <summary>An SVG of <paramref name="runs"/> (same scenario and RTT); runs without a timeline are left out.</summary>
    public static string Render(string scenario, int rttMs, IEnumerable<ScenarioResult> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var chart = new SvgChart
        {
            Title = $"{scenario}, {rttMs.ToString(CultureInfo.InvariantCulture)} ms RTT: KiB/s received per {Bin.TotalMilliseconds:0} ms (sender paced at 200 KiB/s; catch-up bursts clipped at {ClipKiBps:0})",
            YMax = ClipKiBps,
            XLabel = "time since the move started (s)",
            YLabel = "throughput at the receiver (KiB/s)",
        };
        foreach (var run in runs)
        {
            if (run.Timeline is not { } timeline)
            {
                continue;
            }

            var from = timeline.MoveAt - Ticks(Before);
            var bins = StallAnalysis.ThroughputKiBps(timeline.Arrivals, from, timeline.MoveAt + Ticks(After), Bin, Chunks.Size);
            var points = bins.Select((v, i) => (((i + 0.5) * Bin.TotalSeconds) - Before.TotalSeconds, v)).ToList();
            var label = $"{run.System} ({(run.Survived ? $"stall {run.StallMs:0} ms" : "did not survive")})";
            chart.Series.Add(new ChartSeries(label, points));
        }

        chart.Markers.Add(new ChartMarker(0, "move"));
        return chart.Render();
    }

    /// <summary>Writes <c>throughput-SCENARIO-RTTms.svg</c> into <paramref name="directory"/> for each requested (scenario, RTT) present in the results.</summary>
    public static IReadOnlyList<string> WriteAll(string directory, IReadOnlyList<ScenarioResult> results, IEnumerable<(string Scenario, int RttMs)> which)
    {
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(which);
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        foreach (var (scenario, rtt) in which)
        {
            var runs = results.Where(r => r.Scenario == scenario && r.RttMs == rtt && r.Run == 1 && r.Timeline is not null).ToList();
            if (runs.Count == 0)
            {
                continue;
            }

            var path = Path.Combine(directory, $"throughput-{scenario}-{rtt.ToString(CultureInfo.InvariantCulture)}ms.svg");
            File.WriteAllText(path, Render(scenario, rtt, runs));
            written.Add(path);
        }

        return written;
    }

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);
}
