using System.Net;
using System.Net.Sockets;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Systems.Mobility;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Topology;

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

    /// <summary>How long the GNS may take to show the client's IPv6 record: generous, for a loaded two-core machine.</summary>
    private static readonly TimeSpan Publish = TimeSpan.FromSeconds(30);

    [NetlabFact]
    public async Task Mobility_connection_survives_a_client_move_without_losing_bytes()
    {
        var result = await new ScenarioRunner(timing: Short).RunAsync(new MobilitySystem(), Scenario.ClientMove, 10, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);

        Assert.True(result.Survived, $"{result.Outcome} ({result.Notes})");
        Assert.Equal(0, result.BytesLost);
        Assert.Equal(0, result.BytesDuplicated);
        Assert.NotNull(result.DetectMs);
        Assert.NotNull(result.StallMs);

        // The hosts take first flights (net.ipv4.tcp_fastopen = 3, as docs/transport.md asks): the Resume rode in the SYN.
        Assert.Contains(result.MoveTimeline ?? [], m => m.Side == "client"
            && m.Events.Any(e => e.Kind == "ResumeAnswered" && e.Detail?.Contains("rode in the SYN", StringComparison.Ordinal) == true));
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

    /// <summary>
    /// A daemon whose GNS is dual-stack (issue 15): the client goes IPv6-only and stays so; only the GNS's IPv6 address can
    /// reach it from then on.
    /// </summary>
    [NetlabFact]
    public async Task An_IPv6_only_client_publishes_gets_pushes_and_resumes_over_its_gns_IPv6_address()
    {
        var published = false;
        var scenario = Scenario.CrossFamilyMove with
        {
            Name = "cross-family-v6-gns",
            Description = "the client goes IPv6-only for good; then the server's IPv6 address rotates and the old one is deleted",
            ServerMoves = true,
            MovingTime = Scenario.DeprecatedLifetime,
            Move = async c =>
            {
                var toIpv6 = await c.SwitchAsync(c.Client);

                // (a) The client's record with its new IPv6 address reaches the GNS: over IPv6, the only family it has now.
                var clientV6 = c.Client.Interface("e2").Address;
                published = await ReverseFindsAsync(c.Topology.Gns, clientV6, c.CancellationToken);

                // (b, c) The server's IPv6 address in use is replaced while the client is IPv6-only: the client can learn the new one
                // only from the GNS over IPv6 (a push, or its catch-up lookup), and must resume to it without IPv4 coming back.
                var old = c.Server.Interfaces.First(i => i.Name == "e1" && i.Address.AddressFamily == AddressFamily.InterNetworkV6);
                var (_, rotated) = await c.Server.RotateAsync(old, Scenario.TemporaryServerAddress);
                await c.OnMoved(rotated);
                await Task.Delay(Scenario.DeprecatedLifetime, c.CancellationToken);
                var retired = await c.Server.RetireAsync(old);
                await c.OnMoved(retired);
                return [toIpv6, rotated, retired];
            },
        };

        var result = await new ScenarioRunner(timing: Short).RunAsync(new MobilitySystem(), scenario, 10, CancellationToken.None).WithTimeout(NetlabTimeouts.Step * 2);

        Assert.True(published, "the client's IPv6 record never reached the GNS while the client was IPv6-only");
        Assert.True(result.Survived, $"{result.Outcome} ({result.Notes})");
        Assert.Equal(0, result.BytesLost);
        Assert.Equal(0, result.BytesDuplicated);
        Assert.Equal(result.ChunksSent, result.ChunksReceived);
    }

    /// <summary>Asks the GNS, from its own namespace, which GUIDs claim <paramref name="address"/> until one does (true) or <see cref="Publish"/> ran out.</summary>
    private static async Task<bool> ReverseFindsAsync(LabHost gns, IPAddress address, CancellationToken cancellationToken)
    {
        var (mob, prefix) = MobilityExecutables.Mob();
        var server = new IPEndPoint(gns.Interfaces.First(i => i.Address.AddressFamily == AddressFamily.InterNetworkV6).Address, Systems.Mobility.GnsProcess.UdpPort);
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (waited.Elapsed < Publish)
        {
            var run = await CommandRunner.RunAsync("ip", ["netns", "exec", gns.Namespace, mob, .. prefix, "gns", "reverse", "--gns", server.ToString(), address.ToString()],
                cancellationToken: cancellationToken, standardInput: "");
            if (run.Succeeded)
            {
                return true;
            }

            await Task.Delay(100, cancellationToken);
        }

        return false;
    }
}
