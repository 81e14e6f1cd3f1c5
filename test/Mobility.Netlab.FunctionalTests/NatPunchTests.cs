using System.Globalization;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Scenarios;
using Xunit.Abstractions;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// Hole punching with the real gns, mobility-relay and mobilityd processes in the NAT kit: the server (registered at the
/// relay) and the client each behind its own NAT, no port forward, no UPnP; 64 MiB go from the client through its SOCKS5
/// endpoint to the server and arrive once (SHA-256). Behind <c>masquerade random-fully</c> the connection stays relayed.
/// Behind masquerade NATs that drop unsolicited packets (<c>nat-direct-punch-drop</c>) the punch makes a direct path.
/// Behind plain masquerade, whose routers answer an early SYN with a RST, it becomes direct when the NATs are 20 ms
/// apart (<c>nat-direct-punch-delay</c>, an emulated link between them, as on the Internet); with the NATs 15 µs apart
/// on veth (<c>nat-direct-punch</c>) the SYNs cannot cross in time (docs/nat.md, "Hole punching", has the captures), so
/// that scenario has no test here. The MEASURED lines are one run's.
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class NatPunchTests(ITestOutputHelper output)
{
    [NatKitFact]
    public async Task Hosts_behind_two_nats_that_drop_unsolicited_syns_punch_a_direct_path_and_the_relay_stops_carrying_the_stream()
    {
        // 128 MiB (about 20 s at the runner's pace): a loaded machine has 15 s for the switch before the runner stops waiting for it.
        var result = await RunIntactAsync(NatPunchScenario.MasqueradeDropping, 128L << 20);

        // The client's status (what mob status --json prints) said direct while bytes still flowed, and says so at the end.
        Assert.NotNull(result.TimeUntilDirectMs);
        Assert.Equal("direct", result.PathAtEnd);
        Assert.True(result.DirectUpgrades >= 1, $"{result.DirectUpgrades} direct upgrades");
        // 8 MiB crossed after the switch while the relay's byte counter moved by no more than the standby's keepalives.
        Assert.NotNull(result.RelayBytesWhileDirect);
        Assert.True(result.RelayBytesWhileDirect < 64 << 10, $"the relay carried {result.RelayBytesWhileDirect} B while 8 MiB crossed directly");
    }

    [NatKitFact]
    public async Task Hosts_behind_two_masquerade_nats_20_ms_apart_punch_a_direct_path_although_each_nat_refuses_an_early_syn()
    {
        // Plain masquerade answers a SYN that comes before its own host's with a RST (and forgets the mapping); with 20 ms
        // between the NATs, as on the Internet, the randomised tries of both ends cross within that window.
        var result = await RunIntactAsync(NatPunchScenario.MasqueradeDelayed, 128L << 20);

        Assert.NotNull(result.TimeUntilDirectMs);
        Assert.Equal("direct", result.PathAtEnd);
        Assert.True(result.DirectUpgrades >= 1, $"{result.DirectUpgrades} direct upgrades");
        Assert.NotNull(result.RelayBytesWhileDirect);
        Assert.True(result.RelayBytesWhileDirect < 64 << 10, $"the relay carried {result.RelayBytesWhileDirect} B while 8 MiB crossed directly");
    }

    [NatKitFact]
    public async Task Hosts_behind_two_random_fully_nats_stay_relayed_and_intact()
    {
        var result = await RunIntactAsync(NatPunchScenario.RandomFully);

        Assert.Null(result.TimeUntilDirectMs);
        Assert.StartsWith("relay ", result.PathAtEnd);
        Assert.Equal(0, result.DirectUpgrades);
    }

    /// <summary>One run, reported; the stream arrived whole and the connection started on the relay.</summary>
    private async Task<NatPunchResult> RunIntactAsync(NatPunchScenario scenario, long totalBytes = 64L << 20)
    {
        var runner = new NatPunchRunner { TotalBytes = totalBytes };
        var result = await runner.RunAsync(scenario, CancellationToken.None).WithTimeout(NetlabTimeouts.Step * 6);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"MEASURED {result.Scenario}: {result.Outcome}, connect {result.ConnectMs} ms, path {result.PathAtStart} -> {result.PathAtEnd}, until direct {result.TimeUntilDirectMs} ms, relay bytes while direct {result.RelayBytesWhileDirect}, upgrades {result.DirectUpgrades}; {result.Notes}"));
        Assert.True(result.Intact, $"{result.Outcome} ({result.Notes})");
        Assert.Equal(totalBytes, result.BytesSent);
        Assert.Equal(result.BytesSent, result.BytesReceived);
        Assert.True(result.HashEqual);
        Assert.StartsWith("relay ", result.PathAtStart);
        return result;
    }
}
