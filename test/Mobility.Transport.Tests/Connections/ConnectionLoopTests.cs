using System.Buffers.Binary;

namespace Mobility.Transport.Tests.Connections;

/// <summary>
/// The connection's loop (the single owner of its state and its only sealer) on a
/// <see cref="FakeTimeProvider"/>: a server-side <see cref="MobileConnection"/> over an in-memory
/// flow, with the test playing the client frame by frame.
/// </summary>
public sealed partial class ConnectionLoopTests : IAsyncDisposable
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(20000));
    private readonly MemoryFlow _flow = new();
    private readonly SessionSecrets _secrets;
    private readonly FrameProtector _peerSealer;
    private readonly FrameProtector _peerOpener;
    private ulong _peerCounter;

    public ConnectionLoopTests()
    {
        using var a = new EphemeralKey();
        using var b = new EphemeralKey();
        _secrets = a.DeriveSecrets(b.PublicKey, RandomNumberGenerator.GetBytes(32));
        _peerSealer = new FrameProtector(_secrets.ClientToServerKey, encrypt: true);
        _peerOpener = new FrameProtector(_secrets.ServerToClientKey, encrypt: true);
    }

    private MobileConnection Start(uint peerWindow = 1 << 20)
    {
        var connection = new MobileConnection(false, Keys.Server.Guid, Keys.Client.Guid, TransportRandom.Token(), _secrets, encrypt: true,
            peerWindow, new MobileTransportOptions { TimeProvider = _time }, null);
        connection.StartServer(_flow, _flow.IncomingReader());
        return connection;
    }

    private async Task SendAsync(FrameType type, byte[] body)
    {
        var frame = new byte[TransportFrame.WireSize(body.Length)];
        var n = _peerSealer.Seal(type, ++_peerCounter, body, frame);
        await _flow.Incoming.WriteAsync(frame.AsMemory(0, n));
    }

    private static byte[] U64(ulong value)
    {
        var body = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(body, value);
        return body;
    }

    private static byte[] Ack(ulong received, ulong consumed) => [.. U64(received), .. U64(consumed)];

    /// <summary>The next frame the connection wrote (opened with the peer's key).</summary>
    private async Task<(FrameType Type, byte[] Body)> ReceiveAsync()
    {
        while (true)
        {
            var result = await _flow.Sent.ReadAsync().AsTask().WithTimeout();
            if (TryTakeFrame(result.Buffer, out var frame, out var consumed))
            {
                _flow.Sent.AdvanceTo(consumed);
                return frame;
            }

            Assert.False(result.IsCompleted, "the flow ended before a whole frame");
            _flow.Sent.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    private bool TryTakeFrame(ReadOnlySequence<byte> buffer, out (FrameType Type, byte[] Body) taken, out SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (!TransportFrame.TryRead(ref reader, TransportConstants.MaxFrameLength, out var frame))
        {
            taken = default;
            consumed = buffer.Start;
            return false;
        }

        var body = new byte[frame.BodyLength];
        Assert.True(_peerOpener.TryOpen(frame, body, new byte[TransportConstants.MaxFrameWireSize + 64]));
        taken = (frame.Type, body);
        consumed = reader.Position;
        return true;
    }

    /// <summary>Skips ACKs; returns the next frame of <paramref name="type"/>.</summary>
    /// <summary>
    /// The next <paramref name="bytes"/> of the stream as DATA frames carry them (a path's frames start small
    /// and grow): the offset of the first and the payloads, which must follow each other.
    /// </summary>
    private async Task<(ulong Offset, byte[] Payload)> ReceiveStreamAsync(int bytes)
    {
        var payload = new List<byte>(bytes);
        ulong first = 0;
        while (payload.Count < bytes)
        {
            var body = await ReceiveAsync(FrameType.Data);
            var offset = BinaryPrimitives.ReadUInt64BigEndian(body);
            if (payload.Count == 0)
            {
                first = offset;
            }

            Assert.Equal(first + (ulong)payload.Count, offset);
            payload.AddRange(body[8..]);
        }

        Assert.Equal(bytes, payload.Count);
        return (first, payload.ToArray());
    }

    private async Task<byte[]> ReceiveAsync(FrameType type)
    {
        while (true)
        {
            var (t, body) = await ReceiveAsync();
            if (t == type)
            {
                return body;
            }

            Assert.Equal(FrameType.Ack, t);
        }
    }

    [Fact]
    public async Task A_new_path_starts_with_an_ack_then_the_loop_seals_application_writes_into_data_frames()
    {
        await using var connection = Start();
        var (type, ack) = await ReceiveAsync();
        Assert.Equal(FrameType.Ack, type);
        Assert.Equal((0UL, 0UL), TransportFrame.ReadAck(ack));

        var data = RandomNumberGenerator.GetBytes(1000);
        await connection.WriteAsync(data).AsTask().WithTimeout();
        var body = await ReceiveAsync(FrameType.Data);
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64BigEndian(body));
        Assert.Equal(data, body[8..]);
        Assert.Equal(1000, connection.Statistics.BytesSent);
    }

    [Fact]
    public async Task A_write_beyond_the_peers_window_waits_in_the_loop_until_an_ack_opens_the_window()
    {
        await using var connection = Start(peerWindow: 4096);
        var data = RandomNumberGenerator.GetBytes(6000);
        var write = connection.WriteAsync(data).AsTask();
        await connection.SettleAsync().WithTimeout();
        Assert.False(write.IsCompleted);

        var first = await ReceiveStreamAsync(4096);
        Assert.Equal(0UL, first.Offset);
        Assert.Equal(data[..4096], first.Payload);
        await SendAsync(FrameType.Ack, Ack(4096, 4096));
        await write.WithTimeout();
        var second = await ReceiveStreamAsync(data.Length - 4096);
        Assert.Equal(4096UL, second.Offset);
        Assert.Equal(data[4096..], second.Payload);
    }

    [Fact]
    public async Task A_paths_data_frames_start_at_one_kib_and_grow_with_what_it_carried_up_to_the_largest()
    {
        // A frame is opened only once all of it arrived: on a new flow a 32 KiB first frame waited for the
        // second round trip of TCP's initial window (issue 14's netlab breakdown).
        await using var connection = Start();
        var data = RandomNumberGenerator.GetBytes(100 * 1024);
        await connection.WriteAsync(data).AsTask().WithTimeout();
        var sizes = new List<int>();
        var received = new List<byte>();
        while (received.Count < data.Length)
        {
            var body = await ReceiveAsync(FrameType.Data);
            Assert.Equal((ulong)received.Count, BinaryPrimitives.ReadUInt64BigEndian(body));
            sizes.Add(body.Length - 8);
            received.AddRange(body[8..]);
        }

        Assert.Equal(data, received.ToArray());
        Assert.Equal([1024, 1024, 2048, 4096, 8192, 16384, 32768, 32768, 4096], sizes);
    }

    [Fact]
    public async Task A_parked_read_is_cancelled_without_its_buffer_being_touched_and_the_next_read_gets_the_data()
    {
        await using var connection = Start();
        var abandoned = new byte[16];
        using var cts = new CancellationTokenSource();
        var read = connection.ReadAsync(abandoned, cts.Token).AsTask();
        await connection.SettleAsync().WithTimeout();
        Assert.False(read.IsCompleted);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read.WithTimeout());

        await SendAsync(FrameType.Data, [.. U64(0), .. "hello"u8.ToArray()]);
        var buffer = new byte[16];
        var n = await connection.ReadAsync(buffer).AsTask().WithTimeout();
        Assert.Equal("hello", System.Text.Encoding.ASCII.GetString(buffer, 0, n));
        Assert.All(abandoned, b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task A_ping_is_answered_by_a_pong_the_loop_queues_on_the_path()
    {
        await using var connection = Start();
        await SendAsync(FrameType.Ping, U64(7));
        var pong = await ReceiveAsync(FrameType.Pong);
        Assert.Equal(7UL, TransportFrame.ReadU64(FrameType.Pong, pong));
        Assert.Equal(MobileConnectionState.Connected, connection.State);
    }

    [Fact]
    public async Task A_reset_from_the_peer_fails_a_parked_read()
    {
        await using var connection = Start();
        var read = connection.ReadAsync(new byte[8]).AsTask();
        await SendAsync(FrameType.Reset, [0, 0, 0, 9]);
        var e = await Assert.ThrowsAsync<MobileConnectionException>(() => read.WithTimeout());
        Assert.Equal(MobileConnectionError.ResetByPeer, e.Error);
        Assert.Equal(MobileConnectionState.Failed, connection.State);
    }

    [Fact]
    public async Task Abort_is_seen_at_once_and_the_loop_writes_the_reset_before_the_flow_closes()
    {
        var connection = Start();
        await connection.SettleAsync().WithTimeout();
        connection.Abort("first");
        connection.Abort("second");
        Assert.Equal(MobileConnectionState.Failed, connection.State);
        Assert.Equal("first", connection.Failure!.Message);
        var reset = await ReceiveAsync(FrameType.Reset);
        Assert.Equal(1U, TransportFrame.ReadReset(reset));

        // Written: disposal needs no time to pass on the injected clock.
        await connection.DisposeAsync().AsTask().WithTimeout();
        Assert.True(_flow.Aborts >= 1);
        Assert.Equal("first", connection.Failure!.Message);
    }

    [Fact]
    public async Task A_reset_stuck_behind_a_full_flow_is_given_up_after_the_bound_on_the_injected_clock()
    {
        var connection = Start();
        // Nobody reads the flow: the loop's write blocks once the in-memory pipe is full.
        await connection.WriteAsync(new byte[512 * 1024]).AsTask().WithTimeout();
        await connection.SettleAsync().WithTimeout();
        var disposing = connection.DisposeAsync().AsTask();
        await connection.SettleAsync().WithTimeout();
        Assert.False(disposing.IsCompleted);
        _time.Advance(MobileConnection.ResetFlushTimeout - TimeSpan.FromMilliseconds(1));
        await connection.SettleAsync().WithTimeout();
        Assert.False(disposing.IsCompleted);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        await disposing.WithTimeout();
        Assert.Equal(1, _flow.Aborts);
        Assert.Equal(MobileConnectionState.Failed, connection.State);
    }

    public ValueTask DisposeAsync()
    {
        _peerSealer.Dispose();
        _peerOpener.Dispose();
        _secrets.Dispose();
        return ValueTask.CompletedTask;
    }
}
