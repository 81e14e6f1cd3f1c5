namespace Mobility.Transport.Tests;

/// <summary>
/// The pathless timeout, on the simulated network in virtual time (<see cref="VirtualClock"/>): keepalives
/// every 100 ms, a path dead after 400 ms of silence and a connection given up 1.5 s after its last path,
/// timings a loaded machine cannot distort (on the wall clock a starved test thread made a live path look
/// dead, or a timeout pass before the step it checks).
/// </summary>
[Collection("Timing")]
public sealed class PathlessTimeoutTests
{
    private static readonly IPAddress ClientAddress = IPAddress.Parse("198.51.100.21");
    private static readonly IPAddress ServerAddress = IPAddress.Parse("203.0.113.21");

    /// <summary>The network with both hosts on it, and the client's options (keepalives, dead path, resume attempts).</summary>
    private static (SimulatedNetwork Network, MobileConnectionOptions Options) Create(VirtualClock clock)
    {
        var network = new SimulatedNetwork(TimeSpan.FromMilliseconds(5), clock.Time);
        network.AddAddress(ClientAddress);
        network.AddAddress(ServerAddress);
        return (network, new MobileConnectionOptions
        {
            FlowFactory = network,
            LocalAddress = ClientAddress,
            TimeProvider = clock.Time,
            KeepAliveInterval = TimeSpan.FromMilliseconds(100),
            IdleKeepAliveInterval = TimeSpan.FromMilliseconds(200), // idle: only keepalives find the dead path
            DeadPathTimeout = TimeSpan.FromMilliseconds(400),
            ResumeAttemptTimeout = TimeSpan.FromMilliseconds(300),
        });
    }

    [Fact]
    public async Task The_server_gives_up_after_its_pathless_timeout_and_the_returning_client_learns_the_connection_is_gone()
    {
        await using var clock = new VirtualClock(TimeSpan.FromMilliseconds(1));
        var (network, options) = Create(clock);
        await using var listener = new MobileListener(Keys.Server, new MobileListenerOptions
        {
            ListenerFactory = network,
            TimeProvider = clock.Time,
            KeepAliveInterval = TimeSpan.FromMilliseconds(100),
            IdleKeepAliveInterval = TimeSpan.FromMilliseconds(200),
            DeadPathTimeout = TimeSpan.FromMilliseconds(400),
            PathlessTimeout = TimeSpan.FromSeconds(1.5),
        });
        listener.Start(new IPEndPoint(ServerAddress, 443));
        options.PathlessTimeout = TimeSpan.FromSeconds(60);   // the client would wait much longer
        await using var client = await new MobileConnector(Keys.Client, options).ConnectAsync(listener.LocalEndPoint).WithTimeout();
        await using var server = await listener.AcceptAsync().WithTimeout();

        network.RemoveAddress(ClientAddress);   // the client drops off the network
        var e = await Assert.ThrowsAsync<MobileConnectionException>(() => server.Stream.ReadAsync(new byte[1]).AsTask().WithTimeout());
        Assert.Equal(MobileConnectionError.NoPath, e.Error);
        Assert.Equal(MobileConnectionState.Failed, server.State);
        Assert.DoesNotContain(server, listener.Connections);

        network.AddAddress(ClientAddress);      // back: its resume finds no connection and it fails fast
        var c = await Assert.ThrowsAsync<MobileConnectionException>(() => client.Stream.ReadAsync(new byte[1]).AsTask().WithTimeout());
        Assert.Equal(MobileConnectionError.UnknownToPeer, c.Error);
        Assert.Equal(MobileConnectionState.Failed, client.State);
    }

    [Fact]
    public async Task Without_any_path_reads_and_writes_fail_clearly_after_the_pathless_timeout()
    {
        await using var clock = new VirtualClock(TimeSpan.FromMilliseconds(1));
        var (network, options) = Create(clock);
        await using var listener = new MobileListener(Keys.Server, new MobileListenerOptions { ListenerFactory = network, TimeProvider = clock.Time });
        listener.Start(new IPEndPoint(ServerAddress, 443));
        options.PathlessTimeout = TimeSpan.FromSeconds(1.5);
        await using var client = await new MobileConnector(Keys.Client, options).ConnectAsync(listener.LocalEndPoint).WithTimeout();
        await using var server = await listener.AcceptAsync().WithTimeout();

        network.RemoveAddress(ServerAddress); // The server vanishes without a word.
        var read = client.Stream.ReadAsync(new byte[10]).AsTask();
        var e = await Assert.ThrowsAsync<MobileConnectionException>(() => read.WithTimeout());
        Assert.Equal(MobileConnectionError.NoPath, e.Error);
        Assert.Contains("No path to peer", e.Message, StringComparison.Ordinal);
        Assert.Contains("1.5 s", e.Message, StringComparison.Ordinal);
        var w = await Assert.ThrowsAsync<MobileConnectionException>(() => client.Stream.WriteAsync(new byte[10]).AsTask().WithTimeout());
        Assert.Same(e, w);
        Assert.True(client.Statistics.ResumeAttempts >= 2, "the client should have kept retrying");
        Assert.Equal(MobileConnectionState.Failed, client.State);
    }
}
