using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Scenarios;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// Today's behaviour behind NATs (the "before" rows of docs/nat.md), with the real gns and mobilityd processes in the
/// NAT kit: asserts what works and what fails, not how fast (`netlab nat` measures that).
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class NatScenarioTests
{
    /// <summary>One run with 1 s of transfer on each side of the NAT event (the tool's default is 2 s + 3 s).</summary>
    private static Task<NatScenarioResult> RunAsync(NatScenario scenario) =>
        new NatScenarioRunner { Before = TimeSpan.FromSeconds(1), After = TimeSpan.FromSeconds(1) }.RunAsync(scenario, CancellationToken.None).WithTimeout(NetlabTimeouts.Step * 2);

    [NatKitFact]
    public async Task Client_behind_a_nat_connects_to_a_public_server_and_its_nat_address_is_published()
    {
        var result = await RunAsync(NatScenario.ClientNat);

        Assert.True(result.Intact, $"{result.Outcome} ({result.Notes})");
        Assert.Equal(0, result.BytesLost);
        // The GNS saw the client's NAT: its record carries the NAT's outside address as an Observed locator.
        Assert.Contains("198.18.101.2", result.ClientAddresses!.Split(' '));
        Assert.Contains("192.168.1.2", result.ClientAddresses!.Split(' '));
    }

    [NatKitFact]
    public async Task Connection_survives_nat_rebinding_to_a_new_port_without_losing_bytes()
    {
        var result = await RunAsync(NatScenario.ClientNatNewPorts);

        Assert.True(result.Intact, $"{result.Outcome} ({result.Notes})");
        Assert.Equal("survived", result.Outcome);
        Assert.Equal(0, result.BytesLost);
        Assert.Equal(0, result.BytesDuplicated);
        Assert.NotNull(result.StallMs);
    }

    [NatKitFact]
    public async Task Server_behind_a_nat_with_a_port_forward_is_reached_from_behind_another_nat()
    {
        var result = await RunAsync(NatScenario.BothNatForward);

        Assert.True(result.Intact, $"{result.Outcome} ({result.Notes})");
        Assert.Equal(0, result.BytesLost);
    }

    [NatKitFact]
    public async Task Server_behind_a_nat_without_a_port_forward_cannot_be_reached()
    {
        var result = await RunAsync(NatScenario.ServerNat);

        Assert.False(result.Connected);
        Assert.StartsWith("connect failed", result.Outcome, StringComparison.Ordinal);
        Assert.Contains("no mobile peer", result.MobConnectError, StringComparison.Ordinal);
        Assert.Contains("cannot be reached", result.MobConnectError, StringComparison.Ordinal);
    }
}
