using System.Diagnostics;
using Mobility.Netlab.Traffic;

namespace Mobility.Netlab.Scenarios;

/// <summary>Turns the receiver's arrival times into the stall metrics. Pure: unit-testable without sockets.</summary>
public static class StallAnalysis
{
    /// <summary>Arrivals in the first half second are connection warm-up and do not count towards the noise floor.</summary>
    public static readonly TimeSpan WarmUp = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// The longest gap between consecutive arrivals (in arrival order) whose later arrival is at or after
    /// <paramref name="moveAt"/> (and before <paramref name="until"/>, the next event); null when nothing arrived after the move.
    /// </summary>
    public static double? StallMs(IReadOnlyList<Arrival> arrivals, long moveAt, long until = long.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(arrivals);
        double? worst = null;
        for (var i = 1; i < arrivals.Count; i++)
        {
            if (arrivals[i].At < moveAt || arrivals[i].At >= until)
            {
                continue;
            }

            var gap = Ms(arrivals[i].At - arrivals[i - 1].At);
            worst = worst is null ? gap : Math.Max(worst.Value, gap);
        }

        return worst;
    }

    /// <summary>99th percentile of inter-arrival gaps before the move (after warm-up), null with fewer than 10 gaps.</summary>
    public static double? BaselineGapP99Ms(IReadOnlyList<Arrival> arrivals, long moveAt)
    {
        ArgumentNullException.ThrowIfNull(arrivals);
        if (arrivals.Count == 0)
        {
            return null;
        }

        var warmEnd = arrivals[0].At + (long)(WarmUp.TotalSeconds * Stopwatch.Frequency);
        var gaps = new List<double>();
        for (var i = 1; i < arrivals.Count && arrivals[i].At < moveAt; i++)
        {
            if (arrivals[i - 1].At >= warmEnd)
            {
                gaps.Add(Ms(arrivals[i].At - arrivals[i - 1].At));
            }
        }

        if (gaps.Count < 10)
        {
            return null;
        }

        gaps.Sort();
        return gaps[(int)Math.Min(gaps.Count - 1, Math.Ceiling(gaps.Count * 0.99) - 1)];
    }

    /// <summary>
    /// For a connection that was idle across the move: how much longer than usual the chunks sent at or after
    /// <paramref name="sendingResumedAt"/> took to arrive (largest one-way delay among them minus the median one-way delay
    /// of the chunks that arrived before <paramref name="moveAt"/>); null when none of them arrived.
    /// </summary>
    public static double? ExtraDelayMs(IReadOnlyList<Arrival> arrivals, long moveAt, long sendingResumedAt)
    {
        ArgumentNullException.ThrowIfNull(arrivals);
        var before = arrivals.Where(a => a.At < moveAt).Select(a => Ms(a.At - a.SentAt)).Order().ToList();
        var after = arrivals.Where(a => a.SentAt >= sendingResumedAt).Select(a => Ms(a.At - a.SentAt)).ToList();
        if (after.Count == 0)
        {
            return null;
        }

        var baseline = before.Count == 0 ? 0 : before[before.Count / 2];
        return Math.Max(0, after.Max() - baseline);
    }

    /// <summary>Received bytes per bin of <paramref name="bin"/>, from <paramref name="from"/> to <paramref name="to"/> (Stopwatch timestamps), as KiB/s.</summary>
    public static IReadOnlyList<double> ThroughputKiBps(IReadOnlyList<Arrival> arrivals, long from, long to, TimeSpan bin, int chunkSize)
    {
        ArgumentNullException.ThrowIfNull(arrivals);
        var binTicks = (long)(bin.TotalSeconds * Stopwatch.Frequency);
        var bins = new double[Math.Max(0, (int)((to - from) / binTicks))];
        foreach (var a in arrivals)
        {
            var i = (a.At - from) / binTicks;
            if (a.At >= from && i < bins.Length)
            {
                bins[i] += chunkSize;
            }
        }

        return [.. bins.Select(b => b / 1024.0 / bin.TotalSeconds)];
    }

    /// <summary>Chunks in 0..<paramref name="written"/>-1 that were not received.</summary>
    public static long MissingChunks(IReadOnlyList<Arrival> arrivals, long written)
    {
        ArgumentNullException.ThrowIfNull(arrivals);
        var seen = new HashSet<long>();
        foreach (var a in arrivals)
        {
            if (a.Sequence < written)
            {
                seen.Add(a.Sequence);
            }
        }

        return written - seen.Count;
    }

    public static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}
