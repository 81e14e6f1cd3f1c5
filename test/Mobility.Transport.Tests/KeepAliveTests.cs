namespace Mobility.Transport.Tests;

/// <summary>
/// The keepalive policy on virtual time (the simulated network's latency is real, the connections'
/// timers run on a <see cref="FakeTimeProvider"/>): idle connections cost a keepalive per idle
/// interval, a write on an idle connection over a dead path is noticed within the active bound.
/// Counts frames and virtual time, never wall-clock time.
/// </summary>
public sealed class KeepAliveTests(ITestOutputHelper output)
{
    private static readonly IPAddress ClientAddress = IPAddress.Parse("198.51.100.40");
    private static readonly IPAddress ServerAddress = IPAddress.Parse("203.0.113.40");
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(100);

    private sealed record Pair(SimulatedNetwork Network, FakeTimeProvider Time, MobileListener Listener, MobileConnection Client, MobileConnection Server);

    private static async Task<Pair> CreateAsync()
    {
        var network = new SimulatedNetwork(TimeSpan.FromMilliseconds(1));
        network.AddAddress(ClientAddress);
        network.AddAddress(ServerAddress);
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(20000));
        var listener = new MobileListener(Keys.Server, new MobileListenerOptions { ListenerFactory = network, TimeProvider = time });
        listener.Start(new IPEndPoint(ServerAddress, 443));
        var client = await new MobileConnector(Keys.Client, new MobileConnectionOptions
        {
            FlowFactory = network,
            LocalAddress = ClientAddress,
            TimeProvider = time,
        }).ConnectAsync(listener.LocalEndPoint).WithTimeout();
        var server = await listener.AcceptAsync().WithTimeout();
        return new Pair(network, time, listener, client, server);
    }

    /// <summary>Advances virtual time in steps; after each, waits (real time) until no keepalive is unanswered while the path works.</summary>
    private static async Task IdleAsync(Pair pair, TimeSpan duration)
    {
        for (var t = TimeSpan.Zero; t < duration; t += Step)
        {
            pair.Time.Advance(Step);
            // The timer only posts a tick to each connection's loop: let both loops handle it.
            await Task.WhenAll(pair.Client.SettleAsync(), pair.Server.SettleAsync()).WithTimeout();
            await TestTimeout.Eventually(() => !pair.Client.AwaitingAnswer, "the keepalive is answered");
        }
    }

    private static async Task DisposeAsync(Pair pair)
    {
        // A disposal that resets waits a moment on the connection's clock: let virtual time run.
        var disposing = Task.WhenAll(pair.Client.DisposeAsync().AsTask(), pair.Server.DisposeAsync().AsTask());
        while (!disposing.IsCompleted)
        {
            pair.Time.Advance(Step);
            await Task.WhenAny(disposing, Task.Delay(10));
        }

        await disposing.WithTimeout();
        await pair.Listener.DisposeAsync();
    }

    [Fact]
    public async Task An_idle_connection_sends_one_keepalive_per_idle_interval_and_the_server_only_answers()
    {
        var pair = await CreateAsync();
        try
        {
            var idle = TimeSpan.FromSeconds(120);
            await IdleAsync(pair, idle);
            var client = pair.Client.Statistics;
            var server = pair.Server.Statistics;
            output.WriteLine($"{idle.TotalSeconds} s idle: client PINGs {client.PingsSent}, server PINGs {server.PingsSent}");

            // IdleKeepAliveInterval 20 s x U(0.75, 1.25): one PING every 15-25 s (500 ms keepalives would be 240 per side).
            Assert.InRange(client.PingsSent, 4, 9);
            Assert.Equal(0, server.PingsSent);
            Assert.Equal(0, client.Moves);
            Assert.Equal(MobileConnectionState.Connected, pair.Client.State);
            Assert.Equal(MobileConnectionState.Connected, pair.Server.State);

            // Data still flows both ways after the idle period.
            var data = RandomNumberGenerator.GetBytes(1000);
            await pair.Client.Stream.WriteAsync(data).WithTimeout();
            var received = new byte[data.Length];
            await pair.Server.Stream.ReadExactlyAsync(received).WithTimeout();
            Assert.Equal(data, received);
        }
        finally
        {
            await DisposeAsync(pair);
        }
    }

    [Fact]
    public async Task A_write_on_an_idle_connection_whose_path_died_is_noticed_within_max_of_one_second_and_four_rtt()
    {
        var pair = await CreateAsync();
        try
        {
            await IdleAsync(pair, TimeSpan.FromSeconds(60));
            long? lostAt = null;
            pair.Client.Diagnostic += (_, e) =>
            {
                if (e.Kind == MobileConnectionEventKind.PathLost)
                {
                    lostAt ??= e.Timestamp;
                }
            };

            pair.Network.RemoveAddress(ServerAddress); // black hole: no RST, no event
            var pingsBefore = pair.Client.Statistics.PingsSent;
            var writtenAt = pair.Time.GetTimestamp();
            await pair.Client.Stream.WriteAsync(new byte[1000]).WithTimeout();
            var options = new MobileConnectionOptions();
            for (var t = TimeSpan.Zero; lostAt is null && t < TimeSpan.FromSeconds(30); t += Step)
            {
                pair.Time.Advance(Step);
                await Task.Delay(5);
            }

            Assert.NotNull(lostAt);
            var detection = pair.Time.GetElapsedTime(writtenAt, lostAt.Value);
            var probes = pair.Client.Statistics.PingsSent - pingsBefore;
            output.WriteLine($"dead path noticed {detection.TotalMilliseconds:0} ms (virtual) after the write, {probes} PINGs");

            // The idle keepalives measured the path's RTT (2 ms here), so it is dead after
            // max(DeadPathTimeoutMin, 4 x smoothed RTT) = 1 s without a frame back (the tick comes
            // 1 ms after that deadline; this loop advances in 100 ms steps), probed every 250 ms.
            Assert.InRange(detection, options.DeadPathTimeoutMin, options.DeadPathTimeoutMin + Step);
            Assert.InRange(probes, 1, 5);
        }
        finally
        {
            await DisposeAsync(pair);
        }
    }

    [Fact]
    public async Task The_server_declares_an_idle_flow_dead_only_after_missing_the_clients_keepalives()
    {
        var pair = await CreateAsync();
        try
        {
            await IdleAsync(pair, TimeSpan.FromSeconds(5));
            long? lostAt = null;
            pair.Server.Diagnostic += (_, e) =>
            {
                if (e.Kind == MobileConnectionEventKind.PathLost)
                {
                    lostAt ??= e.Timestamp;
                }
            };

            pair.Network.RemoveAddress(ClientAddress); // the client vanishes
            var goneAt = pair.Time.GetTimestamp();
            for (var t = TimeSpan.Zero; lostAt is null && t < TimeSpan.FromSeconds(90); t += Step)
            {
                pair.Time.Advance(Step);
                await Task.Delay(1);
            }

            Assert.NotNull(lostAt);
            var detection = pair.Time.GetElapsedTime(goneAt, lostAt.Value);
            output.WriteLine($"server noticed the silent client after {detection.TotalSeconds:0.0} s (virtual)");
            var options = new MobileListenerOptions();
            var limit = (options.IdleKeepAliveInterval * 2) + options.DeadPathTimeout;
            Assert.InRange(detection, limit - TimeSpan.FromSeconds(5), limit + TimeSpan.FromSeconds(1));
            Assert.Equal(0, pair.Server.Statistics.PingsSent);
        }
        finally
        {
            await DisposeAsync(pair);
        }
    }
}
