using System.Globalization;
using System.Text;
using System.Text.Json.Serialization;

namespace Mobility.Netlab.Scenarios;

/// <summary>One row of results.json (snake_case names).</summary>
public sealed record ScenarioResult
{
    public required string Scenario { get; init; }

    public required string System { get; init; }

    /// <summary>Requested round-trip time of the emulated link.</summary>
    public required int RttMs { get; init; }

    /// <summary>Which run of its cell (scenario × system × RTT) this is, from 1.</summary>
    public int Run { get; init; } = 1;

    /// <summary>
    /// When the system noticed the move, relative to when the detecting side's address change reached the kernel (see
    /// <see cref="CutMs"/>); null when it cannot tell or does not apply.
    /// </summary>
    public double? DetectMs { get; init; }

    /// <summary>When the detecting side's address change reached the kernel (iproute2 handed its commands), relative to the harness's start of the move.</summary>
    public double? CutMs { get; init; }

    /// <summary>How long the harness took to change the addresses and routes (process spawns; part of every stall).</summary>
    public double? MoveMs { get; init; }

    /// <summary>When the system's <c>OnMovedAsync</c> hook had finished, relative to the move's start (MPTCP: endpoints reconfigured).</summary>
    public double? ReactedMs { get; init; }

    /// <summary>Longest gap between two chunk arrivals at the receiver that ends after the move started; null when the connection did not survive.</summary>
    public double? StallMs { get; init; }

    /// <summary><see cref="StallMs"/> in units of the requested RTT.</summary>
    public double? StallRtt { get; init; }

    /// <summary>Bytes the sender wrote that never reached the receiver by the deadline.</summary>
    public long BytesLost { get; init; }

    public long BytesDuplicated { get; init; }

    public bool Survived { get; init; }

    /// <summary>How it ended: <c>survived</c>, <c>reset (RST)</c>, <c>hang ...</c>, <c>closed (FIN)</c>, <c>n/a: ...</c> (the system cannot run it), <c>error: ...</c> (the harness failed).</summary>
    public required string Outcome { get; init; }

    /// <summary>99th percentile of inter-arrival gaps before the move: the noise floor of stall_ms on this machine.</summary>
    public double? BaselineGapP99Ms { get; init; }

    public long ChunksSent { get; init; }

    public long ChunksReceived { get; init; }

    /// <summary>Connection-time mobility: how long the connect took (or until it failed).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? ConnectMs { get; init; }

    /// <summary>How many address changes the scenario made.</summary>
    public int Moves { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Notes { get; init; }

    /// <summary>The moves as the system itself timed them (mobility: each daemon's per-connection move timeline), or null.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<MoveBreakdown>? MoveTimeline { get; init; }

    /// <summary>Peer freshness: per server move, ms until a third daemon's get_ip answered the new address (null: not within the wait).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<double?>? PeerFreshnessMs { get; init; }

    /// <summary>Arrival times of the run, for plots; not written to results.json.</summary>
    [JsonIgnore]
    public RunTimeline? Timeline { get; init; }

    public static string FormatTable(IEnumerable<ScenarioResult> results)
    {
        var rows = results.ToList();
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{"scenario",-24} {"system",-8} {"rtt",4} {"detect_ms",9} {"connect",7} {"stall_ms",9} {"stall_rtt",9} {"lost_B",8} {"dup_B",6} {"survived",8}  outcome");
        foreach (var r in rows)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{r.Scenario,-24} {r.System,-8} {r.RttMs,4} {F(r.DetectMs),9} {F(r.ConnectMs),7} {F(r.StallMs),9} {F(r.StallRtt, "0.0"),9} {r.BytesLost,8} {r.BytesDuplicated,6} {(r.Survived ? "yes" : "no"),8}  {r.Outcome}");
        }

        return text.ToString();
    }

    private static string F(double? value, string format = "0") => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "-";
}

/// <summary>When the moves started and ended and when each chunk arrived (Stopwatch timestamps).</summary>
public sealed record RunTimeline(long MoveAt, long MovedAt, IReadOnlyList<Traffic.Arrival> Arrivals);
