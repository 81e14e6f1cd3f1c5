namespace Mobility.Transport.Tests;

/// <summary>
/// Round trips per move, counted on the simulated network (one-way latency 100 ms) in virtual
/// time: the network, the locator and both ends run on a <see cref="VirtualClock"/> that moves only
/// while every other thread of the process sleeps (read from <c>/proc</c>: no work is pending anywhere,
/// on the thread pool or on xunit's test threads), so a loaded machine cannot add round trips.
/// Assertions are in RTT units.
/// </summary>
[CollectionDefinition("Timing", DisableParallelization = true)]
public sealed class TimingCollection;

[Collection("Timing")]
public class SimulatedMoveTests(ITestOutputHelper output)
{
    private static readonly SemaphoreSlim WarmUpGate = new(1, 1);
    private static bool s_warm;

    /// <summary>Runs every move path once so JIT compilation is not counted as round trips.</summary>
    private static async Task WarmUpAsync()
    {
        await WarmUpGate.WaitAsync();
        try
        {
            if (s_warm)
            {
                return;
            }

            s_warm = true;
            await using var pair = await CreateCoreAsync(1, TimeSpan.FromMilliseconds(1), null);
            var (client, server) = pair.Connections[0];
            pair.Network.MoveAddress(ClientA, ClientB);
            pair.Connector.NotifyLocalAddressChanged(ClientB);
            await ExchangeAfterMoveAsync(pair.Time, client, server);
            var endpoint = await pair.MoveServerAsync(ServerA, ServerB);
            pair.Locator.Push(Keys.Server.Guid, endpoint);
            await ExchangeAfterMoveAsync(pair.Time, client, server);

            // Both move, no push: the racing lookup finds the server (its old endpoint still listed, ranked lower).
            pair.Network.MoveAddress(ClientB, ClientA);
            endpoint = await pair.MoveServerAsync(ServerB, ServerA);
            pair.Locator.Set(Keys.Server.Guid, endpoint, new IPEndPoint(ServerB, 443));
            pair.Connector.NotifyLocalAddressChanged(ClientA);
            await ExchangeAfterMoveAsync(pair.Time, client, server);

            // The same moves with first flights (MoveBoundTests).
            pair.Network.FirstFlights = FirstFlightMode.Taken;
            pair.Network.MoveAddress(ClientA, ClientB);
            pair.Connector.NotifyLocalAddressChanged(ClientB);
            await ExchangeAfterMoveAsync(pair.Time, client, server);
            endpoint = await pair.MoveServerAsync(ServerA, ServerB);
            pair.Locator.Push(Keys.Server.Guid, endpoint);
            await ExchangeAfterMoveAsync(pair.Time, client, server);
        }
        finally
        {
            WarmUpGate.Release();
        }
    }

    internal static readonly IPAddress ClientA = IPAddress.Parse("198.51.100.1");
    internal static readonly IPAddress ClientB = IPAddress.Parse("198.51.100.2");
    internal static readonly IPAddress ServerA = IPAddress.Parse("203.0.113.1");
    internal static readonly IPAddress ServerB = IPAddress.Parse("203.0.113.2");

    internal sealed class Pair : IAsyncDisposable
    {
        public required SimulatedNetwork Network { get; init; }

        public required TestLocator Locator { get; init; }

        public required MobileListener Listener { get; init; }

        public required MobileConnector Connector { get; init; }

        public required List<(MobileConnection Client, MobileConnection Server)> Connections { get; init; }

        public required ListLoggerFactory Logs { get; init; }

        public required VirtualClock Clock { get; init; }

        /// <summary>The client host's own listener (on ClientA:443), taking the server's call backs; null unless asked for.</summary>
        public MobileListener? ClientListener { get; init; }

        public TimeProvider Time => Clock.Time;

