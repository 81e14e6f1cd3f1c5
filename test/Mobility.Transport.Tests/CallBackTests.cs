using Mobility.Protocol.Transport;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Tests;

/// <summary>
/// The call back (docs/transport.md, "Call back"), in virtual time on the simulated network (one-way 100 ms, RTT
/// 200 ms, first flights taken, as <see cref="MoveBoundTests"/>): a server that moved opens a flow from its new
/// address to its client's listener and sends a CallBack; the client resumes on that flow. And what must do
/// nothing: forged, replayed or unknown call backs, from strangers or not.
/// </summary>
[Collection("Timing")]
public sealed class CallBackTests(ITestOutputHelper output)
{
    private static readonly IPAddress ClientA = SimulatedMoveTests.ClientA;
    private static readonly IPAddress ClientB = SimulatedMoveTests.ClientB;
    private static readonly IPAddress ServerA = SimulatedMoveTests.ServerA;
    private static readonly IPAddress ServerB = SimulatedMoveTests.ServerB;
    private static readonly IPAddress Stranger = IPAddress.Parse("192.0.2.66");

    /// <summary>What the virtual clock's step and the loops' own hops may add to a bound (10 ms at 200 ms RTT).</summary>
    private const double Slack = 0.05;

    private static async Task<SimulatedMoveTests.Pair> CreateAsync(bool callBacks = true)
    {
        var pair = await SimulatedMoveTests.CreateAsync(callBacks: callBacks);
        pair.Network.FirstFlights = FirstFlightMode.Taken;
        return pair;
    }

    private static double Rtts(SimulatedMoveTests.Pair pair, long from, long to) => pair.Time.GetElapsedTime(from, to) / pair.Network.Rtt;

    /// <summary>
    /// The both-move cases' stream up to the moves: the server says it drops a first flight's gap (CANDIDATES flag bit 2:
    /// only then does the client's first flight start where its bytes stopped leaving the host), 8 KiB cross and measure
    /// the path's RTT (the call back's look-again spacing), then 8 KiB leave the client's host and are on their way to the
    /// server's old address when both move. Returns the 24 KiB to send and the buffer the server reads them into.
    /// </summary>
    private static async Task<(byte[] Sent, byte[] Received)> StreamUntilBothMoveAsync(SimulatedMoveTests.Pair pair, int seed)
    {
        var (client, server) = pair.Connections[0];
        server.SetDirectCandidates(false, [new DirectCandidate(DirectCandidateKind.Local, new IPEndPoint(ServerA, 7391))]);
        await TestTimeout.Eventually(() => client.PeerCandidates.Count > 0, "the server's CANDIDATES reached the client");

        var sent = new byte[24 * 1024];
        new Random(seed).NextBytes(sent);
        var received = new byte[sent.Length];
        await client.Stream.WriteAsync(sent.AsMemory(0, 8 * 1024)).WithTimeout();
        await server.Stream.ReadExactlyAsync(received.AsMemory(0, 8 * 1024)).WithTimeout();
        await TestTimeout.Eventually(() => server.Statistics.LastRtt is not null, "the server measured the path's RTT");

        await client.Stream.WriteAsync(sent.AsMemory(8 * 1024, 8 * 1024)).WithTimeout();
        await Task.Delay(TimeSpan.FromMilliseconds(10), pair.Time).WithTimeout();
        return (sent, received);
    }

    private static string Timeline(SimulatedMoveTests.Pair pair, MobileConnection connection)
        => connection.Moves.Count == 0 ? "(no move)" : string.Join(", ", connection.Moves[^1].Events.Select(e => $"{e.Kind} +{e.At / pair.Network.Rtt:0.00}"));

    [Fact]
    public async Task A_server_move_delivers_the_clients_next_byte_one_rtt_after_the_servers_address_event_with_no_push()
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        var lookups = pair.Locator.Lookups;
        var attempts = client.Statistics.ResumeAttempts;

