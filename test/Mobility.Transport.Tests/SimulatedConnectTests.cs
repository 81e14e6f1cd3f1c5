using Mobility.Transport.Relay;

namespace Mobility.Transport.Tests;

/// <summary>
/// The first connect of a connection while the server moves (issue 17), on the simulated network
/// (one-way latency 100 ms) in virtual time (<see cref="VirtualClock"/>): the handshakes are raced
/// over the server's endpoints, restarted with pushed ones, and the server is looked up once more
/// when every endpoint failed. Times are asserted in RTT units against the handshake timeout
/// (10 s = 50 RTT here), which the connect waited out before.
/// </summary>
[Collection("Timing")]
public class SimulatedConnectTests(ITestOutputHelper output)
{
    private static readonly IPAddress ServerA = SimulatedMoveTests.ServerA;
    private static readonly IPAddress ServerB = SimulatedMoveTests.ServerB;
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    private static Task<SimulatedMoveTests.Pair> CreateAsync()
        => SimulatedMoveTests.CreateAsync(connections: 0, configure: o => o.HandshakeTimeout = HandshakeTimeout);

    private static double Rtts(long from, long to, SimulatedNetwork network) => network.Time.GetElapsedTime(from, to) / network.Rtt;

    /// <summary>An opened connection, its accepted end, and the RTTs from the test's reference time to the open.</summary>
    private sealed record Opened(MobileConnection Client, MobileConnection Server, double Rtts) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            await Server.DisposeAsync();
        }
    }

    /// <summary>Awaits <paramref name="connect"/> (timed from <paramref name="t0"/>); the connection carries a byte each way and the server has accepted exactly it.</summary>
    private static async Task<Opened> OpenAndExchangeAsync(SimulatedMoveTests.Pair pair, Task<MobileConnection> connect, long t0)
    {
        var client = await connect.WithTimeout();
        var opened = Rtts(t0, pair.Time.GetTimestamp(), pair.Network);
        var server = await pair.Listener.AcceptAsync().WithTimeout();
        Assert.Equal(client.Token, server.Token);
        await client.Stream.WriteAsync(new byte[] { 7 }).WithTimeout();
        await server.Stream.WriteAsync(new byte[] { 8 }).WithTimeout();
        var one = new byte[1];
        await server.Stream.ReadExactlyAsync(one).AsTask().WithTimeout();
        Assert.Equal(7, one[0]);
        await client.Stream.ReadExactlyAsync(one).AsTask().WithTimeout();
        Assert.Equal(8, one[0]);
        return new Opened(client, server, opened);
    }

    [Fact]
    public async Task A_connect_in_flight_when_the_server_moves_switches_to_the_pushed_endpoint_at_once()
    {
        await using var pair = await CreateAsync();
        // The server has moved; the client's lookup still answers with its old (now silent) endpoint.
        await pair.MoveServerAsync(ServerA, ServerB);
        var connect = pair.Connector.ConnectAsync(Keys.Server.Guid, pair.Locator);
        await TestTimeout.Eventually(() => pair.Network.Connects >= 1, "the connect to the old endpoint started");
        Assert.False(connect.IsCompleted);

        var t0 = pair.Time.GetTimestamp();
        pair.Locator.Push(Keys.Server.Guid, new IPEndPoint(ServerB, 443));
        await using var opened = await OpenAndExchangeAsync(pair, connect, t0);

        output.WriteLine($"connect in flight, server moved, push: opened {opened.Rtts:0.00} RTT after the push (handshake timeout {HandshakeTimeout / pair.Network.Rtt:0} RTT)");
        // TCP connect (1) + hello/server hello (1); before issue 17 it waited out the handshake timeout and failed.
        Assert.InRange(opened.Rtts, 1.9, 4);
        Assert.Equal(ServerB, opened.Client.RemoteEndPoint!.Address);
        Assert.Equal(2, pair.Network.Connects);
        Assert.Equal(1, pair.Locator.Lookups);
    }

    [Fact]
    public async Task A_connect_refused_at_every_endpoint_looks_the_server_up_once_more()
    {
        await using var pair = await CreateAsync();
        // The server left ServerA:443 (the address answers with a RST now) for ServerB; the first lookup
        // answers with the old record, the second with the new one (no push reaches the client).
        pair.Network.AddAddress(ServerB);
        await pair.Listener.RebindAsync(new IPEndPoint(ServerB, 443)).WithTimeout();
        pair.Locator.BeforeAnswer = n =>
        {
            if (n == 2)
            {
                pair.Locator.Set(Keys.Server.Guid, new IPEndPoint(ServerB, 443));
            }
        };

        var t0 = pair.Time.GetTimestamp();
        await using var opened = await OpenAndExchangeAsync(pair, pair.Connector.ConnectAsync(Keys.Server.Guid, pair.Locator), t0);

        output.WriteLine($"old endpoint refused: opened after {opened.Rtts:0.00} RTT with {pair.Locator.Lookups} lookups");
        // Refused (1) + connect (1) + hello/server hello (1); the lookups cost nothing here.
        Assert.InRange(opened.Rtts, 2.9, 5);
        Assert.Equal(ServerB, opened.Client.RemoteEndPoint!.Address);
        Assert.Equal(2, pair.Locator.Lookups);
        Assert.Contains("looking the peer up once more", pair.Logs.Dump(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_connect_refused_everywhere_looks_up_once_and_fails_when_the_record_names_nothing_new()
    {
        await using var pair = await CreateAsync();
        pair.Network.AddAddress(ServerB);
        await pair.Listener.RebindAsync(new IPEndPoint(ServerB, 443)).WithTimeout();   // the record still names ServerA:443

        var e = await Assert.ThrowsAsync<MobileHandshakeException>(() => pair.Connector.ConnectAsync(Keys.Server.Guid, pair.Locator).WithTimeout());

        output.WriteLine(e.Message);
        Assert.Contains("203.0.113.1:443", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, pair.Locator.Lookups);   // one fresh lookup, not a loop
        Assert.Equal(1, pair.Network.Connects);  // and no second connect to the endpoint that refused
        Assert.Contains("the lookup named no endpoint not tried yet", pair.Logs.Dump(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_record_listing_a_silent_endpoint_first_races_the_next_one_after_the_race_delay()
    {
        await using var pair = await CreateAsync();
        // Listed first: the server's old endpoint, silent; second: where it is now.
        var moved = await pair.MoveServerAsync(ServerA, ServerB);
        pair.Locator.Set(Keys.Server.Guid, new IPEndPoint(ServerA, 443), moved);

        var t0 = pair.Time.GetTimestamp();
        await using var opened = await OpenAndExchangeAsync(pair, pair.Connector.ConnectAsync(Keys.Server.Guid, pair.Locator), t0);

        var delay = new MobileConnectionOptions().ConnectRaceDelayMax / pair.Network.Rtt;
        output.WriteLine($"silent endpoint listed first: opened after {opened.Rtts:0.00} RTT (race delay {delay:0.00} RTT)");
        // The race delay, then TCP connect (1) + hello/server hello (1); before, the silent endpoint's handshake timeout first.
        Assert.InRange(opened.Rtts, delay + 1.9, delay + 4);
        Assert.Equal(ServerB, opened.Client.RemoteEndPoint!.Address);
        Assert.Equal(2, pair.Network.Connects);
    }

    [Fact]
    public async Task A_record_whose_direct_endpoints_are_silent_opens_through_its_relay_at_once_not_after_their_race_delays()
    {
        await using var pair = await CreateAsync();
        // Behind a NAT: the server's private endpoint and its observed one drop every SYN from here; its relay
        // (an endpoint the server's listener also serves, as its registration) is listed last, as a record lists it.
        var observed = IPAddress.Parse("192.0.2.99");
        var relayAddress = IPAddress.Parse("198.18.2.2");
        pair.Network.AddAddress(observed);
        pair.Network.DropTraffic(observed);
        pair.Network.DropTraffic(ServerA);
        pair.Network.AddAddress(relayAddress);
        var relay = new RelayEndPoint(relayAddress, 7395, Keys.Server.Guid);
        var flows = pair.Network.Listen(new IPEndPoint(relayAddress, 7395));
        var serving = pair.Listener.ServeAsync(flows);
        pair.Locator.Set(Keys.Server.Guid, new IPEndPoint(ServerA, 443), new IPEndPoint(observed, 443), relay);

        var t0 = pair.Time.GetTimestamp();
        await using (var opened = await OpenAndExchangeAsync(pair, pair.Connector.ConnectAsync(Keys.Server.Guid, pair.Locator), t0))
        {
            var delay = new MobileConnectionOptions().ConnectRaceDelayMax / pair.Network.Rtt;
            output.WriteLine($"silent direct endpoints listed before the relay: opened after {opened.Rtts:0.00} RTT (race delay {delay:0.00} RTT)");
            // TCP connect through the relay (1) + hello/server hello (1); before, two race delays first (2 x 3.75 RTT).
            Assert.InRange(opened.Rtts, 1.9, 2.5);
            Assert.IsType<RelayEndPoint>(opened.Client.RemoteEndPoint);
            Assert.Contains("races the direct endpoints from the start", pair.Logs.Dump(), StringComparison.Ordinal);
        }

        await flows.DisposeAsync();
        await serving.WithTimeout();
    }

    [Fact]
    public async Task A_connect_from_a_kept_record_asks_no_lookup()
    {
        await using var pair = await CreateAsync();
        pair.Locator.Keep(Keys.Server.Guid, new IPEndPoint(ServerA, 443));

        var t0 = pair.Time.GetTimestamp();
        await using var opened = await OpenAndExchangeAsync(pair, pair.Connector.ConnectAsync(Keys.Server.Guid, pair.Locator), t0);

        output.WriteLine($"kept record: opened after {opened.Rtts:0.00} RTT with {pair.Locator.Lookups} lookups");
        Assert.Equal(1, pair.Locator.KeptAnswers);
        Assert.Equal(0, pair.Locator.Lookups);
        Assert.Equal(1, pair.Network.Connects);
        Assert.InRange(opened.Rtts, 1.9, 2.5);
    }

    [Fact]
    public async Task A_connect_whose_kept_endpoint_refuses_falls_back_to_a_fresh_lookup()
    {
        await using var pair = await CreateAsync();
        // The server left ServerA:443 (a RST there now) for ServerB; the kept record still names ServerA, the GNS ServerB.
        pair.Network.AddAddress(ServerB);
        await pair.Listener.RebindAsync(new IPEndPoint(ServerB, 443)).WithTimeout();
        pair.Locator.Keep(Keys.Server.Guid, new IPEndPoint(ServerA, 443));
        pair.Locator.Set(Keys.Server.Guid, new IPEndPoint(ServerB, 443));

        var t0 = pair.Time.GetTimestamp();
        await using var opened = await OpenAndExchangeAsync(pair, pair.Connector.ConnectAsync(Keys.Server.Guid, pair.Locator), t0);

        output.WriteLine($"kept endpoint refused: opened after {opened.Rtts:0.00} RTT with {pair.Locator.Lookups} lookups");
        Assert.Equal(ServerB, opened.Client.RemoteEndPoint!.Address);
        Assert.Equal(1, pair.Locator.Lookups);
        Assert.Equal(2, pair.Network.Connects);
        Assert.InRange(opened.Rtts, 2.9, 5);
        Assert.Contains("looking the peer up once more", pair.Logs.Dump(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_connect_whose_kept_endpoint_is_silent_looks_up_after_the_race_delay_not_the_handshake_timeout()
    {
        await using var pair = await CreateAsync();
        // The server moved while this end's watch was down: the kept record names its old, silent endpoint.
        var moved = await pair.MoveServerAsync(ServerA, ServerB);
        pair.Locator.Keep(Keys.Server.Guid, new IPEndPoint(ServerA, 443));
        pair.Locator.Set(Keys.Server.Guid, moved);

        var t0 = pair.Time.GetTimestamp();
        await using var opened = await OpenAndExchangeAsync(pair, pair.Connector.ConnectAsync(Keys.Server.Guid, pair.Locator), t0);

        var delay = new MobileConnectionOptions().ConnectRaceDelayMax / pair.Network.Rtt;
        output.WriteLine($"kept endpoint silent: opened after {opened.Rtts:0.00} RTT (race delay {delay:0.00} RTT) with {pair.Locator.Lookups} lookups");
        // The race delay, the lookup (no latency here), then TCP connect (1) + hello/server hello (1).
        Assert.InRange(opened.Rtts, delay + 1.9, delay + 4);
        Assert.Equal(ServerB, opened.Client.RemoteEndPoint!.Address);
        Assert.Equal(1, pair.Locator.Lookups);
        Assert.Contains("proved nothing within", pair.Logs.Dump(), StringComparison.Ordinal);
    }
}
