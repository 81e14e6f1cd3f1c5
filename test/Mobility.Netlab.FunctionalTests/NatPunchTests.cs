using System.Globalization;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Scenarios;
using Xunit.Abstractions;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// Hole punching with the real gns, mobility-relay and mobilityd processes in the NAT kit: the server (registered at the
/// relay) and the client each behind its own NAT, no port forward, no UPnP; 64 MiB go from the client through its SOCKS5
/// endpoint to the server and arrive once (SHA-256). Behind <c>masquerade random-fully</c> the connection stays relayed.
/// Behind plain masquerade (<c>netlab nat-punch</c>, scenario <c>nat-direct-punch</c>) it does not yet become direct in
/// this netlab (docs/nat.md, "Direct paths"), so that scenario has no test here. The MEASURED lines are one run's.
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class NatPunchTests(ITestOutputHelper output)
{
    [NatKitFact]
    public async Task Hosts_behind_two_random_fully_nats_stay_relayed_and_intact()
    {
        var result = await RunIntactAsync(NatPunchScenario.RandomFully);

        Assert.Null(result.TimeUntilDirectMs);
        Assert.StartsWith("relay ", result.PathAtEnd);
        Assert.Equal(0, result.DirectUpgrades);
    }

    /// <summary>One run, reported; the stream arrived whole and the connection started on the relay.</summary>
    private async Task<NatPunchResult> RunIntactAsync(NatPunchScenario scenario)
    {
        var runner = new NatPunchRunner();
        var result = await runner.RunAsync(scenario, CancellationToken.None).WithTimeout(NetlabTimeouts.Step * 6);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"MEASURED {result.Scenario}: {result.Outcome}, connect {result.ConnectMs} ms, path {result.PathAtStart} -> {result.PathAtEnd}, until direct {result.TimeUntilDirectMs} ms, relay bytes while direct {result.RelayBytesWhileDirect}, upgrades {result.DirectUpgrades}; {result.Notes}"));
        Assert.True(result.Intact, $"{result.Outcome} ({result.Notes})");
        Assert.Equal(64L << 20, result.BytesSent);
        Assert.Equal(result.BytesSent, result.BytesReceived);
        Assert.True(result.HashEqual);
        Assert.StartsWith("relay ", result.PathAtStart);
        return result;
    }
}