        var t0 = pair.Time.GetTimestamp();
        await pair.MoveServerAsync(ServerA, ServerB); // the server's address event: the listener rebinds, the path on ServerA is dropped
        await SimulatedMoveTests.WriteBothAsync(client, server);
        var (clientGot, serverGot) = await SimulatedMoveTests.ReadBothAsync(pair.Time, client, server);

        var toServer = Rtts(pair, t0, serverGot);
        var toClient = Rtts(pair, t0, clientGot);
        output.WriteLine($"server move, call back, no push: client->server data {toServer:0.00} RTT, server->client data {toClient:0.00} RTT after the server's address event");
        output.WriteLine($"  client: {Timeline(pair, client)}");
        output.WriteLine($"  server: {Timeline(pair, server)}");
        // CallBack in the server's SYN (0.5), the client's Resume and data right behind the SYN-ACK (1.0).
        Assert.InRange(toServer, 0.9, 1.0 + Slack);
        Assert.InRange(toClient, 1.4, 1.5 + Slack);
        Assert.Equal(ServerB, client.RemoteEndPoint!.Address);
        Assert.Equal(443, client.RemoteEndPoint!.Port); // dialled from the listener's port: the client sees the published endpoint
        Assert.Equal(1, pair.Network.PortedFirstFlights);
        Assert.Equal(attempts, client.Statistics.ResumeAttempts); // the client dialled nothing and looked nothing up
        Assert.Equal(lookups, pair.Locator.Lookups);
        Assert.Equal((1, 0, 0), server.CallBackCounts);
        Assert.Equal((0, 1, 0), client.CallBackCounts);
        Assert.Equal(1, client.Statistics.Moves);
        Assert.Equal(1, server.Statistics.Moves);
        Assert.Equal(0, server.Statistics.ResumesRejected);
        Assert.Contains(client.Moves[^1].Events, e => e.Kind == MoveEventKind.CallBackReceived);
        Assert.Contains(server.Moves[^1].Events, e => e.Kind == MoveEventKind.CallBackSent);
        ConnectionAssert.NoLossOrDuplicate(client, server);

