using Mobility.Transport.Relay;

namespace Mobility.Transport.Tests;

/// <summary>
/// Connection reversal (docs/transport.md, "Connection reversal"), in virtual time on the simulated network (one-way
/// 100 ms, RTT 200 ms, first flights taken): a public client reaches a server behind a NAT through the server's relay
/// (the server's record lists only its relay endpoint); the server dials the client's published listener from an
/// ephemeral port and sends a Reverse; the client joins on that flow and moves to it as a direct path, the relayed one
/// kept as a standby. And what must do nothing: forged, replayed or misplaced reversals, a client nobody can dial.
/// </summary>
[Collection("Timing")]
public sealed class ConnectionReversalTests(ITestOutputHelper output)
{
    private static readonly IPAddress ClientA = SimulatedMoveTests.ClientA;
    private static readonly IPAddress ServerA = SimulatedMoveTests.ServerA;
    private static readonly IPAddress RelayAddress = IPAddress.Parse("198.18.2.2");
    private static readonly IPAddress Stranger = IPAddress.Parse("192.0.2.66");
    private static readonly IPEndPoint ClientListenerEndPoint = SimulatedMoveTests.ClientListenerEndPoint;

    /// <summary>What the virtual clock's step and the loops' own hops may add to a bound (10 ms at 200 ms RTT).</summary>
    private const double Slack = 0.05;

    private sealed class Relayed : IAsyncDisposable
    {
        public required SimulatedNetwork Network { get; init; }

        public required VirtualClock Clock { get; init; }

        public required TestLocator Locator { get; init; }

        public required MobileListener Listener { get; init; }

        public MobileListener? ClientListener { get; init; }

        public required IFlowListener RelayFlows { get; init; }

        public required Task Serving { get; init; }

        public required MobileConnection Client { get; init; }

        public required ListLoggerFactory Logs { get; init; }

        public required MobileConnection Server { get; init; }

        /// <summary>When the client's connect through the relay returned.</summary>
        public required long ConnectedAt { get; init; }

        public TimeProvider Time => Clock.Time;

        public double Rtts(long from, long to) => Time.GetElapsedTime(from, to) / Network.Rtt;

        /// <summary>Polls (in virtual time, every millisecond) until <paramref name="condition"/> holds; the time it first did, or null after <paramref name="rtts"/>.</summary>
        public async Task<long?> WhenAsync(Func<bool> condition, double rtts)
        {
            var until = Time.GetTimestamp() + (long)(Network.Rtt.TotalSeconds * rtts * Time.TimestampFrequency);
            while (Time.GetTimestamp() < until)
            {
                if (condition())
                {
                    return Time.GetTimestamp();
                }

                await Task.Delay(TimeSpan.FromMilliseconds(1), Time).WithTimeout();
            }

            return condition() ? Time.GetTimestamp() : null;
        }

        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync().AsTask().WithTimeout();
            await Server.DisposeAsync().AsTask().WithTimeout();
            await RelayFlows.DisposeAsync().AsTask().WithTimeout();
            await Serving.WithTimeout();
            await Listener.DisposeAsync().AsTask().WithTimeout();
            if (ClientListener is not null)
            {
                await ClientListener.DisposeAsync().AsTask().WithTimeout();
            }