        /// <summary>The server's address changes: the old one is gone, the listener rebinds on the new one.</summary>
        public Task<IPEndPoint> MoveServerAsync(IPAddress from, IPAddress to)
        {
            Network.MoveAddress(from, to);
            return Listener.RebindAsync(new IPEndPoint(to, 443)).WithTimeout();
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var (client, server) in Connections)
            {
                await client.DisposeAsync().AsTask().WithTimeout();
                await server.DisposeAsync().AsTask().WithTimeout();
            }

            await Listener.DisposeAsync().AsTask().WithTimeout();
            if (ClientListener is not null)
            {
                await ClientListener.DisposeAsync().AsTask().WithTimeout();
            }

            await Clock.DisposeAsync().AsTask().WithTimeout();
        }
    }

    /// <param name="callBacks">
    /// The server's listener knows the client's listener endpoint (its locator: ClientA:443) and dials with the simulated
    /// network, and the client host runs a listener there that takes call backs for the connector (docs/transport.md, "Call back").
    /// </param>
    internal static async Task<Pair> CreateAsync(int connections = 1, TimeSpan? latency = null, Action<MobileConnectionOptions>? configure = null, bool callBacks = false)
    {
        await WarmUpAsync();
        return await CreateCoreAsync(connections, latency, configure, callBacks);
    }

    /// <summary>Where the client host's listener runs in a pair with call backs.</summary>
    internal static readonly IPEndPoint ClientListenerEndPoint = new(ClientA, 443);

    private static async Task<Pair> CreateCoreAsync(int connections, TimeSpan? latency, Action<MobileConnectionOptions>? configure, bool callBacks = false)
    {
        var clock = new VirtualClock(TimeSpan.FromMilliseconds(1));
        var network = new SimulatedNetwork(latency ?? TimeSpan.FromMilliseconds(100), clock.Time);
        network.AddAddress(ClientA);
        network.AddAddress(ServerA);
        network.DefaultSource = ClientA;   // the default route's source, for a client that names no local address
        var logs = new ListLoggerFactory();
        var locator = new TestLocator { Time = clock.Time };
        var listener = new MobileListener(Keys.Server, new MobileListenerOptions
        {
            ListenerFactory = network, LoggerFactory = logs, TimeProvider = clock.Time,
            PunchFlowFactory = callBacks ? network : Mobility.Transport.Flows.TcpFlowFactory.Instance,
            PunchTargetLocator = callBacks ? locator : null,
        });
        listener.Start(new IPEndPoint(ServerA, 443));
        locator.Set(Keys.Server.Guid, listener.LocalEndPoint);
        if (callBacks)
        {
            locator.Keep(Keys.Client.Guid, ClientListenerEndPoint); // a watched record: the server looks at it without a lookup
        }

        var options = new MobileConnectionOptions { FlowFactory = network, LocalAddress = ClientA, LoggerFactory = logs, TimeProvider = clock.Time };
        configure?.Invoke(options);
        var connector = new MobileConnector(Keys.Client, options);
        MobileListener? clientListener = null;
        if (callBacks)
        {
            clientListener = new MobileListener(Keys.Client, new MobileListenerOptions { ListenerFactory = network, LoggerFactory = logs, TimeProvider = clock.Time });
            clientListener.Start(ClientListenerEndPoint);
            clientListener.AcceptCallBacksFor(connector);
        }

        var pairs = new List<(MobileConnection, MobileConnection)>();
        var clients = await Task.WhenAll(Enumerable.Range(0, connections).Select(_ => connector.ConnectAsync(Keys.Server.Guid, locator))).WithTimeout();
        var accepted = new List<MobileConnection>();
        for (var i = 0; i < connections; i++)
        {
            accepted.Add(await listener.AcceptAsync().WithTimeout());
        }

        foreach (var client in clients)
        {
            pairs.Add((client, accepted.Single(s => s.Token == client.Token)));
        }

        // One exchange so every connection is fully up on both sides.
        await Task.WhenAll(pairs.Select(async p =>
        {
            await p.Item1.Stream.WriteAsync(new byte[] { 1 });
            var one = new byte[1];
            await p.Item2.Stream.ReadExactlyAsync(one);
        })).WithTimeout();

        return new Pair { Network = network, Locator = locator, Listener = listener, Connector = connector, Connections = pairs, Logs = logs, Clock = clock, ClientListener = clientListener };
    }

    private static double Rtts(long from, long to, SimulatedNetwork network)
        => network.Time.GetElapsedTime(from, to) / network.Rtt;

    /// <summary>Times, after a move at t0, until each side reads the byte the other wrote at t0.</summary>
    internal static async Task<(long ClientGot, long ServerGot)> ExchangeAfterMoveAsync(TimeProvider time, MobileConnection client, MobileConnection server)
    {
        await WriteBothAsync(client, server);
        return await ReadBothAsync(time, client, server);
    }

    /// <summary>Each side writes the byte <see cref="ReadBothAsync"/> waits for.</summary>
    internal static async Task WriteBothAsync(MobileConnection client, MobileConnection server)
    {
        await server.Stream.WriteAsync(new byte[] { 2 }).WithTimeout();
        await client.Stream.WriteAsync(new byte[] { 3 }).WithTimeout();
    }

    /// <summary>The times at which each side reads the byte the other wrote (<see cref="WriteBothAsync"/>).</summary>
    internal static async Task<(long ClientGot, long ServerGot)> ReadBothAsync(TimeProvider time, MobileConnection client, MobileConnection server)
    {
        var clientRead = Task.Run(async () =>
        {
            var b = new byte[1];
            await client.Stream.ReadExactlyAsync(b);
            Assert.Equal(2, b[0]);
            return time.GetTimestamp();
        });
        var serverRead = Task.Run(async () =>
        {
            var b = new byte[1];
            await server.Stream.ReadExactlyAsync(b);
            Assert.Equal(3, b[0]);
            return time.GetTimestamp();
        });
        return (await clientRead.WithTimeout(), await serverRead.WithTimeout());
    }

    [Fact]
    public async Task Client_move_costs_one_rtt_after_the_new_flow_is_up()
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        long flowUp = 0;
        client.Diagnostic += (_, e) =>
        {
            if (e.Kind == MobileConnectionEventKind.FlowConnected)
            {
                Interlocked.CompareExchange(ref flowUp, e.Timestamp, 0);
            }
        };

        var t0 = pair.Time.GetTimestamp();
        pair.Network.MoveAddress(ClientA, ClientB);
        pair.Connector.NotifyLocalAddressChanged(ClientB);
        var (clientGot, serverGot) = await ExchangeAfterMoveAsync(pair.Time, client, server);

        var connect = Rtts(t0, flowUp, pair.Network);
        var toClient = Rtts(flowUp, clientGot, pair.Network);
        var toServer = Rtts(flowUp, serverGot, pair.Network);
        output.WriteLine($"client move: new flow up after {connect:0.00} RTT; then server->client data after {toClient:0.00} RTT, client->server after {toServer:0.00} RTT; total {Rtts(t0, clientGot, pair.Network):0.00} RTT");
        Assert.InRange(connect, 0.9, 1.5);
        Assert.InRange(toClient, 0.9, 1.5);  // Resume -> server, ResumeAck + resent data -> client.
        Assert.InRange(toServer, 0.4, 1.0);  // Optimistic: the client resends right behind Resume.
        Assert.Equal(1, client.Statistics.Moves);
        Assert.Equal(1, server.Statistics.Moves);
    }

    [Fact]
    public async Task Simultaneous_move_with_locator_push_costs_two_rtt()
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        var t0 = pair.Time.GetTimestamp();
        pair.Network.MoveAddress(ClientA, ClientB);
        var endpoint = await pair.MoveServerAsync(ServerA, ServerB);
        pair.Locator.Push(Keys.Server.Guid, endpoint);
        pair.Connector.NotifyLocalAddressChanged(ClientB);
        var (clientGot, serverGot) = await ExchangeAfterMoveAsync(pair.Time, client, server);

        var total = Rtts(t0, clientGot, pair.Network);
        output.WriteLine($"simultaneous move + push: server->client data after {total:0.00} RTT, client->server after {Rtts(t0, serverGot, pair.Network):0.00} RTT");
        Assert.InRange(total, 1.9, 2.6);   // Connect (1) + Resume/ResumeAck (1).
        Assert.Equal(ServerB, client.RemoteEndPoint!.Address);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // The record still lists the old endpoint, ranked below the new one (an observed locator).
    public async Task Simultaneous_move_without_push_races_a_lookup_instead_of_waiting_for_the_attempt_timeout(bool oldStillListed)
    {
        // The attempt timeout is 20 RTT here: waiting it out on the server's old (black-holed)
        // endpoint would show as >= 20 RTT.
        await using var pair = await CreateAsync(configure: o => o.ResumeAttemptTimeout = TimeSpan.FromSeconds(4));
        var (client, server) = pair.Connections[0];
        pair.Locator.Latency = pair.Network.Rtt; // A GNS query costs one RTT.
        var lookupsBefore = pair.Locator.Lookups;
        var t0 = pair.Time.GetTimestamp();
        pair.Network.MoveAddress(ClientA, ClientB);
        var endpoint = await pair.MoveServerAsync(ServerA, ServerB);
        // Record updated, but the push is lost (our watch moved too).
        pair.Locator.Set(Keys.Server.Guid, oldStillListed ? [endpoint, new IPEndPoint(ServerA, 443)] : [endpoint]);
        pair.Connector.NotifyLocalAddressChanged(ClientB);
        var (clientGot, serverGot) = await ExchangeAfterMoveAsync(pair.Time, client, server);

        var total = Rtts(t0, clientGot, pair.Network);
        var timeoutRtts = TimeSpan.FromSeconds(4) / pair.Network.Rtt;
        output.WriteLine($"simultaneous move, no push: server->client data after {total:0.00} RTT, client->server after {Rtts(t0, serverGot, pair.Network):0.00} RTT " +
            $"(attempt timeout = {timeoutRtts:0} RTT); lookups {pair.Locator.Lookups - lookupsBefore}, resume attempts {client.Statistics.ResumeAttempts}");
        // Lookup (1) + connect (1) + Resume/ResumeAck (1), typically 3.0-3.1 RTT; the upper bound is
        // loose (half the attempt timeout) because the first test of a loaded process has seen
        // +2-4 RTT of scheduling delay. What is asserted exactly: the attempt on the old endpoint
        // was abandoned for the looked-up one, and none timed out.
        Assert.InRange(total, 2.9, timeoutRtts / 2);
        var log = pair.Logs.Dump();
        Assert.Contains("abandoning the attempt via 203.0.113.1:443", log, StringComparison.Ordinal);
        Assert.DoesNotContain("failed: timeout", log, StringComparison.Ordinal);
        Assert.Equal(ServerB, client.RemoteEndPoint!.Address);
        Assert.Equal(1, pair.Locator.Lookups - lookupsBefore);
        Assert.Equal(1, client.Statistics.Moves);
    }

    [Fact]
    public async Task A_push_of_the_endpoints_already_in_use_does_not_restart_a_pending_attempt()
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        var attemptsBefore = client.Statistics.ResumeAttempts;
        var t0 = pair.Time.GetTimestamp();
        var endpoint = await pair.MoveServerAsync(ServerA, ServerB);
        pair.Locator.Push(Keys.Server.Guid, endpoint);

        // A watch that re-opens re-delivers the current record: same endpoints, half an RTT into the connect.
        await Task.Delay(pair.Network.Latency / 2, pair.Time).WithTimeout();
        pair.Locator.Push(Keys.Server.Guid, endpoint);
        var (clientGot, _) = await ExchangeAfterMoveAsync(pair.Time, client, server);
        var total = Rtts(t0, clientGot, pair.Network);
        output.WriteLine($"server move + push + repeated push: data after {total:0.00} RTT, resume attempts {client.Statistics.ResumeAttempts - attemptsBefore}");
        Assert.InRange(total, 1.9, 2.6);
        Assert.Equal(1, client.Statistics.ResumeAttempts - attemptsBefore);
        Assert.Equal(1, client.Statistics.Moves);
    }

    [Fact]
    public async Task Server_move_learned_from_a_locator_push_costs_two_rtt()
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        var t0 = pair.Time.GetTimestamp();
        var endpoint = await pair.MoveServerAsync(ServerA, ServerB);
        pair.Locator.Push(Keys.Server.Guid, endpoint);
        var (clientGot, _) = await ExchangeAfterMoveAsync(pair.Time, client, server);
        var total = Rtts(t0, clientGot, pair.Network);
        output.WriteLine($"server move + push: data after {total:0.00} RTT");
        Assert.InRange(total, 1.9, 2.6);
    }

    [Fact]
    public async Task Server_move_without_push_is_found_through_the_locator_after_the_dead_path_timeout()
    {
        await using var pair = await CreateAsync(configure: o => { o.KeepAliveInterval = TimeSpan.FromMilliseconds(200); o.DeadPathTimeout = TimeSpan.FromMilliseconds(800); });
        var (client, server) = pair.Connections[0];
        pair.Locator.Latency = pair.Network.Rtt; // A GNS query costs one RTT.
        var endpoint = await pair.MoveServerAsync(ServerA, ServerB);
        pair.Locator.Set(Keys.Server.Guid, endpoint); // Record updated, no push.
        var t0 = pair.Time.GetTimestamp();
        var (clientGot, _) = await ExchangeAfterMoveAsync(pair.Time, client, server);
        var stall = pair.Time.GetElapsedTime(t0, clientGot);
        output.WriteLine($"silent server move: data after {stall.TotalMilliseconds:0} ms ({stall / pair.Network.Rtt:0.0} RTT), locator lookups {pair.Locator.Lookups}");
        Assert.True(stall >= TimeSpan.FromMilliseconds(800), "detected before the dead-path timeout?");
        Assert.True(pair.Locator.Lookups >= 2, "the locator was not asked again");
        Assert.Equal(ServerB, client.RemoteEndPoint!.Address);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(100)]
    public async Task Many_connections_resume_concurrently_after_a_simultaneous_move(int count)
    {
        await using var pair = await CreateAsync(connections: count);
        var times = new System.Collections.Concurrent.ConcurrentBag<long>();
        var allResumed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        foreach (var (client, _) in pair.Connections)
        {
            client.Diagnostic += (_, e) =>
            {
                if (e.Kind == MobileConnectionEventKind.Resumed)
                {
                    times.Add(e.Timestamp);
                    if (times.Count == count)
                    {
                        allResumed.TrySetResult();
                    }
                }
            };
        }

        var t0 = pair.Time.GetTimestamp();
        pair.Network.MoveAddress(ClientA, ClientB);
        var endpoint = await pair.MoveServerAsync(ServerA, ServerB);
        pair.Locator.Push(Keys.Server.Guid, endpoint);
        pair.Connector.NotifyLocalAddressChanged(ClientB);
        await allResumed.Task.WithTimeout();
        var sorted = times.Select(t => Rtts(t0, t, pair.Network)).Order().ToArray();
        output.WriteLine($"{count} connections, simultaneous move + push: first resumed after {sorted[0]:0.00} RTT, median {sorted[count / 2]:0.00}, last {sorted[^1]:0.00} RTT");
        Assert.True(sorted[0] >= 1.9, "a resume cannot take less than connect + Resume/ResumeAck");

        // Concurrency, not a speed bound: done serially, N resumes would take at least 2N RTT.
        Assert.True(sorted[^1] < Math.Max(4, count / 4.0), $"last resume after {sorted[^1]:0.00} RTT looks serialized");
        await Task.WhenAll(pair.Connections.Select(async p =>
        {
            await p.Client.Stream.WriteAsync(new byte[] { 9 });
            var b = new byte[1];
            await p.Server.Stream.ReadExactlyAsync(b);
            Assert.Equal(9, b[0]);
        })).WithTimeout();
    }
}
