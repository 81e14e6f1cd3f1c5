using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Mobility.Netlab.Scenarios;

/// <summary>One event of a move as a daemon's transport recorded it (results.json <c>move_timeline[].events</c>).</summary>
public sealed record MoveStepResult(string Kind, double AtMs, string? Detail);

/// <summary>
/// One move of one mobile connection as a daemon saw it (its <c>GET /v1/status</c> timeline): which side, when it began
/// relative to the harness's move start (both clocks are the machine's wall clock), and its events.
/// </summary>
public sealed record MoveBreakdown(string Side, double StartMs, IReadOnlyList<MoveStepResult> Events)
{
    /// <summary>
    /// The moves of the connections in a daemon's status reply (<c>connections[].timeline[]</c>), with their start
    /// relative to <paramref name="moveStartedAt"/>. Moves that began before it (none in these scenarios) are kept too.
    /// </summary>
    public static IReadOnlyList<MoveBreakdown> FromStatus(string side, JsonElement status, DateTimeOffset moveStartedAt)
    {
        var moves = new List<MoveBreakdown>();
        if (!status.TryGetProperty("connections", out var connections) || connections.ValueKind != JsonValueKind.Array)
        {
            return moves;
        }

        foreach (var connection in connections.EnumerateArray())
        {
            if (!connection.TryGetProperty("timeline", out var timeline) || timeline.ValueKind != JsonValueKind.Array)
            {
                continue;
            }

            foreach (var move in timeline.EnumerateArray())
            {
                var started = move.TryGetProperty("startedAt", out var s) && s.ValueKind == JsonValueKind.String
                    ? DateTimeOffset.Parse(s.GetString()!, CultureInfo.InvariantCulture)
                    : moveStartedAt;
                var events = new List<MoveStepResult>();
                if (move.TryGetProperty("events", out var list) && list.ValueKind == JsonValueKind.Array)
                {
                    foreach (var e in list.EnumerateArray())
                    {
                        events.Add(new MoveStepResult(
                            e.TryGetProperty("kind", out var k) ? k.GetString() ?? "" : "",
                            e.TryGetProperty("atMs", out var at) && at.ValueKind == JsonValueKind.Number ? Math.Round(at.GetDouble(), 1) : 0,
                            e.TryGetProperty("detail", out var d) && d.GetString() is { Length: > 0 } detail ? detail : null));
                    }
                }

                moves.Add(new MoveBreakdown(side, Math.Round((started - moveStartedAt).TotalMilliseconds, 1), events));
            }
        }

        return moves;
    }

    /// <summary>
    /// The per-move table: one line per move and side, each event as <c>+ms Kind</c> from the harness's move start (so
    /// the client's and the server's lines share one time axis and can be read against <c>stall_ms</c>).
    /// </summary>
    public static string FormatTable(IEnumerable<ScenarioResult> results)
    {
        var text = new StringBuilder();
        foreach (var r in results.Where(r => r.MoveTimeline is { Count: > 0 }))
        {
            foreach (var move in r.MoveTimeline!)
            {
                var steps = string.Join(", ", move.Events.Select(e => string.Create(CultureInfo.InvariantCulture, $"+{move.StartMs + e.AtMs:0} {e.Kind}")));
                text.AppendLine(CultureInfo.InvariantCulture, $"{r.Scenario,-24} {r.RttMs,4} #{r.Run,-2} stall {(r.StallMs is { } s ? s.ToString("0", CultureInfo.InvariantCulture) : "-"),5} {move.Side,-6} {steps}");
            }
        }

        return text.ToString();
    }
}
