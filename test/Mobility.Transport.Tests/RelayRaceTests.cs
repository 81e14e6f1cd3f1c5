using Mobility.Transport.Relay;

namespace Mobility.Transport.Tests;

/// <summary>
/// A resume whose peer lists direct locators before its relay locator (the record's order), in virtual
/// time on the simulated network (<see cref="SimulatedMoveTests"/>' pair: one-way 100 ms, RTT 200 ms, so
/// the race delay is 2 RTT). The server moved behind another NAT: its new private address and its
/// observed address drop every SYN (nothing answers), its relay (an endpoint the server's listener also
/// serves, named by a <see cref="RelayEndPoint"/>) works. The relay's connect must start one race delay
/// after the attempt's first, not after every direct candidate; a direct candidate that answers first
/// must win. Bounds on virtual time (the clock moves only while the process is idle), not the wall clock.
/// </summary>
[Collection("Timing")]
public sealed class RelayRaceTests(ITestOutputHelper output)
{
    private static readonly IPAddress ServerA = SimulatedMoveTests.ServerA;
    private static readonly IPAddress ServerB = SimulatedMoveTests.ServerB;
    private static readonly IPAddress Observed = IPAddress.Parse("192.0.2.99");
    private static readonly IPAddress RelayAddress = IPAddress.Parse("198.18.2.2");

    /// <summary>What the virtual clock's step and the loops' own hops may add to a bound, in RTT.</summary>
    private const double Slack = 0.25;

    /// <summary>The pair, with the server's listener also serving flows at the relay's address (its "registration").</summary>
    private static async Task<(SimulatedMoveTests.Pair Pair, RelayEndPoint Relay, IFlowListener Flows, Task Serving)> CreateAsync(
        FirstFlightMode firstFlights, Action<MobileConnectionOptions>? configure = null)
    {
        var pair = await SimulatedMoveTests.CreateAsync(configure: configure);
        pair.Network.FirstFlights = firstFlights;
        pair.Network.AddAddress(RelayAddress);
        var relay = new RelayEndPoint(RelayAddress, 7395, Keys.Server.Guid);
        var flows = pair.Network.Listen(new IPEndPoint(RelayAddress, 7395));
        var serving = pair.Listener.ServeAsync(flows);
        return (pair, relay, flows, serving);
    }

    private static double Rtts(SimulatedMoveTests.Pair pair, TimeSpan span) => span / pair.Network.Rtt;

    private static double Rtts(SimulatedMoveTests.Pair pair, long from, long to) => pair.Time.GetElapsedTime(from, to) / pair.Network.Rtt;

    private static IReadOnlyList<MoveEvent> Connects(MobileConnection client)
        => [.. client.Moves[^1].Events.Where(e => e.Kind == MoveEventKind.ConnectStarted)];

    private static bool ThroughRelay(MoveEvent e) => e.Detail!.Contains("relay for", StringComparison.Ordinal);

    private string Timeline(SimulatedMoveTests.Pair pair, MobileConnection client)
    {
        var line = string.Join(", ", client.Moves[^1].Events.Select(e => $"{e.Kind} +{Rtts(pair, e.At):0.00} {e.Detail}"));
        output.WriteLine("client: " + line);
        return line;
    }

