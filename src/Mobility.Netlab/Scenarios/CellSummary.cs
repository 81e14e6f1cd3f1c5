using System.Globalization;
using System.Text;
using System.Text.Json.Serialization;

namespace Mobility.Netlab.Scenarios;

/// <summary>Median and spread of one metric over the runs of a cell (results.json <c>cells[]</c>).</summary>
/// <param name="Median">The middle value (the mean of the two middle ones for an even count).</param>
/// <param name="Q1">First quartile (linear interpolation between closest ranks).</param>
/// <param name="Q3">Third quartile.</param>
public sealed record Spread(double Median, double Min, double Max, double Q1, double Q3, int Count)
{
    /// <summary>The spread of <paramref name="values"/>, or null when there are none.</summary>
    public static Spread? Of(IEnumerable<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var sorted = values.Order().ToArray();
        return sorted.Length == 0
            ? null
            : new Spread(Round(Quantile(sorted, 0.5)), sorted[0], sorted[^1], Round(Quantile(sorted, 0.25)), Round(Quantile(sorted, 0.75)), sorted.Length);
    }

    /// <summary>The <paramref name="p"/>-quantile of ascending <paramref name="sorted"/> values, interpolating linearly between closest ranks.</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double p)
    {
        ArgumentNullException.ThrowIfNull(sorted);
        ArgumentOutOfRangeException.ThrowIfZero(sorted.Count);
        var h = (sorted.Count - 1) * Math.Clamp(p, 0, 1);
        var low = (int)Math.Floor(h);
        var high = (int)Math.Ceiling(h);
        return sorted[low] + ((h - low) * (sorted[high] - sorted[low]));
    }

    /// <summary><c>median (min-max)</c>, or just the value for a single run.</summary>
    public string Format(string format = "0") => Count == 1
        ? Median.ToString(format, CultureInfo.InvariantCulture)
        : string.Create(CultureInfo.InvariantCulture, $"{Median.ToString(format, CultureInfo.InvariantCulture)} ({Min.ToString(format, CultureInfo.InvariantCulture)}-{Max.ToString(format, CultureInfo.InvariantCulture)})");

    private static double Round(double value) => Math.Round(value, 1, MidpointRounding.AwayFromZero);
}

/// <summary>All runs of one scenario × system × RTT: how they ended and the median and spread of their metrics.</summary>
public sealed record CellSummary
{
    public required string Scenario { get; init; }

    public required string System { get; init; }

    public required int RttMs { get; init; }

    public required int Runs { get; init; }

    /// <summary>Runs that survived (every byte arrived once, in order).</summary>
    public required int Survived { get; init; }

    /// <summary>Each distinct outcome with its count, e.g. <c>4x survived, 1x hang: ...</c>.</summary>
    public required string Outcomes { get; init; }

    /// <summary>Stall at the receiver over the runs that survived.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Spread? StallMs { get; init; }

    /// <summary>The median stall in RTTs of the requested link.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? StallRtt { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Spread? DetectMs { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Spread? ConnectMs { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Spread? BaselineGapP99Ms { get; init; }

    /// <summary>Bytes lost, summed over the runs.</summary>
    public long BytesLost { get; init; }

    public long BytesDuplicated { get; init; }

    /// <summary>Peer freshness over every server move of every run (moves never answered are counted in <see cref="PeerFreshnessMissed"/>).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Spread? PeerFreshnessMs { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int PeerFreshnessMissed { get; init; }

    /// <summary>One summary per cell, in the order the cells first appear.</summary>
    public static IReadOnlyList<CellSummary> Of(IEnumerable<ScenarioResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        return [.. results.GroupBy(r => (r.Scenario, r.System, r.RttMs)).Select(Summarize)];
    }

    private static CellSummary Summarize(IGrouping<(string Scenario, string System, int RttMs), ScenarioResult> cell)
    {
        var runs = cell.ToList();
        var survived = runs.Where(r => r.Survived).ToList();
        var stall = Spread.Of(survived.Where(r => r.StallMs is not null).Select(r => r.StallMs!.Value));
        var freshness = runs.Where(r => r.PeerFreshnessMs is not null).SelectMany(r => r.PeerFreshnessMs!).ToList();
        return new CellSummary
        {
            Scenario = cell.Key.Scenario,
            System = cell.Key.System,
            RttMs = cell.Key.RttMs,
            Runs = runs.Count,
            Survived = survived.Count,
            Outcomes = string.Join(", ", runs.GroupBy(r => r.Outcome).Select(g => $"{g.Count()}x {g.Key}")),
            StallMs = stall,
            StallRtt = stall is null ? null : Math.Round(stall.Median / cell.Key.RttMs, 2),
            DetectMs = Spread.Of(runs.Where(r => r.DetectMs is not null).Select(r => r.DetectMs!.Value)),
            ConnectMs = Spread.Of(runs.Where(r => r.ConnectMs is not null).Select(r => r.ConnectMs!.Value)),
            BaselineGapP99Ms = Spread.Of(runs.Where(r => r.BaselineGapP99Ms is not null).Select(r => r.BaselineGapP99Ms!.Value)),
            BytesLost = runs.Sum(r => r.BytesLost),
            BytesDuplicated = runs.Sum(r => r.BytesDuplicated),
            PeerFreshnessMs = Spread.Of(freshness.Where(f => f is not null).Select(f => f!.Value)),
            PeerFreshnessMissed = freshness.Count(f => f is null),
        };
    }

    /// <summary>One line per cell: medians with (min-max) over the runs, the stall also in RTTs.</summary>
    public static string FormatTable(IEnumerable<CellSummary> cells)
    {
        ArgumentNullException.ThrowIfNull(cells);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{"scenario",-22} {"system",-8} {"rtt",4} {"runs",4} {"ok",3} {"detect_ms",-15} {"stall_ms",-19} {"stall_rtt",9} {"lost_B",7} {"dup_B",6} {"freshness_ms",-15}  outcomes");
        foreach (var c in cells)
        {
            var freshness = c.PeerFreshnessMs?.Format() ?? "-";
            if (c.PeerFreshnessMissed > 0)
            {
                freshness += $" +{c.PeerFreshnessMissed} never";
            }

            var detect = c.DetectMs?.Format() ?? (c.ConnectMs is { } connect ? "connect " + connect.Format() : "-");
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{c.Scenario,-22} {c.System,-8} {c.RttMs,4} {c.Runs,4} {c.Survived,3} {detect,-15} {c.StallMs?.Format() ?? "-",-19} {(c.StallRtt is { } rtt ? rtt.ToString("0.0", CultureInfo.InvariantCulture) : "-"),9} {c.BytesLost,7} {c.BytesDuplicated,6} {freshness,-15}  {c.Outcomes}");
        }

        return text.ToString();
    }
}

/// <summary>What <c>netlab evaluate</c> writes to results.json: every run, and the summary of each cell.</summary>
public sealed record EvaluationResults(IReadOnlyList<ScenarioResult> Runs, IReadOnlyList<CellSummary> Cells)
{
    public static EvaluationResults Of(IReadOnlyList<ScenarioResult> runs) => new(runs, CellSummary.Of(runs));
}
