using System.Net;
using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Tests;

/// <summary>The scenario catalogue (names, selection, link and network settings) and the per-cell statistics.</summary>
public sealed class ScenarioDefinitionTests
{
    [Fact]
    public void Scenario_names_are_unique_and_include_the_new_ones()
    {
        var names = Scenario.All.Select(s => s.Name).ToList();

        Assert.Equal(names.Count, names.Distinct().Count());
        Assert.Subset(names.ToHashSet(), new HashSet<string>
        {
            "client-move-loss1", "client-move-loss5", "client-new-interface", "upstream-failure", "upstream-failure-nostandby", "peer-freshness",
            "v6-client-move", "v6-server-move", "v6-both-move", "cross-family-move", "v6-privacy-rotation",
        });
    }

    [Fact]
    public void Select_keeps_the_catalogue_order_and_accepts_spaces()
    {
        var selected = Scenario.Select("v6-client-move, client-move-loss1");

        Assert.Equal(["client-move-loss1", "v6-client-move"], selected.Select(s => s.Name));
        Assert.Same(Scenario.All, Scenario.Select(null));
        Assert.Same(Scenario.All, Scenario.Select(" "));
    }

    [Fact]
    public void Select_refuses_an_unknown_name_and_lists_the_known_ones()
    {
        var error = Assert.Throws<ArgumentException>(() => Scenario.Select("client-move,client-mvoe"));

        Assert.Contains("'client-mvoe'", error.Message, StringComparison.Ordinal);
        Assert.Contains("cross-family-move", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("client-move-loss1", 0.01)]
    [InlineData("client-move-loss5", 0.05)]
    public void Loss_scenarios_are_a_client_move_with_loss_and_5_ms_jitter(string name, double loss)
    {
        var scenario = Scenario.Select(name).Single();

        Assert.Equal(loss, scenario.Loss);
        Assert.Equal(TimeSpan.FromMilliseconds(5), scenario.Jitter);
        Assert.Same(Scenario.ClientMove.Move, scenario.Move);
        Assert.Equal(0, Scenario.ClientMove.Loss);
        Assert.Equal(LabNetwork.Ipv4, scenario.Network);
    }

    [Theory]
    [InlineData("v6-client-move", LabNetwork.Ipv6, false)]
    [InlineData("v6-server-move", LabNetwork.Ipv6, true)]
    [InlineData("v6-both-move", LabNetwork.Ipv6, true)]
    [InlineData("v6-privacy-rotation", LabNetwork.Ipv6, true)]
    [InlineData("cross-family-move", LabNetwork.CrossFamily, false)]
    [InlineData("client-move", LabNetwork.Ipv4, false)]
    public void Ipv6_scenarios_name_their_network(string name, LabNetwork network, bool serverMoves)
    {
        var scenario = Scenario.Select(name).Single();

        Assert.Equal(network, scenario.Network);
        Assert.Equal(serverMoves, scenario.ServerMoves);
    }

    [Fact]
    public void Only_peer_freshness_asks_a_third_daemon_and_the_upstream_failure_keeps_a_standby_interface()
    {
        Assert.Equal(["peer-freshness"], Scenario.All.Where(s => s.MeasuresPeerFreshness).Select(s => s.Name));
        Assert.True(Scenario.UpstreamFailure.MultihomedClient);
        Assert.False(Scenario.ClientNewInterface.MultihomedClient);
        Assert.Equal(Scenario.NewInterfaceOverlap, Scenario.ClientNewInterface.MovingTime);
    }

    [Fact]
    public void Only_the_no_standby_upstream_failure_starts_the_client_daemon_with_extra_arguments()
    {
        Assert.Equal(["upstream-failure-nostandby"], Scenario.All.Where(s => s.ClientDaemonArguments.Count > 0).Select(s => s.Name));
        var scenario = Scenario.UpstreamFailureNoStandby;
        Assert.Equal(["--Forwarding:Transport:MaxStandbyPaths", "0"], scenario.ClientDaemonArguments);
        Assert.True(scenario.MultihomedClient);
        Assert.Same(Scenario.UpstreamFailure.Move, scenario.Move);
    }

    [Fact]
    public void Ipv6_twins_mirror_the_IPv4_plan()
    {
        Assert.Equal(IPAddress.Parse("fd00:231:9::2"), EvaluationTopology.V6(9, 2));
        Assert.Equal(IPAddress.Parse("fd00:231:1::"), EvaluationTopology.V6(1, 0));
        Assert.Equal(IPAddress.Parse("fd00:231:254::1"), EvaluationTopology.V6(254, 1));
    }

    [Fact]
    public void Spread_of_an_odd_count_is_its_middle_value_and_extremes()
    {
        var spread = Spread.Of([50, 10, 30, 20, 40])!;

        Assert.Equal(30, spread.Median);
        Assert.Equal(10, spread.Min);
        Assert.Equal(50, spread.Max);
        Assert.Equal(20, spread.Q1);
        Assert.Equal(40, spread.Q3);
        Assert.Equal(5, spread.Count);
        Assert.Equal("30 (10-50)", spread.Format());
    }

    [Fact]
    public void Spread_of_an_even_count_interpolates()
    {
        var spread = Spread.Of([4, 1, 3, 2])!;

        Assert.Equal(2.5, spread.Median);
        Assert.Equal(1.8, spread.Q1); // 1.75, rounded to 0.1 ms
        Assert.Equal(3.3, spread.Q3); // 3.25
        Assert.Null(Spread.Of([]));
        Assert.Equal("7", Spread.Of([7])!.Format());
    }

    [Fact]
    public void A_cell_takes_the_stall_median_over_the_runs_that_survived_and_counts_every_outcome()
    {
        ScenarioResult Run(int run, double? stall, string outcome = "survived", long lost = 0) => new()
        {
            Scenario = "client-move-loss5",
            System = "mobility",
            RttMs = 50,
            Run = run,
            StallMs = stall,
            Survived = outcome == "survived",
            Outcome = outcome,
            BytesLost = lost,
            DetectMs = 10 * run,
        };

        var cells = CellSummary.Of(
        [
            Run(1, 200), Run(2, 100), Run(3, null, "hang: not all data after 10 s, connection still open", 2048), Run(4, 300), Run(5, 150),
            Run(1, 90) with { System = "mptcp", DetectMs = null },
        ]);

        var cell = cells[0];
        Assert.Equal(2, cells.Count);
        Assert.Equal(5, cell.Runs);
        Assert.Equal(4, cell.Survived);
        Assert.Equal(175, cell.StallMs!.Median);
        Assert.Equal(100, cell.StallMs.Min);
        Assert.Equal(300, cell.StallMs.Max);
        Assert.Equal(3.5, cell.StallRtt);
        Assert.Equal(30, cell.DetectMs!.Median);
        Assert.Equal(2048, cell.BytesLost);
        Assert.Equal("4x survived, 1x hang: not all data after 10 s, connection still open", cell.Outcomes);
        Assert.Null(cells[1].DetectMs);
        Assert.Contains("175 (100-300)", CellSummary.FormatTable(cells), StringComparison.Ordinal);
    }

    [Fact]
    public void A_cell_pools_peer_freshness_over_moves_and_counts_the_ones_never_answered()
    {
        ScenarioResult Run(int run, double?[] freshness) => new()
        {
            Scenario = "peer-freshness", System = "mobility", RttMs = 10, Run = run, Survived = true, Outcome = "survived", StallMs = 50, PeerFreshnessMs = freshness,
        };

        var cell = Assert.Single(CellSummary.Of([Run(1, [20, 40, null]), Run(2, [30, 10])]));

        Assert.Equal(25, cell.PeerFreshnessMs!.Median);
        Assert.Equal(4, cell.PeerFreshnessMs.Count);
        Assert.Equal(1, cell.PeerFreshnessMissed);
        Assert.Contains("25 (10-40) +1 never", CellSummary.FormatTable([cell]), StringComparison.Ordinal);
    }
}