    /// <summary>Every byte written was delivered once.</summary>
    [Theory]
    [InlineData(true)]  // The direct connect "finishes" at once (a first flight): only the ResumeAck answers.
    [InlineData(false)] // The direct connects hang (dropped SYNs).
    public async Task The_relay_joins_the_resume_one_race_delay_after_unanswered_direct_locators_and_the_resume_completes_through_it(bool fastOpen)
    {
        var (pair, relay, flows, serving) = await CreateAsync(fastOpen ? FirstFlightMode.Taken : FirstFlightMode.Off);
        await using (pair)
        {
            var (client, server) = pair.Connections[0];
            pair.Network.AddAddress(Observed);
            pair.Network.DropTraffic(Observed);
            var endpoint = await pair.MoveServerAsync(ServerA, ServerB);
            pair.Network.DropTraffic(ServerB); // Behind another NAT: its private address answers nothing from here.

            var t0 = pair.Time.GetTimestamp();
            pair.Locator.Push(Keys.Server.Guid, endpoint, new IPEndPoint(Observed, 443), relay);
            var (clientGot, serverGot) = await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);

            var timeline = Timeline(pair, client);
            var connects = Connects(client);
            var relayConnect = Assert.Single(connects, ThroughRelay);
            var relayAfter = Rtts(pair, relayConnect.At - connects[0].At);
            var toClient = Rtts(pair, t0, clientGot);
            output.WriteLine($"fast open {fastOpen}: relay connect {relayAfter:0.00} RTT after the first; server->client data {toClient:0.00} RTT, client->server {Rtts(pair, t0, serverGot):0.00} RTT after the push");

            // One race delay (2 RTT here), not one per direct locator before it (4 RTT and more).
            Assert.InRange(relayAfter, 2.0, 2.0 + Slack);
            // Race delay (2) + connect through the relay (1) + Resume/ResumeAck (1).
            Assert.InRange(toClient, 4.0, 4.0 + Slack);
            Assert.Equal(relay, client.RemoteEndPoint);
            Assert.DoesNotContain("timeout", timeline, StringComparison.Ordinal); // Never the attempt's timeout.
            Assert.Equal(1, client.Statistics.Moves);
            ConnectionAssert.NoLossOrDuplicate(client, server);
            Assert.Equal(0, server.Statistics.ResumesRejected);
        }

        await flows.DisposeAsync();
        await serving.WithTimeout();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_direct_locator_that_answers_within_the_race_delay_wins_and_the_relay_is_not_dialled(bool fastOpen)
    {
        var (pair, relay, flows, serving) = await CreateAsync(fastOpen ? FirstFlightMode.Taken : FirstFlightMode.Off);
        await using (pair)
        {
            var (client, server) = pair.Connections[0];
            var endpoint = await pair.MoveServerAsync(ServerA, ServerB);

            pair.Locator.Push(Keys.Server.Guid, endpoint, relay);
            await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);

            Timeline(pair, client);
            Assert.DoesNotContain(Connects(client), ThroughRelay);
            Assert.Equal(endpoint, client.RemoteEndPoint);
            Assert.IsNotType<RelayEndPoint>(client.RemoteEndPoint);
            ConnectionAssert.NoLossOrDuplicate(client, server);
        }

        await flows.DisposeAsync();
        await serving.WithTimeout();
    }

    [Fact]
    public async Task A_direct_answer_that_comes_while_the_relay_connects_wins_and_the_relay_flow_is_aborted()
    {
        // A race delay of half an RTT: the relay joins before the direct first flight's ResumeAck (1 RTT)
        // can arrive, and its connect (1 RTT) is still under way when it does.
        var (pair, relay, flows, serving) = await CreateAsync(FirstFlightMode.Taken, o =>
        {
            o.ConnectRaceDelayMin = TimeSpan.FromMilliseconds(100);
            o.ConnectRaceDelayMax = TimeSpan.FromMilliseconds(100);
        });
        await using (pair)
        {
            var (client, server) = pair.Connections[0];
            var endpoint = await pair.MoveServerAsync(ServerA, ServerB);

            pair.Locator.Push(Keys.Server.Guid, endpoint, relay);
            await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);

            var timeline = Timeline(pair, client);
            var connects = Connects(client);
            Assert.InRange(Rtts(pair, connects.First(ThroughRelay).At - connects[0].At), 0.5, 0.5 + Slack);
            Assert.Equal(endpoint, client.RemoteEndPoint);
            Assert.Contains("through the relay", timeline, StringComparison.Ordinal);
            // The relay's connect lost: its flow carries no Resume (none refused), the connection stays direct.
            Assert.Contains(client.Moves[^1].Events, e => e.Kind == MoveEventKind.ResumeAnswered);
            Assert.Equal(0, server.Statistics.ResumesRejected);
            Assert.Equal(1, server.Statistics.Moves);
            ConnectionAssert.NoLossOrDuplicate(client, server);
        }

        await flows.DisposeAsync();
        await serving.WithTimeout();
    }
}
