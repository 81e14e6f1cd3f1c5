using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Systems.Mobility;
using Mobility.Netlab.FunctionalTests.Infrastructure;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// The fast subset of the evaluation for CI: real gns and mobilityd processes in the namespaces, the application's
/// bytes through the client daemon's SOCKS5 endpoint, a short paced transfer across a move at 10 ms RTT. Asserts
/// correctness only (survived, nothing lost or duplicated, the daemon noticed the move); speed is measured by
/// scripts/evaluate, not asserted here.
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class MobilityScenarioTests
{
    private static readonly ScenarioTiming Short = new()
    {
        BeforeMove = TimeSpan.FromSeconds(1),
        AfterMove = TimeSpan.FromSeconds(1),
        Deadline = TimeSpan.FromSeconds(10),
    };

    [NetlabFact]
    public async Task Mobility_connection_survives_a_client_move_without_losing_bytes()
    {
        var result = await new ScenarioRunner(timing: Short).RunAsync(new MobilitySystem(), Scenario.ClientMove, 10, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);

        Assert.True(result.Survived, $"{result.Outcome} ({result.Notes})");
        Assert.Equal(0, result.BytesLost);
        Assert.Equal(0, result.BytesDuplicated);
        Assert.NotNull(result.DetectMs);
        Assert.NotNull(result.StallMs);
    }

    [NetlabFact]
    public async Task Mobility_connection_survives_both_ends_moving_at_once_without_losing_bytes()
    {
        var result = await new ScenarioRunner(timing: Short).RunAsync(new MobilitySystem(), Scenario.BothMove, 10, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);

        Assert.True(result.Survived, $"{result.Outcome} ({result.Notes})");
        Assert.Equal(0, result.BytesLost);
        Assert.Equal(0, result.BytesDuplicated);
        Assert.NotNull(result.DetectMs);
    }

    [NetlabFact]
    public async Task Mobility_connection_survives_IPv4_to_IPv6_only_and_back_without_losing_bytes()
    {
        // cross-family-move: dual-stack server and gns, the client IPv4-only, then IPv6-only for 2 s, then IPv4-only again.
        var result = await new ScenarioRunner(timing: Short).RunAsync(new MobilitySystem(), Scenario.CrossFamilyMove, 10, CancellationToken.None).WithTimeout(NetlabTimeouts.Step * 2);

        Assert.True(result.Survived, $"{result.Outcome} ({result.Notes})");
        Assert.Equal(2, result.Moves);
        Assert.Equal(0, result.BytesLost);
        Assert.Equal(0, result.BytesDuplicated);
        Assert.Equal(result.ChunksSent, result.ChunksReceived);
        Assert.NotNull(result.DetectMs);
    }
}
