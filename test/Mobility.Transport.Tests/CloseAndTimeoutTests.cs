namespace Mobility.Transport.Tests;

public class CloseAndTimeoutTests
{
    private static async Task<(MobileListener Listener, MobileConnector Connector, TestLocator Locator, MobileConnection Client, MobileConnection Server, Func<int, IPAddress> ClientAddress, Func<int, IPAddress> ServerAddress)> LoopbackPairAsync()
    {
        var net = LoopbackScenario.NextSubnet();
        IPAddress C(int i) => IPAddress.Parse($"127.{net}.1.{i + 1}");
        IPAddress S(int i) => IPAddress.Parse($"127.{net}.2.{i + 1}");
        var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(S(0), 0));
        var locator = new TestLocator();
        locator.Set(Keys.Server.Guid, listener.LocalEndPoint);
        var connector = new MobileConnector(Keys.Client, new MobileConnectionOptions { LocalAddress = C(0) });
        var accept = listener.AcceptAsync().AsTask();
        var client = await connector.ConnectAsync(Keys.Server.Guid, locator).WithTimeout();
        var server = await accept.WithTimeout();
        return (listener, connector, locator, client, server, C, S);
    }

    [Fact]
    public async Task Half_close_during_a_client_move_delivers_everything_then_end_of_stream()
    {
        var (listener, connector, _, client, server, c, _) = await LoopbackPairAsync();
        await using var _l = listener;
        await using var _c = client;
        await using var _s = server;
        var request = RandomNumberGenerator.GetBytes(1 << 20);
        await client.Stream.WriteAsync(request).WithTimeout();
        client.ShutdownWrite();
        connector.NotifyLocalAddressChanged(c(1));

        var (length, hash) = await PatternSource.ReceiveAsync(server.Stream).WithTimeout();
        Assert.Equal(request.Length, length);
        Assert.Equal(SHA256.HashData(request), hash);

        // The other direction still works after the client's FIN, and across another move. Wait until
        // the first move has resumed, so the second is a move of its own and not folded into the first.
        for (var waited = 0; client.Statistics.Moves < 1; waited += 10)
        {
            Assert.True(waited < 30_000, "the first move never resumed");
            await Task.Delay(10);
        }

        var reply = RandomNumberGenerator.GetBytes(1 << 20);
        var write = server.Stream.WriteAsync(reply).AsTask();
        connector.NotifyLocalAddressChanged(c(2));
        await write.WithTimeout();
        var closeServer = server.CloseAsync();
        var (replyLength, replyHash) = await PatternSource.ReceiveAsync(client.Stream).WithTimeout();
        Assert.Equal(reply.Length, replyLength);
        Assert.Equal(SHA256.HashData(reply), replyHash);
        await client.CloseAsync().WithTimeout();
        await closeServer.WithTimeout();
        Assert.Equal(MobileConnectionState.Completed, client.State);
        Assert.Equal(MobileConnectionState.Completed, server.State);
        Assert.True(client.Statistics.Moves >= 2);
    }

    [Fact]
    public async Task Close_with_moves_of_both_ends_in_the_middle_completes_on_both_sides()
    {
        var (listener, connector, locator, client, server, c, s) = await LoopbackPairAsync();
        await using var _l = listener;
        await using var _c = client;
        await using var _s = server;
        var data = RandomNumberGenerator.GetBytes(256 * 1024);
        await client.Stream.WriteAsync(data).WithTimeout();
        await server.Stream.WriteAsync(data).WithTimeout();
        var closeClient = client.CloseAsync();
        var closeServer = server.CloseAsync();

        // Both FINs are (maybe) in flight: move both ends now.
        var endpoint = await listener.RebindAsync(new IPEndPoint(s(1), 0)).WithTimeout();
        locator.Push(Keys.Server.Guid, endpoint);
        connector.NotifyLocalAddressChanged(c(1));

        var (a, ha) = await PatternSource.ReceiveAsync(server.Stream).WithTimeout();
        var (b, hb) = await PatternSource.ReceiveAsync(client.Stream).WithTimeout();
        Assert.Equal(data.Length, a);
        Assert.Equal(data.Length, b);
        Assert.Equal(SHA256.HashData(data), ha);
        Assert.Equal(SHA256.HashData(data), hb);
        await closeClient.WithTimeout();
        await closeServer.WithTimeout();
        Assert.Equal(MobileConnectionState.Completed, client.State);
        Assert.Equal(MobileConnectionState.Completed, server.State);
        await Assert.ThrowsAsync<InvalidOperationException>(() => client.Stream.WriteAsync(new byte[1]).AsTask());
    }

    [Fact]
    public async Task Dispose_without_close_resets_the_peer()
    {
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var client = await new MobileConnector(Keys.Client).ConnectAsync(listener.LocalEndPoint).WithTimeout();
        await using var server = await listener.AcceptAsync().WithTimeout();
        await client.DisposeAsync();
        var e = await Assert.ThrowsAsync<MobileConnectionException>(() => server.Stream.ReadAsync(new byte[1]).AsTask().WithTimeout());
        Assert.Equal(MobileConnectionError.ResetByPeer, e.Error);
    }

    [Fact]
    public async Task Abort_fails_at_once_keeps_the_first_reason_and_resets_the_peer()
    {
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var client = await new MobileConnector(Keys.Client).ConnectAsync(listener.LocalEndPoint).WithTimeout();
        await using var server = await listener.AcceptAsync().WithTimeout();
        var pendingRead = client.Stream.ReadAsync(new byte[1]).AsTask();
        client.Abort("first reason");
        client.Abort("second reason");
        Assert.Equal(MobileConnectionState.Failed, client.State);
        Assert.True(client.Closed.IsCancellationRequested);
        var own = await Assert.ThrowsAsync<MobileConnectionException>(() => pendingRead.WithTimeout());
        Assert.Equal((MobileConnectionError.Aborted, "first reason"), (own.Error, own.Message));
        await Assert.ThrowsAsync<MobileConnectionException>(() => client.Stream.WriteAsync(new byte[1]).AsTask().WithTimeout());
        var peer = await Assert.ThrowsAsync<MobileConnectionException>(() => server.Stream.ReadAsync(new byte[1]).AsTask().WithTimeout());
        Assert.Equal(MobileConnectionError.ResetByPeer, peer.Error);
        await client.DisposeAsync().AsTask().WithTimeout();
        Assert.Equal("first reason", client.Failure!.Message);
    }
}