        // The connection goes on normally on the called-back path (and a push of the endpoint it already uses changes nothing).
        pair.Locator.Push(Keys.Server.Guid, new IPEndPoint(ServerB, 443));
        await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);
        Assert.Equal(1, client.Statistics.Moves);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    /// <summary>
    /// The netlab lost a CallBack's SYN now and then (its new address's first packets), and the kernel's retransmission
    /// came 1 s later. The new address drops everything for a quarter of an RTT after the move: the first CallBack is
    /// lost, the target is dialled again after 2 x RTT (the server's last RTT), and the client resumes on that one.
    /// Without the race nothing reached the client until its own dead-path bound (1 s, 5 RTT here) and lookups.
    /// </summary>
    [Fact]
    public async Task A_call_back_whose_syn_is_lost_is_dialled_again_after_two_rtt()
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);
        await TestTimeout.Eventually(() => server.Statistics.LastRtt is not null, "the server measured the path's RTT");

        var t0 = pair.Time.GetTimestamp();
        pair.Network.DropTraffic(ServerB);
        await pair.MoveServerAsync(ServerA, ServerB);
        await Task.Delay(pair.Network.Rtt / 4, pair.Time).WithTimeout();
        pair.Network.RestoreTraffic(ServerB);
        await SimulatedMoveTests.WriteBothAsync(client, server);
        var (clientGot, serverGot) = await SimulatedMoveTests.ReadBothAsync(pair.Time, client, server);

        var toServer = Rtts(pair, t0, serverGot);
        output.WriteLine($"server move, first CallBack lost: client->server data {toServer:0.00} RTT after the server's address event");
        output.WriteLine($"  client: {Timeline(pair, client)}");
        output.WriteLine($"  server: {Timeline(pair, server)}");
        // Dialled again at 2 RTT: the CallBack at 2.5, the client's Resume and data at the server at 3.0. The second try
        // comes from an ephemeral port: the first, still waiting for its SYN-ACK, holds the listener port's 4-tuple (the
        // simulated network refuses a second connect from it, as the kernel does).
        Assert.InRange(toServer, 2.9, 3.0 + Slack);
        Assert.NotEqual(443, client.RemoteEndPoint!.Port);
        Assert.Equal((0, 1, 0), client.CallBackCounts);
        Assert.Equal(1, server.CallBackCounts.Sent);
        Assert.Equal(1, client.Statistics.Moves);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    [Fact]
    public async Task Without_call_backs_a_server_move_with_no_push_is_not_noticed_within_the_bound()
    {
        // The same move as above with call backs off: the client learns nothing for at least the dead-path time.
        await using var pair = await CreateAsync(callBacks: false);
        var (client, server) = pair.Connections[0];
        var t0 = pair.Time.GetTimestamp();
        await pair.MoveServerAsync(ServerA, ServerB);
        await SimulatedMoveTests.WriteBothAsync(client, server);
        await Task.Delay(pair.Network.Rtt * 3, pair.Time).WithTimeout();
        Assert.Equal(0, server.Statistics.BytesReceived - 1);
        Assert.Equal(0, client.Statistics.Moves);
        Assert.True(Rtts(pair, t0, pair.Time.GetTimestamp()) >= 3);
    }

    [Fact]
    public async Task On_a_slow_starting_flow_with_a_stale_ack_the_call_back_names_the_servers_position_and_the_first_window_carries_new_bytes()
    {
        await using var pair = await CreateAsync();
        pair.Network.SlowStart = true;
        var (client, server) = pair.Connections[0];
        var held = new byte[48 * 1024];
        await client.Stream.WriteAsync(held).WithTimeout();
        await server.Stream.ReadExactlyAsync(new byte[held.Length]).WithTimeout();

        // The server moves as it got those bytes: the ACKs it sends from now on are lost with its old address, so the
        // client's idea of what the server holds is up to 48 KiB behind.
        var resentBefore = client.Statistics.BytesResent;
        var t0 = pair.Time.GetTimestamp();
        var moved = pair.MoveServerAsync(ServerA, ServerB);
        var fresh = new byte[40 * 1024];
        Random.Shared.NextBytes(fresh);
        var firstRead = Task.Run(async () =>
        {
            var buffer = new byte[fresh.Length];
            var n = await server.Stream.ReadAsync(buffer);
            var at = pair.Time.GetTimestamp();
            await server.Stream.ReadExactlyAsync(buffer.AsMemory(n));
            Assert.Equal(fresh, buffer);
            return at;
        });
        await client.Stream.WriteAsync(fresh).WithTimeout();
        await moved;
        var serverGot = await firstRead.WithTimeout();

        var toServer = Rtts(pair, t0, serverGot);
        var resent = client.Statistics.BytesResent - resentBefore;
        output.WriteLine($"server move, stale ACK, slow start: first new byte at the server {toServer:0.00} RTT after its address event; {resent} bytes resent");
        output.WriteLine($"  client: {Timeline(pair, client)}");
        // The CallBack (0.5 RTT), then the Resume and the first new frame in the first window right behind the SYN-ACK.
        Assert.InRange(toServer, 1.0, 1.0 + Slack);
        // Only the bytes lost with the old path went again, none of the 48 KiB the server had before its ACKs were lost.
        Assert.True(resent <= fresh.Length, $"{resent} bytes resent: the data behind the Resume started below the server's position");
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    [Fact]
    public async Task A_call_back_whose_resume_goes_unanswered_is_given_up_and_the_client_resumes_on_its_own()
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        await pair.MoveServerAsync(ServerA, ServerB);
        pair.Locator.Set(Keys.Server.Guid, new IPEndPoint(ServerB, 443)); // the record is current; no push comes

        // The client acts on the CallBack (at 0.5 RTT); then nothing from the server's new address arrives any more.
        await TestTimeout.Eventually(() => client.CallBackCounts.Accepted == 1, "the client took the call back");
        pair.Network.DropTraffic(ServerB);
        await Task.Delay(pair.Network.Rtt * 2, pair.Time).WithTimeout();
        pair.Network.RestoreTraffic(ServerB);

        // The called-back path, its Resume unanswered, dies like any silent path; the client's own resume takes over.
        await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);
        output.WriteLine($"  client: {Timeline(pair, client)}");
        Assert.Equal(MobileConnectionState.Connected, client.State);
        Assert.Equal(ServerB, client.RemoteEndPoint!.Address);
        // Its own resume went first to where the server called from (4.0 RTT after the CallBack; to the old endpoint
        // the locator last gave, then a lookup, it took 14.4 RTT).
        var resumed = client.Moves[^1].Events.Last(e => e.Kind == MoveEventKind.ResumeAnswered).At / pair.Network.Rtt;
        Assert.InRange(resumed, 3.0, 6.0);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    /// <summary>Opens a flow from <paramref name="from"/> to the client's listener and sends <paramref name="message"/>: what comes back, and whether the flow was closed.</summary>
    private static Task<(int BytesBack, bool Closed)> SendRawAsync(SimulatedMoveTests.Pair pair, IPAddress from, byte[] message)
        => RawHandshake.SendAsync(pair.Network, SimulatedMoveTests.ClientListenerEndPoint, from, message);

    [Fact]
    public async Task Forged_and_unknown_call_backs_from_a_stranger_are_dropped_and_change_nothing()
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        pair.Network.AddAddress(Stranger);
        var path = client.RemoteEndPoint;
        var attempts = client.Statistics.ResumeAttempts;
        var genuine = server.SealCallBack(1);
        var wrongKey = CallBackRequest.Create(new byte[32], Keys.Client.Guid, Keys.Server.Guid, client.Token, 1, 0);
        var badMac = genuine.ToArray();
        badMac[^1] ^= 1;
        var unknownToken = CallBackRequest.Create(new byte[32], Keys.Client.Guid, Keys.Server.Guid, client.Token ^ 1, 1, 0);
        var otherClient = CallBackRequest.Create(new byte[32], Keys.Other.Guid, Keys.Server.Guid, client.Token, 1, 0);
        var otherServer = CallBackRequest.Create(new byte[32], Keys.Client.Guid, Keys.Other.Guid, client.Token, 1, 0);

        byte[][] forged = [wrongKey.ToArray(), badMac, unknownToken.ToArray(), otherClient.ToArray(), otherServer.ToArray()];
        foreach (var message in forged)
        {
            var (back, closed) = await SendRawAsync(pair, Stranger, message);
            Assert.Equal(0, back);   // nothing is sent to a stranger: no Resume, no Reject
            Assert.True(closed);     // and the flow is closed at once
        }

        Assert.Equal(forged.Length, pair.ClientListener!.CallBacksDropped);
        Assert.Equal(0, pair.ClientListener.AdmittedFlows);
        Assert.Equal((0, 0, 2), client.CallBackCounts); // wrong key and bad MAC reached the connection and failed its MAC
        Assert.Equal(path, client.RemoteEndPoint);
        Assert.Equal(attempts, client.Statistics.ResumeAttempts);
        Assert.Equal(0, client.Statistics.Moves);
        Assert.Equal(MobileConnectionState.Connected, client.State);

        // The connection still works on its path.
        await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);
        Assert.Equal(path, client.RemoteEndPoint);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    [Fact]
    public async Task A_replayed_call_back_is_dropped_and_changes_nothing()
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        await pair.MoveServerAsync(ServerA, ServerB);
        await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);
        Assert.Equal((0, 1, 0), client.CallBackCounts);
        var path = client.RemoteEndPoint;
        var attempts = client.Statistics.ResumeAttempts;

        // The genuine call back (counter 1: its bytes are the same as the one that went) replayed by a stranger and from
        // the server's own address, and an older counter: dropped, nothing sent back.
        pair.Network.AddAddress(Stranger);
        foreach (var from in new[] { Stranger, ServerB })
        {
            var (back, closed) = await SendRawAsync(pair, from, server.SealCallBack(1).ToArray());
            Assert.Equal(0, back);
            Assert.True(closed);
        }

        Assert.Equal((0, 1, 2), client.CallBackCounts);
        Assert.Equal(path, client.RemoteEndPoint);
        Assert.Equal(attempts, client.Statistics.ResumeAttempts);
        Assert.Equal(1, client.Statistics.Moves);
        Assert.Equal(0, server.Statistics.ResumesRejected);
        await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);
        Assert.Equal(path, client.RemoteEndPoint);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    [Theory]
    [InlineData(0.0)]   // the push at the move: the client's own Resume reaches the server first
    [InlineData(0.5)]   // the push with the call back: both Resumes cross
    [InlineData(1.0)]   // the push after the call back's Resume was answered
    public async Task A_call_back_and_a_push_racing_end_on_one_path_with_every_byte_once(double pushAfterRtts)
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        var sent = new byte[200_000];
        new Random(7).NextBytes(sent);
        var received = new byte[sent.Length];
        var reader = Task.Run(async () => await server.Stream.ReadExactlyAsync(received));
        await client.Stream.WriteAsync(sent.AsMemory(0, 50_000));

        await pair.MoveServerAsync(ServerA, ServerB);
        var push = Task.Run(async () =>
        {
            await Task.Delay(pair.Network.Rtt * pushAfterRtts, pair.Time);
            pair.Locator.Push(Keys.Server.Guid, new IPEndPoint(ServerB, 443));
        });
        await client.Stream.WriteAsync(sent.AsMemory(50_000, 100_000));
        await push.WithTimeout();
        await client.Stream.WriteAsync(sent.AsMemory(150_000));
        await reader.WithTimeout();
        Assert.Equal(sent, received);

        // Settled: both ends on one path between the same endpoints, no standby, and data both ways.
        await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);
        output.WriteLine($"push after {pushAfterRtts} RTT: client moves {client.Statistics.Moves}, resume attempts {client.Statistics.ResumeAttempts}, " +
            $"refusals seen by the client {client.Statistics.ResumesRejected}, by the server {server.Statistics.ResumesRejected}; call backs {client.CallBackCounts}");
        output.WriteLine($"  client: {Timeline(pair, client)}");
        Assert.Equal(MobileConnectionState.Connected, client.State);
        Assert.Equal(MobileConnectionState.Connected, server.State);
        Assert.Equal(client.LocalEndPoint, server.RemoteEndPoint);
        Assert.Equal(client.RemoteEndPoint, server.LocalEndPoint);
        Assert.Equal(ServerB, client.RemoteEndPoint!.Address);
        Assert.Empty(client.StandbyPaths);
        Assert.Empty(server.StandbyPaths);
        Assert.True(server.Statistics.ResumesRejected <= 1, "at most the one late Resume of the losing flow is refused");
        ConnectionAssert.NoLossOrDuplicate(client, server);

        // No loop: nothing moves again while the connection carries data.
        var moves = (client.Statistics.Moves, server.Statistics.Moves);
        await Task.Delay(pair.Network.Rtt * 10, pair.Time).WithTimeout();
        await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);
        Assert.Equal(moves, (client.Statistics.Moves, server.Statistics.Moves));
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    /// <summary>
    /// Both move at once while the client streams (the netlab's both-move): the bytes in flight to the server's old
    /// address are lost with it, the client learns the server's new endpoint (a push at its own address event) and
    /// resumes with a first flight that holds all but the SYN's room for the ResumeAck (more than a first window is in
    /// doubt), and whose SYN misses the server's position: it starts at the last ACK, which is stale (the server has
    /// those bytes already; in the netlab it started where the bytes stopped leaving the host, beyond what the server
    /// held, and the server dropped it as a gap: docs/evaluation.md). A quarter of a round trip later the server learns the client's new listener endpoint (a
    /// push) and calls back; the CallBack reaches the client while its own Resume is unanswered. The client takes the
    /// call back (its flow's handshake is done and it names the server's position), answers with a newer Resume and the
    /// bytes from that position, and the server takes that Resume after the first: the lost bytes reach it 1.25 RTT
    /// after the moves, where dropping the call back left them to the ResumeAck and the resend behind it (1.5 RTT).
    /// </summary>
    [Fact]
    public async Task A_call_back_that_finds_the_clients_own_resume_holding_its_data_for_the_answer_is_answered_and_taken()
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        var (sent, received) = await StreamUntilBothMoveAsync(pair, seed: 11);
        var t0 = pair.Time.GetTimestamp();
        var clientListenerAfter = new IPEndPoint(ClientB, 443);
        var endpoint = await pair.MoveServerAsync(ServerA, ServerB);
        pair.Network.MoveAddress(ClientA, ClientB);
        await pair.ClientListener!.RebindAsync(clientListenerAfter).WithTimeout();
        var firstRead = Task.Run(async () =>
        {
            var n = await server.Stream.ReadAsync(received.AsMemory(8 * 1024));
            var at = pair.Time.GetTimestamp();
            await server.Stream.ReadExactlyAsync(received.AsMemory((8 * 1024) + n));
            return at;
        });
        await client.Stream.WriteAsync(sent.AsMemory(16 * 1024)).WithTimeout();   // written at the moves, before their detection
        pair.Locator.Push(Keys.Server.Guid, endpoint);
        pair.Connector.NotifyLocalAddressChanged(ClientB);
        await Task.Delay(pair.Network.Rtt / 4, pair.Time).WithTimeout();
        pair.Locator.Keep(Keys.Client.Guid, clientListenerAfter);
        pair.Locator.Push(Keys.Client.Guid, clientListenerAfter);   // the server hears of the client's new record
        var serverGot = await firstRead.WithTimeout();
        Assert.Equal(sent, received);

        var toServer = Rtts(pair, t0, serverGot);
        output.WriteLine($"both move, own Resume holding its data for the answer, call back a quarter RTT later: the lost bytes at the server {toServer:0.00} RTT after the moves");
        output.WriteLine($"  client: {Timeline(pair, client)}");
        output.WriteLine($"  server: {Timeline(pair, server)}");
        output.WriteLine($"  server dropped {server.Statistics.GapBytesDropped} bytes beyond its position, {server.Statistics.DuplicateBytesReceived} it had");
        // The CallBack reaches the client 0.75 RTT after the moves, its Resume and the bytes the server 0.5 RTT later.
        Assert.InRange(toServer, 1.25, 1.25 + Slack);
        Assert.True(server.Statistics.DuplicateBytesReceived > 0, "the own first flight started at the stale last ACK: bytes the server had");

        Assert.Equal((0, 1, 0), client.CallBackCounts);
        Assert.Contains(client.Moves[^1].Events, e => e.Kind == MoveEventKind.CallBackReceived);
        Assert.Equal(ServerB, client.RemoteEndPoint!.Address);
        Assert.Equal(clientListenerAfter, server.RemoteEndPoint);   // the connection goes on on the call back's flow
        Assert.Equal(0, server.Statistics.ResumesRejected);

        // Settled on one path, data both ways, every byte once.
        await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);
        Assert.Equal(MobileConnectionState.Connected, client.State);
        Assert.Equal(MobileConnectionState.Connected, server.State);
        Assert.Equal(client.LocalEndPoint, server.RemoteEndPoint);
        Assert.Equal(client.RemoteEndPoint, server.LocalEndPoint);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    /// <summary>
    /// Both move at once as above, but the server's watch of the client's record is down (it re-opens from the server's
    /// new address: tens of ms on a loaded host, the netlab's simultaneous moves), so no push comes: the client's update
    /// reaches the GNS an eighth of a round trip after the moves, after the server's first look at the record. The server
    /// looks again a quarter of a round trip apart while it calls back, finds the client's new listener endpoint at the
    /// first look again and calls it back: the lost bytes reach it 1.25 RTT after the moves, as with the push. Without
    /// the looks the call back never learns the new endpoint and the bytes wait for the client's own Resume (1.5 RTT).
    /// </summary>
    [Fact]
    public async Task A_call_back_whose_first_look_finds_the_clients_old_record_looks_again_and_reaches_the_client_that_moved_too()
    {
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        var (sent, received) = await StreamUntilBothMoveAsync(pair, seed: 12);
        var t0 = pair.Time.GetTimestamp();
        var clientListenerAfter = new IPEndPoint(ClientB, 443);
        pair.Locator.Set(Keys.Client.Guid, pair.ClientListener!.LocalEndPoint);   // what the GNS holds before the client's update
        pair.Locator.Forget(Keys.Client.Guid);   // the server's watch ran from its old address: no record is current
        var lookupsBefore = pair.Locator.LookupsOf(Keys.Client.Guid);
        var endpoint = await pair.MoveServerAsync(ServerA, ServerB);
        pair.Network.MoveAddress(ClientA, ClientB);
        await pair.ClientListener!.RebindAsync(clientListenerAfter).WithTimeout();
        var firstRead = Task.Run(async () =>
        {
            var n = await server.Stream.ReadAsync(received.AsMemory(8 * 1024));
            var at = pair.Time.GetTimestamp();
            await server.Stream.ReadExactlyAsync(received.AsMemory((8 * 1024) + n));
            return at;
        });
        await client.Stream.WriteAsync(sent.AsMemory(16 * 1024)).WithTimeout();
        pair.Locator.Push(Keys.Server.Guid, endpoint);
        pair.Connector.NotifyLocalAddressChanged(ClientB);
        await Task.Delay(pair.Network.Rtt / 8, pair.Time).WithTimeout();
        pair.Locator.Set(Keys.Client.Guid, clientListenerAfter);   // in the GNS now; no push (the server's watch is down)
        var serverGot = await firstRead.WithTimeout();
        Assert.Equal(sent, received);

        var toServer = Rtts(pair, t0, serverGot);
        output.WriteLine($"both move, no push to the server, its call back looks again: the lost bytes at the server {toServer:0.00} RTT after the moves");
        output.WriteLine($"  client: {Timeline(pair, client)}");
        output.WriteLine($"  server: {Timeline(pair, server)}");
        Assert.InRange(toServer, 1.25, 1.25 + Slack);
        Assert.Equal((0, 1, 0), client.CallBackCounts);
        Assert.Contains(server.Moves.SelectMany(m => m.Events), e => e.Kind == MoveEventKind.CallBackSent && e.Detail!.Contains("looked up again", StringComparison.Ordinal));
        Assert.Equal(clientListenerAfter, server.RemoteEndPoint);
        // The looks stop once one named a new target: the first look and one again.
        Assert.Equal(2, pair.Locator.LookupsOf(Keys.Client.Guid) - lookupsBefore);

        await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);
        Assert.Equal(MobileConnectionState.Connected, client.State);
        Assert.Equal(MobileConnectionState.Connected, server.State);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }

    [Fact]
    public async Task A_call_back_to_a_client_with_no_listener_endpoint_leaves_the_push_to_do_the_work()
    {
        // A client behind a NAT (or without a listener): its call back leads nowhere; the push still resumes it in the usual time.
        await using var pair = await CreateAsync();
        var (client, server) = pair.Connections[0];
        await pair.ClientListener!.DisposeAsync();   // no listener there: the call back's SYN is refused
        var endpoint = await pair.MoveServerAsync(ServerA, ServerB);
        var t0 = pair.Time.GetTimestamp();
        await SimulatedMoveTests.WriteBothAsync(client, server);
        pair.Locator.Push(Keys.Server.Guid, endpoint);
        var (clientGot, serverGot) = await SimulatedMoveTests.ReadBothAsync(pair.Time, client, server);
        output.WriteLine($"no listener: client->server {Rtts(pair, t0, serverGot):0.00} RTT, server->client {Rtts(pair, t0, clientGot):0.00} RTT after the push");
        Assert.InRange(Rtts(pair, t0, serverGot), 0.5, 0.5 + Slack);
        Assert.InRange(Rtts(pair, t0, clientGot), 1.0, 1.0 + Slack);
        Assert.Equal((1, 0, 0), server.CallBackCounts);
        Assert.Equal(0, server.Statistics.ResumesRejected);
        ConnectionAssert.NoLossOrDuplicate(client, server);
    }
}
