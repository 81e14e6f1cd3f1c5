namespace Mobility.Transport.Tests;

/// <summary>
/// The list beyond <see cref="SecurityTests"/> and <see cref="CloseAndTimeoutTests"/>: an
/// impostor resume racing a genuine move and a replay during the next move are refused while the
/// connection carries on; a server half-close during a server move. (The server's own pathless timeout,
/// after which the client learns the connection is gone: <see cref="PathlessTimeoutTests"/>.)
/// </summary>
public sealed class MoveEdgeTests
{
    [Fact]
    public async Task Impostor_resumes_racing_a_move_and_a_replay_during_the_next_move_are_refused_while_the_connection_carries_on()
    {
        var net = LoopbackScenario.NextSubnet();
        var recorder = new RecordingFlowFactory();
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Parse($"127.{net}.2.1"), 0));
        var connector = new MobileConnector(Keys.Client, new MobileConnectionOptions { FlowFactory = recorder, LocalAddress = IPAddress.Parse($"127.{net}.1.1") });
        var accept = listener.AcceptAsync().AsTask();
        await using var client = await connector.ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid).WithTimeout();
        await using var server = await accept.WithTimeout();

        // Move 1, raced by impostors who know the (clear-text) token and GUIDs but not the resume key,
        // one with a counter far ahead so that a naive "highest counter wins" would let it in.
        connector.NotifyLocalAddressChanged(IPAddress.Parse($"127.{net}.1.2"));
        var forged = await Task.WhenAll(new ulong[] { 1, 2, 1_000_000 }.Select(counter =>
            RawHandshake.ExchangeAsync(listener.LocalEndPoint, ResumeRequest.Create(RandomNumberGenerator.GetBytes(32), client.ClientGuid, client.ServerGuid, client.Token, counter, 0).ToArray()))).WithTimeout();
        Assert.All(forged, answer => Assert.Equal(new HandshakeReject(RejectReason.ResumeRefused).ToArray(), answer));
        await TestTimeout.Eventually(() => server.Statistics.Moves == 1, "the genuine resume of move 1 is accepted");
        await ConnectionAssert.CarriesOnAsync(client, server, 64 * 1024);

        // Move 2, with the genuine Resume of move 1 replayed at once.
        var genuine = recorder.FirstWrites[1][..ResumeRequest.EncodedSize];
        connector.NotifyLocalAddressChanged(IPAddress.Parse($"127.{net}.1.3"));
        Assert.Equal(new HandshakeReject(RejectReason.ResumeRefused).ToArray(), await RawHandshake.ExchangeAsync(listener.LocalEndPoint, genuine));
        await TestTimeout.Eventually(() => server.Statistics.Moves == 2, "the genuine resume of move 2 is accepted");
        await ConnectionAssert.CarriesOnAsync(client, server, 64 * 1024);
        Assert.Equal(MobileConnectionState.Connected, server.State);
        Assert.True(server.ResumesRejected >= 4, $"rejected: {server.ResumesRejected}");
    }

    [Fact]
    public async Task Server_half_close_during_a_server_move_delivers_everything_then_end_of_stream_and_the_other_way_goes_on()
    {
        var net = LoopbackScenario.NextSubnet();
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Parse($"127.{net}.2.1"), 0));
        var locator = new TestLocator();
        locator.Set(Keys.Server.Guid, listener.LocalEndPoint);
        var connector = new MobileConnector(Keys.Client, new MobileConnectionOptions { LocalAddress = IPAddress.Parse($"127.{net}.1.1") });
        var accept = listener.AcceptAsync().AsTask();
        await using var client = await connector.ConnectAsync(Keys.Server.Guid, locator).WithTimeout();
        await using var server = await accept.WithTimeout();

        var reply = RandomNumberGenerator.GetBytes(1 << 20);
        var receiving = PatternSource.ReceiveAsync(client.Stream);
        await server.Stream.WriteAsync(reply).WithTimeout();
        server.ShutdownWrite();
        var moved = await listener.RebindAsync(new IPEndPoint(IPAddress.Parse($"127.{net}.2.2"), 0)).WithTimeout();
        locator.Push(Keys.Server.Guid, moved);

        var (length, hash) = await receiving.WithTimeout();
        Assert.Equal(reply.Length, length);
        Assert.Equal(SHA256.HashData(reply), hash);

        await TestTimeout.Eventually(() => moved.Equals(client.RemoteEndPoint), "the client resumed at the server's new address");

        // The client's direction is still open, over the server's new address.
        var request = RandomNumberGenerator.GetBytes(256 * 1024);
        var serverReceiving = PatternSource.ReceiveAsync(server.Stream);
        await client.Stream.WriteAsync(request).WithTimeout();
        var close = client.CloseAsync();
        var (requestLength, requestHash) = await serverReceiving.WithTimeout();
        Assert.Equal(request.Length, requestLength);
        Assert.Equal(SHA256.HashData(request), requestHash);
        await close.WithTimeout();
        await server.CloseAsync().WithTimeout();
        Assert.Equal(MobileConnectionState.Completed, client.State);
        Assert.Equal(MobileConnectionState.Completed, server.State);
        Assert.True(client.Statistics.Moves >= 1);
    }
}
