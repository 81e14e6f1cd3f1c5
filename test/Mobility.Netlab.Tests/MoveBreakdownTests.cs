using System.Text.Json;
using Mobility.Netlab.Scenarios;

namespace Mobility.Netlab.Tests;

/// <summary>The per-move breakdown read from a daemon's status JSON, and its table.</summary>
public sealed class MoveBreakdownTests
{
    private const string Status = """
        {"guid":"ab","connections":[{"peer":"cd","client":true,"timeline":[
          {"startedAt":"2026-12-06T08:00:00.120Z","events":[
            {"kind":"AddressEvent","atMs":0,"detail":"no address given"},
            {"kind":"PathDead","atMs":0.4,"detail":"local address changed"},
            {"kind":"ConnectStarted","atMs":1.26,"detail":"10.231.9.2:7391"},
            {"kind":"ResumeAnswered","atMs":101}]},
          {"startedAt":"2026-12-06T08:00:05Z","events":[{"kind":"PathDead","atMs":0}]}]},
          {"peer":"ef","client":false}]}
        """;

    [Fact]
    public void Each_move_of_each_connection_is_read_with_its_start_relative_to_the_harness_move()
    {
        using var json = JsonDocument.Parse(Status);
        var moves = MoveBreakdown.FromStatus("client", json.RootElement, DateTimeOffset.Parse("2026-12-06T08:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

        Assert.Equal(2, moves.Count);
        Assert.Equal("client", moves[0].Side);
        Assert.Equal(120, moves[0].StartMs);
        Assert.Equal(5000, moves[1].StartMs);
        Assert.Equal(
            [new MoveStepResult("AddressEvent", 0, "no address given"), new MoveStepResult("PathDead", 0.4, "local address changed"),
             new MoveStepResult("ConnectStarted", 1.3, "10.231.9.2:7391"), new MoveStepResult("ResumeAnswered", 101, null)],
            moves[0].Events);
    }

    [Fact]
    public void A_status_without_connections_or_timelines_gives_no_moves()
    {
        using var json = JsonDocument.Parse("""{"guid":"ab","connections":[{"peer":"cd"}]}""");
        Assert.Empty(MoveBreakdown.FromStatus("server", json.RootElement, DateTimeOffset.UnixEpoch));
        using var none = JsonDocument.Parse("""{"guid":"ab"}""");
        Assert.Empty(MoveBreakdown.FromStatus("server", none.RootElement, DateTimeOffset.UnixEpoch));
    }

    [Fact]
    public void The_table_puts_both_sides_on_the_harness_time_axis()
    {
        var result = new ScenarioResult
        {
            Scenario = "client-move",
            System = "mobility",
            RttMs = 50,
            Outcome = "survived",
            StallMs = 180,
            MoveTimeline = [new MoveBreakdown("client", 20, [new MoveStepResult("AddressEvent", 0, null), new MoveStepResult("ResumeAnswered", 100, null)])],
        };

        var line = Assert.Single(MoveBreakdown.FormatTable([result]).Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("client-move", line, StringComparison.Ordinal);
        Assert.Contains("stall   180", line, StringComparison.Ordinal);
        Assert.EndsWith("client +20 AddressEvent, +120 ResumeAnswered", line.TrimEnd(), StringComparison.Ordinal);
    }
}
