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
    /// <paramref name="moveAt"/>; null when nothing arrived after the move.
    /// </summary>
    public static double? StallMs(IReadOnlyList<Arrival> arrivals, long moveAt)
    {
        ArgumentNullException.ThrowIfNull(arrivals);
        double? worst = null;
        for (var i = 1; i < arrivals.Count; i++)
        {
            if (arrivals[i].At < moveAt)
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