            await Clock.DisposeAsync().AsTask().WithTimeout();
        }
    }

    /// <param name="clientListener">The client host runs a listener on its published endpoint (it is dialable).</param>
    /// <param name="published">The client's record publishes that endpoint (else it lists nothing).</param>
    /// <param name="serverReversal">The server's listener dials reversals.</param>
    private static async Task<Relayed> OpenAsync(bool clientListener = true, bool published = true, bool serverReversal = true)
    {
        var clock = new VirtualClock(TimeSpan.FromMilliseconds(1));
        var network = new SimulatedNetwork(TimeSpan.FromMilliseconds(100), clock.Time) { FirstFlights = FirstFlightMode.Taken };
        network.AddAddress(ClientA);
        network.AddAddress(ServerA);
        network.AddAddress(RelayAddress);
        network.DefaultSource = ClientA;
        var logs = new ListLoggerFactory();
        var locator = new TestLocator { Time = clock.Time };
        var listener = new MobileListener(Keys.Server, new MobileListenerOptions
        {
            ListenerFactory = network, LoggerFactory = logs, TimeProvider = clock.Time,
            PunchFlowFactory = network, PunchTargetLocator = locator, ConnectionReversal = serverReversal,
        });
        listener.Start(new IPEndPoint(ServerA, 443));

        // The server is behind a NAT without a port forward: its record lists only its relay, whose spliced flows reach
        // the server's listener as relayed flows (as a relay registration's do).
        var relay = new RelayEndPoint(RelayAddress, 7395, Keys.Server.Guid);
        var relayFlows = new RelayedListener(network.Listen(new IPEndPoint(RelayAddress, 7395)), relay);
        var serving = listener.ServeAsync(relayFlows);
        locator.Set(Keys.Server.Guid, relay);
        if (published)
        {
            locator.Keep(Keys.Client.Guid, ClientListenerEndPoint); // a watched record: the server looks at it without a lookup
        }
        else
        {
            locator.Keep(Keys.Client.Guid);
        }

        var options = new MobileConnectionOptions { FlowFactory = new RelayingFlows(network), LocalAddress = ClientA, LoggerFactory = logs, TimeProvider = clock.Time };
        var connector = new MobileConnector(Keys.Client, options);
        MobileListener? clientSide = null;
        if (clientListener)
        {
            clientSide = new MobileListener(Keys.Client, new MobileListenerOptions { ListenerFactory = network, LoggerFactory = logs, TimeProvider = clock.Time });
            clientSide.Start(ClientListenerEndPoint);
            clientSide.AcceptCallBacksFor(connector);
        }

        var accepting = listener.AcceptAsync().AsTask();
        var client = await connector.ConnectAsync(Keys.Server.Guid, locator).WithTimeout();
        var connectedAt = clock.Time.GetTimestamp();
        var server = await accepting.WithTimeout();
        return new Relayed
        {
            Network = network, Clock = clock, Locator = locator, Listener = listener, ClientListener = clientSide, RelayFlows = relayFlows,
            Serving = serving, Client = client, Server = server, ConnectedAt = connectedAt, Logs = logs,
        };
    }

    /// <summary>Writes <paramref name="total"/> random bytes in 8 KiB chunks, one every <paramref name="gap"/> of virtual time, and checks the other end reads them all.</summary>
    private static async Task StreamAsync(Relayed pair, MobileConnection from, MobileConnection to, int total, TimeSpan gap, int seed)
    {
        var sent = new byte[total];
        new Random(seed).NextBytes(sent);
        var received = new byte[total];
        var reading = Task.Run(async () => await to.Stream.ReadExactlyAsync(received));
        for (var offset = 0; offset < total; offset += 8192)
        {
            await from.Stream.WriteAsync(sent.AsMemory(offset, Math.Min(8192, total - offset))).WithTimeout();
            await Task.Delay(gap, pair.Time).WithTimeout();
        }

        await reading.WithTimeout();
        Assert.Equal(sent, received);
    }

    [Fact]
    public async Task A_relayed_connection_whose_client_is_dialable_goes_direct_two_rtt_after_the_connect_with_every_byte_once()
    {
        await using var pair = await OpenAsync();
        var (client, server) = (pair.Client, pair.Server);
        Assert.StartsWith("relay ", client.PathKind);

        // Data both ways while the server dials: 96 KiB each way, a chunk every 0.1 RTT.
        var up = StreamAsync(pair, client, server, 96 * 1024, pair.Network.Rtt / 10, 1);
        var down = StreamAsync(pair, server, client, 96 * 1024, pair.Network.Rtt / 10, 2);
        var clientDirect = await pair.WhenAsync(() => client.PathKind == "direct", 20);
        var serverDirect = await pair.WhenAsync(() => server.PathKind == "direct", 20);
        await Task.WhenAll(up, down).WithTimeout();

        Assert.NotNull(clientDirect);
        Assert.NotNull(serverDirect);
        var toClient = pair.Rtts(pair.ConnectedAt, clientDirect!.Value);
        var toServer = pair.Rtts(pair.ConnectedAt, serverDirect!.Value);
        output.WriteLine($"reversal: client direct {toClient:0.00} RTT, server direct {toServer:0.00} RTT after the client's relayed connect returned");
        // The server starts 0.5 RTT after the client's connect (the ClientFinish); its Reverse in the SYN (0.5), the
        // client's Join behind the SYN-ACK (0.5), the JoinAck (0.5): the client is direct at 2.0 RTT, the server when
        // the client's first frame on the path reaches it (2.5).
        Assert.InRange(toClient, 1.9, 2.0 + Slack);
        Assert.InRange(toServer, 2.4, 2.5 + Slack);
        Assert.Equal(ServerA, client.RemoteEndPoint!.Address);
        // Dialled from an ephemeral port, never the listener's: from there, a reversal to a punching client's reflexive
        // endpoint would be the punch's own 4-tuple (docs/transport.md, "Connection reversal").
        Assert.NotEqual(443, client.RemoteEndPoint!.Port);
        Assert.Equal(0, pair.Network.PortedFirstFlights);
        Assert.StartsWith("relay ", client.StandbyRelay);
        Assert.StartsWith("relay ", server.StandbyRelay);
        Assert.Equal(1, client.Statistics.DirectUpgrades);
        Assert.Equal((1, 0, 0), server.ReverseCounts);
        Assert.Equal((0, 1, 0), client.ReverseCounts);
        Assert.Equal(0, pair.ClientListener!.ReversesDropped);
        Assert.Equal(0, server.Statistics.ResumesRejected);
        Assert.Equal(0, client.Statistics.ResumeAttempts);
        ConnectionAssert.NoLossOrDuplicate(client, server);

        // It goes on on the direct path, and nothing is dialled again while it lives.
        await ConnectionAssert.CarriesOnAsync(client, server, 64 * 1024);
        await Task.Delay(pair.Network.Rtt * 20, pair.Time).WithTimeout();
        Assert.Equal("direct", client.PathKind);
        Assert.Equal((1, 0, 0), server.ReverseCounts);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    /// <summary>Opens a flow from <paramref name="from"/> to the client's listener and sends <paramref name="message"/>: what comes back, and whether the flow was closed.</summary>
    private static Task<(int BytesBack, bool Closed)> SendRawAsync(Relayed pair, IPAddress from, byte[] message)
        => RawHandshake.SendAsync(pair.Network, ClientListenerEndPoint, from, message);

    [Fact]
    public async Task Forged_and_misaddressed_reversals_are_dropped_unanswered_and_the_connection_stays_relayed()
    {
        // The server does not reverse here: every Reverse the client sees is the test's.
        await using var pair = await OpenAsync(serverReversal: false);
        var (client, server) = (pair.Client, pair.Server);
        pair.Network.AddAddress(Stranger);
        var genuine = server.SealReverse(1);
        var badMac = genuine.ToArray();
        badMac[^1] ^= 1;
        byte[][] forged =
        [
            ReverseRequest.Create(new byte[32], Keys.Client.Guid, Keys.Server.Guid, client.Token, 1).ToArray(),
            badMac,
            ReverseRequest.Create(new byte[32], Keys.Client.Guid, Keys.Server.Guid, client.Token ^ 1, 1).ToArray(),
            ReverseRequest.Create(new byte[32], Keys.Other.Guid, Keys.Server.Guid, client.Token, 1).ToArray(),
            ReverseRequest.Create(new byte[32], Keys.Client.Guid, Keys.Other.Guid, client.Token, 1).ToArray(),
            // The session's genuine call back is not a Reverse: the same key under another context and type.
            server.SealCallBack(1).ToArray()[..ReverseRequest.MacOffset].Concat(server.SealCallBack(1).ToArray()[^32..]).ToArray(),
        ];
        forged[^1][5] = (byte)HandshakeMessageType.Reverse;
        foreach (var message in forged)
        {
            var (back, closed) = await SendRawAsync(pair, Stranger, message);
            Assert.Equal(0, back);   // nothing is sent to a stranger: no Join, no Reject
            Assert.True(closed);     // and the flow is closed at once
        }

        Assert.Equal(forged.Length, pair.ClientListener!.ReversesDropped);
        Assert.Equal(0, pair.ClientListener.AdmittedFlows);
        Assert.Equal((0, 0, 3), client.ReverseCounts); // wrong key, bad MAC and the relabelled call back failed the connection's MAC check
        Assert.StartsWith("relay ", client.PathKind);
        Assert.Empty(client.StandbyPaths);
        Assert.Equal(0, client.Statistics.DirectUpgrades);
        await ConnectionAssert.CarriesOnAsync(client, server, 32 * 1024);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    [Fact]
    public async Task A_replayed_reversal_and_one_for_a_connection_already_direct_are_dropped_and_change_nothing()
    {
        await using var pair = await OpenAsync();
        var (client, server) = (pair.Client, pair.Server);
        Assert.NotNull(await pair.WhenAsync(() => client.PathKind == "direct" && server.PathKind == "direct", 20));
        Assert.Equal((0, 1, 0), client.ReverseCounts);
        var path = client.RemoteEndPoint;
        pair.Network.AddAddress(Stranger);

        // The genuine reversal (counter 1: the same bytes as the one that went) replayed by a stranger and from the
        // server's own address; then a fresh, genuine one (counter 2) while the connection is direct already.
        foreach (var (from, message) in new[] { (Stranger, server.SealReverse(1)), (ServerA, server.SealReverse(1)), (ServerA, server.SealReverse(2)) })
        {
            var (back, closed) = await SendRawAsync(pair, from, message.ToArray());
            Assert.Equal(0, back);
            Assert.True(closed);
        }

        Assert.Equal((0, 1, 3), client.ReverseCounts);
        Assert.Contains("(a replay)", pair.Logs.Dump(), StringComparison.Ordinal);
        Assert.Contains("the active path is not relayed", pair.Logs.Dump(), StringComparison.Ordinal);
        Assert.Equal(path, client.RemoteEndPoint);
        Assert.Equal(1, client.Statistics.DirectUpgrades);
        Assert.Single(client.StandbyPaths); // the relayed one, nothing added
        await ConnectionAssert.CarriesOnAsync(client, server, 32 * 1024);
        Assert.Equal(path, client.RemoteEndPoint);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    [Fact]
    public async Task A_client_with_no_listener_stays_relayed_and_the_server_backs_off_between_attempts()
    {
        await using var pair = await OpenAsync(clientListener: false);
        var (client, server) = (pair.Client, pair.Server);

        // 10 s (50 RTT) of data through the relay while the server's SYNs to the client's published endpoint are refused.
        await StreamAsync(pair, client, server, 64 * 1024, pair.Network.Rtt * 50 / 8, 3);
        output.WriteLine($"no listener: {server.ReverseCounts.Sent} reversal attempts in {pair.Rtts(pair.ConnectedAt, pair.Time.GetTimestamp()):0} RTT");
        Assert.StartsWith("relay ", client.PathKind);
        Assert.StartsWith("relay ", server.PathKind);
        Assert.Equal(0, client.Statistics.DirectUpgrades);
        // The first at once, then after 2 s × U(0.5, 1.5), then 4 s × U(0.5, 1.5), ...: 2 to 4 attempts in 10 s, not one per RTT.
        Assert.InRange(server.ReverseCounts.Sent, 2, 4);
        Assert.Equal(MobileConnectionState.Connected, client.State);
        await ConnectionAssert.CarriesOnAsync(client, server, 32 * 1024);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    [Fact]
    public async Task A_client_whose_record_publishes_no_listener_is_never_dialled()
    {
        await using var pair = await OpenAsync(published: false);
        var (client, server) = (pair.Client, pair.Server);
        await Task.Delay(pair.Network.Rtt * 10, pair.Time).WithTimeout();
        await ConnectionAssert.CarriesOnAsync(client, server, 32 * 1024);
        Assert.StartsWith("relay ", client.PathKind);
        Assert.Equal((0, 0, 0), server.ReverseCounts);
        Assert.Equal(0, pair.Network.PortedFirstFlights);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    [Fact]
    public async Task A_push_of_the_clients_record_naming_its_listener_starts_a_reversal_at_once()
    {
        // The client's record named no listener when the connection started (it was behind a NAT, say); then it is pushed
        // with one (the client moved to a public address): the server dials it without waiting for anything else.
        await using var pair = await OpenAsync(published: false);
        var (client, server) = (pair.Client, pair.Server);
        await Task.Delay(pair.Network.Rtt * 5, pair.Time).WithTimeout();
        Assert.Equal((0, 0, 0), server.ReverseCounts);

        var pushed = pair.Time.GetTimestamp();
        pair.Locator.Push(Keys.Client.Guid, ClientListenerEndPoint);
        var direct = await pair.WhenAsync(() => client.PathKind == "direct", 20);
        Assert.NotNull(direct);
        output.WriteLine($"pushed listener: client direct {pair.Rtts(pushed, direct!.Value):0.00} RTT after the push");
        // The Reverse in the SYN (0.5), the Join (0.5), the JoinAck (0.5).
        Assert.InRange(pair.Rtts(pushed, direct.Value), 1.4, 1.5 + Slack);
        Assert.Equal((1, 0, 0), server.ReverseCounts);
        await ConnectionAssert.CarriesOnAsync(client, server, 32 * 1024);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    [Fact]
    public async Task When_the_direct_path_dies_the_connection_falls_back_to_the_relay_losing_nothing_and_goes_direct_again_later()
    {
        await using var pair = await OpenAsync();
        var (client, server) = (pair.Client, pair.Server);
        Assert.NotNull(await pair.WhenAsync(() => client.PathKind == "direct" && server.PathKind == "direct", 20));

        // The direct path stops forwarding (the server's address upstream; its relay registration is elsewhere).
        pair.Network.DropTraffic(ServerA);
        var lost = pair.Time.GetTimestamp();
        var up = StreamAsync(pair, client, server, 128 * 1024, pair.Network.Rtt / 4, 4);
        var down = StreamAsync(pair, server, client, 128 * 1024, pair.Network.Rtt / 4, 5);
        var relayedAgain = await pair.WhenAsync(() => client.PathKind?.StartsWith("relay ", StringComparison.Ordinal) == true, 20);
        await Task.WhenAll(up, down).WithTimeout();
        Assert.NotNull(relayedAgain);
        output.WriteLine($"direct path dead: client back on the relay {pair.Rtts(lost, relayedAgain!.Value):0.00} RTT later");
        Assert.StartsWith("relay ", server.PathKind);
        ConnectionAssert.NoLossOrDuplicate(client, server);

        // The server tries again after its back-off (its first try may still meet the dead upstream); once the upstream
        // forwards, a later try goes direct again.
        pair.Network.RestoreTraffic(ServerA);
        var directAgain = await pair.WhenAsync(() => client.PathKind == "direct" && server.PathKind == "direct", 200);
        Assert.NotNull(directAgain);
        output.WriteLine($"direct again {pair.Rtts(lost, directAgain!.Value):0.00} RTT after the loss, after {server.ReverseCounts.Sent} reversal attempts");
        Assert.Equal(2, client.Statistics.DirectUpgrades);
        Assert.True(server.ReverseCounts.Sent >= 2);
        await ConnectionAssert.CarriesOnAsync(client, server, 64 * 1024);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    /// <summary>Flows of the simulated network; one to a relay endpoint is a relayed flow (as a dial through a relay is).</summary>
    private sealed class RelayingFlows(SimulatedNetwork network) : IFlowFactory
    {
        public async ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
            => Wrap(remote, await network.ConnectAsync(remote, localAddress, cancellationToken));

        public async ValueTask<IFlow> ConnectFirstFlightAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
            => Wrap(remote, await network.ConnectFirstFlightAsync(remote, localAddress, cancellationToken));

        public async ValueTask<IFlow> ConnectFirstFlightAsync(IPEndPoint remote, IPAddress? localAddress, int localPort, CancellationToken cancellationToken)
            => Wrap(remote, await network.ConnectFirstFlightAsync(remote, localAddress, localPort, cancellationToken));

        public IPAddress? SourceAddressFor(IPEndPoint remote) => network.SourceAddressFor(remote);

        private static IFlow Wrap(IPEndPoint remote, IFlow flow) => remote is RelayEndPoint relay ? new RelayedFlow(flow, relay) : flow;
    }

    /// <summary>A relay's spliced flows as a registration hands them to the server: relayed flows.</summary>
    private sealed class RelayedListener(IFlowListener inner, IPEndPoint relay) : IFlowListener
    {
        public IPEndPoint LocalEndPoint => inner.LocalEndPoint;

        public async ValueTask<IFlow> AcceptAsync(CancellationToken cancellationToken) => new RelayedFlow(await inner.AcceptAsync(cancellationToken), relay);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
