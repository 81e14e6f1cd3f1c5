using System.Globalization;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Scenarios;
using Xunit.Abstractions;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// Hosts behind NATs without port forwards, through a relay, with the real gns, mobility-relay and mobilityd processes
/// in the NAT kit: the server (registered at the relay with <c>--relay</c>) and the client sit behind two NATs, 64 MiB go
/// from the client through its SOCKS5 endpoint to the server, the server moves to another NAT and then the client does;
/// every byte arrives once (SHA-256). Asserts what happens, not how fast (<c>netlab nat-relay</c> measures that; the
/// MEASURED lines are one run's).
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class NatRelayTests(ITestOutputHelper output)
{
    private async Task<NatRelayResult> RunAsync(NatRelayScenario scenario)
    {
        var result = await new NatRelayRunner().RunAsync(scenario, CancellationToken.None).WithTimeout(NetlabTimeouts.Step * 6);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"MEASURED {result.Scenario}: {result.Outcome}, connect {result.ConnectMs} ms, server move stall {result.ServerMoveStallMs} ms, client move stall {result.ClientMoveStallMs} ms, gap p99 {result.BaselineGapP99Ms} ms, registrations {result.ServerRegistrations}, relays {result.RelayLocators}, path {result.PathKind}, first byte {result.TimeToFirstByteMs} ms, moves {string.Join("; ", result.Moves.Select(m => $"{m.Move} {m.StallMs} ms then {m.PathAfter}"))}"));
        return result;
    }

    /// <summary>Every byte arrived once, in order (SHA-256), every move of the scenario happened and the connection closed cleanly.</summary>
    private static void AssertIntact(NatRelayResult result, int moves)
    {
        Assert.True(result.Intact, $"{result.Outcome} ({result.Notes})");
        Assert.Equal("survived", result.Outcome);
        Assert.Equal(64L << 20, result.BytesSent);
        Assert.Equal(0, result.BytesLost);
        Assert.True(result.HashEqual);
        Assert.NotNull(result.TimeToFirstByteMs);
        Assert.Equal(moves, result.Moves.Count);
        Assert.All(result.Moves, m => Assert.NotNull(m.StallMs));
    }

    private static void AssertSurvived(NatRelayResult result)
    {
        Assert.True(result.Intact, $"{result.Outcome} ({result.Notes})");
        Assert.Equal("survived", result.Outcome);
        Assert.Equal(64L << 20, result.BytesSent);
        Assert.Equal(result.BytesSent, result.BytesReceived);
        Assert.True(result.HashEqual);
        Assert.NotNull(result.ServerMoveStallMs);
        Assert.NotNull(result.ClientMoveStallMs);
        // The server registered again from its new NAT after the move (not only after its old registration timed out).
        Assert.True(result.ServerReregisteredOnMove, result.Notes);
        Assert.True(result.ServerRegistrations >= 2, $"registrations: {result.ServerRegistrations} ({result.Notes})");
        Assert.EndsWith("/relay", result.RelayLocators, StringComparison.Ordinal);
    }

    [NatKitFact]
    public async Task Server_behind_masquerade_without_a_forward_is_reached_through_its_relay_and_both_hosts_move_across_nats()
        => AssertSurvived(await RunAsync(NatRelayScenario.Masquerade));

    [NatKitFact]
    public async Task Server_behind_random_fully_nats_is_reached_through_its_relay_and_both_hosts_move_across_nats()
        => AssertSurvived(await RunAsync(NatRelayScenario.RandomFully));

    /// <summary>
    /// The server's networks let only TCP 443 out (UDP to the GNS is dropped too): it registers over TLS at the relay's port
    /// 443 with the certificate (made by openssl) pinned, sends its GNS updates over TLS to the GNS's port 443 (pinned too),
    /// is reached and moves like the others.
    /// </summary>
    [NatKitFact]
    public async Task Server_behind_an_https_only_firewall_registers_over_pinned_tls_and_both_hosts_move_across_nats()
    {
        var result = await RunAsync(NatRelayScenario.HttpsOnly);
        AssertSurvived(result);
        Assert.EndsWith(":443/relay", result.RelayLocators, StringComparison.Ordinal);
        Assert.True(result.ServerRegisteredOverTls, result.Notes);
        Assert.True(result.ServerGnsOverTls, result.Notes);
    }

    /// <summary>
    /// Every network is a double NAT (carrier-grade NAT in front of a home router): the server behind one is reached through
    /// its relay, moves to another double NAT, then the client does.
    /// </summary>
    [NatKitFact]
    public async Task Hosts_behind_double_nats_are_reached_through_the_relay_and_both_move_to_other_double_nats()
    {
        var result = await RunAsync(NatRelayScenario.Double);
        AssertSurvived(result);
        Assert.Equal("relayed", result.PathKind);
    }

    /// <summary>Both hosts, each behind its NAT, move to another NAT in the same moment: the relayed connection still carries every byte once.</summary>
    [NatKitFact]
    public async Task Both_hosts_behind_nats_moving_at_the_same_time_keep_the_relayed_connection()
    {
        var result = await RunAsync(NatRelayScenario.Simultaneous);
        AssertIntact(result, moves: 1);
        Assert.Equal("relayed", result.PathKind);
        Assert.True(result.ServerReregisteredOnMove, result.Notes);
    }

    /// <summary>
    /// The server moves from behind its NAT to a public address and back, then the client does the same: four moves, one
    /// connection, every byte once.
    /// </summary>
    [NatKitFact]
    public async Task Hosts_moving_from_behind_a_nat_to_a_public_address_and_back_keep_the_connection()
        => AssertIntact(await RunAsync(NatRelayScenario.PublicAndBack), moves: 4);

    /// <summary>
    /// Both hosts behind one NAT that does not hairpin: the NAT's outside address does not lead back in, so the client
    /// must reach the server by its private address or through the relay; then the server leaves for another NAT.
    /// </summary>
    [NatKitFact]
    public async Task Hosts_behind_the_same_nat_without_hairpinning_reach_each_other_and_the_server_moves_away()
    {
        var result = await RunAsync(NatRelayScenario.SameNatNoHairpin);
        AssertIntact(result, moves: 1);
        Assert.Contains(result.PathKind, new[] { "relayed", "direct-private" });
    }

    /// <summary>
    /// A public client and a server behind a NAT without a forward (masquerade, or random-fully, where no punch can meet):
    /// the connection starts through the server's relay and goes direct when the server dials the client's published
    /// listener (connection reversal); every byte once.
    /// </summary>
    [NatKitTheory]
    [InlineData("nat-relay-public-client")]
    [InlineData("nat-relay-public-client-random-fully")]
    public async Task A_public_client_of_a_server_behind_a_nat_without_a_forward_goes_direct_by_connection_reversal(string name)
    {
        var result = await RunAsync(NatRelayScenario.All.Single(s => s.Name == name));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"MEASURED until direct {result.TimeUntilDirectMs} ms (logged {result.DirectLoggedMs} ms), path at end {result.PathAtEnd}"));
        AssertIntact(result, moves: 0);
        Assert.NotNull(result.TimeUntilDirectMs);
        Assert.Equal("direct", result.PathAtEnd);
    }
}
