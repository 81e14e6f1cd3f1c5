namespace Mobility.Transport.Tests;

/// <summary>
/// Hostile bytes on the transport port (in addition to <see cref="SecurityTests"/>): slow-loris
/// handshakes, a flood of idle flows, oversized and truncated handshakes, and bytes flipped on an
/// established flow. Never a crash, a hang or unbounded buffering; the listener keeps serving others;
/// nothing a peer causes is logged above Debug.
/// </summary>
public sealed class HostileTransportTests
{
    private static byte[] Hello()
    {
        using var ephemeral = new EphemeralKey();
        return new ClientHello(HandshakeFlags.None, Keys.Client.Guid, Keys.Client.PublicKeyBytes(), ephemeral.PublicKey,
            TransportRandom.Nonce(), TransportRandom.Token(), HostGuid.Empty, 1 << 20).ToArray();
    }

    private static void AssertNothingAboveDebug(ListLoggerFactory logs)
        => Assert.DoesNotContain(logs.Entries, e => e.Level > LogLevel.Debug && !e.Message.Contains("Mobile listener on", StringComparison.Ordinal));

    /// <summary>Connects, exchanges a few bytes both ways over a fresh mobile connection, closes.</summary>
    private static async Task AssertServesAsync(MobileListener listener)
    {
        var accept = listener.AcceptAsync().AsTask();
        await using var client = await new MobileConnector(Keys.Client).ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid).WithTimeout();
        await using var server = await accept.WithTimeout();
        await client.Stream.WriteAsync(new byte[] { 1, 2, 3 }).WithTimeout();
        var b = new byte[3];
        await server.Stream.ReadExactlyAsync(b).WithTimeout();
        await server.Stream.WriteAsync(b).WithTimeout();
        await client.Stream.ReadExactlyAsync(b).WithTimeout();
        Assert.Equal(new byte[] { 1, 2, 3 }, b);
        var closing = server.CloseAsync();
        await client.CloseAsync().WithTimeout();
        await closing.WithTimeout();
    }

    /// <summary>Waits until the listener closes <paramref name="socket"/> (EOF or reset), discarding what it sends.</summary>
    private static async Task ClosedByPeerAsync(Socket socket)
    {
        var buffer = new byte[256];
        try
        {
            while (await socket.ReceiveAsync(buffer) > 0)
            {
            }
        }
        catch (SocketException)
        {
        }
    }

    [Fact]
    public async Task Slow_loris_handshakes_are_cut_at_the_handshake_timeout_while_others_are_served()
    {
        var logs = new ListLoggerFactory();
        await using var listener = new MobileListener(Keys.Server, new MobileListenerOptions { LoggerFactory = logs, HandshakeTimeout = TimeSpan.FromMilliseconds(600) });
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var hello = Hello();
        using var stop = new CancellationTokenSource();

        // Each sends one byte of a genuine ClientHello every 50 ms: the whole hello would take 8 s.
        var loris = Enumerable.Range(0, 20).Select(async _ =>
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(listener.LocalEndPoint);
            var closed = ClosedByPeerAsync(socket);
            try
            {
                for (var i = 0; i < hello.Length && !closed.IsCompleted && !stop.IsCancellationRequested; i++)
                {
                    await socket.SendAsync(hello.AsMemory(i, 1));
                    await Task.WhenAny(closed, Task.Delay(50));
                }
            }
            catch (SocketException)
            {
            }

            await closed;
            return closed.IsCompleted;
        }).ToArray();

        await AssertServesAsync(listener);   // served while the slow handshakes hold their slots
        var cut = await Task.WhenAll(loris).WithTimeout();
        await stop.CancelAsync();
        Assert.All(cut, Assert.True);
        await TestTimeout.Eventually(() => listener.PendingHandshakes == 0, "every slow handshake slot is released");
        await AssertServesAsync(listener);
        AssertNothingAboveDebug(logs);
    }

    [Fact]
    public async Task A_flood_of_idle_flows_is_bounded_and_an_established_connection_carries_on()
    {
        var logs = new ListLoggerFactory();
        await using var listener = new MobileListener(Keys.Server, new MobileListenerOptions
        {
            LoggerFactory = logs,
            MaxPendingHandshakes = 8,
            MaxQueuedHandshakes = 16,
            HandshakeTimeout = TimeSpan.FromSeconds(1),
        });
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var accept = listener.AcceptAsync().AsTask();
        await using var client = await new MobileConnector(Keys.Client).ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid).WithTimeout();
        await using var server = await accept.WithTimeout();

        var flood = new List<Socket>();
        try
        {
            for (var i = 0; i < 64; i++)
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                flood.Add(socket);
                try
                {
                    await socket.ConnectAsync(listener.LocalEndPoint).WithTimeout();
                }
                catch (SocketException)
                {
                    // Reset at once (over the queue's bound): what the listener should do.
                }

                Assert.InRange(listener.PendingHandshakes, 0, 8);
                Assert.InRange(listener.AdmittedFlows, 0, 8 + 16);
            }

            // The established connection does not notice.
            var data = RandomNumberGenerator.GetBytes(512 * 1024);
            var reading = Task.Run(async () =>
            {
                var received = new byte[data.Length];
                await server.Stream.ReadExactlyAsync(received);
                return received;
            });
            await client.Stream.WriteAsync(data).WithTimeout();
            Assert.Equal(data, await reading.WithTimeout());

            // Every idle flow is closed: those over the queue's bound at once, the others at the handshake
            // timeout counted from the accept, whether they held a slot or queued for one.
            await Task.WhenAll(flood.Select(ClosedByPeerAsync)).WithTimeout();
        }
        finally
        {
            flood.ForEach(s => s.Dispose());
        }

        await TestTimeout.Eventually(() => listener.PendingHandshakes == 0, "the handshake slots are released");
        await AssertServesAsync(listener);
        AssertNothingAboveDebug(logs);
    }

    [Theory]
    [InlineData((byte)HandshakeMessageType.ClientHello)]
    [InlineData((byte)HandshakeMessageType.Resume)]
    [InlineData((byte)HandshakeMessageType.ClientFinish)]
    public async Task An_oversized_handshake_is_refused_and_the_flow_closed_whatever_follows(byte type)
    {
        var logs = new ListLoggerFactory();
        await using var listener = new MobileListener(Keys.Server, new MobileListenerOptions { LoggerFactory = logs, HandshakeTimeout = TimeSpan.FromSeconds(2) });
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(listener.LocalEndPoint).WithTimeout();

        // A valid preamble, then garbage for as long as the listener reads: it refuses the message,
        // drains for a bounded time (so its Reject is read, not lost to a reset) and closes. A listener
        // that kept reading would let this run to the cap.
        const long total = 1L << 30;
        var chunk = new byte[1024 * 1024];
        new Random(11).NextBytes(chunk);
        "MOBT"u8.CopyTo(chunk);
        chunk[4] = TransportConstants.Version;
        chunk[5] = type;
        long sent = 0;
        var closed = ClosedByPeerAsync(socket);
        try
        {
            while (sent < total && !closed.IsCompleted)
            {
                sent += await socket.SendAsync(chunk).WithTimeout();
                chunk[0] = 0xEE;   // only the first chunk starts with the preamble
                await Task.WhenAny(closed, Task.Delay(2));   // at most ~500 MB/s: the machine is shared
            }
        }
        catch (SocketException)
        {
        }

        await closed.WithTimeout();
        Assert.True(sent < total, $"the listener kept reading ({sent} bytes) instead of closing the flow");
        await TestTimeout.Eventually(() => listener.PendingHandshakes == 0, "the handshake slot is released");
        Assert.Empty(listener.Connections);
        await AssertServesAsync(listener);
        AssertNothingAboveDebug(logs);
    }

    [Fact]
    public async Task Truncated_handshakes_that_end_early_release_their_slot_at_once()
    {
        var logs = new ListLoggerFactory();
        // A long handshake timeout: the slots must be released by the EOF, not by the timer.
        await using var listener = new MobileListener(Keys.Server, new MobileListenerOptions { LoggerFactory = logs, HandshakeTimeout = TimeSpan.FromMinutes(5) });
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var hello = Hello();
        var resume = ResumeRequest.Create(new byte[32], Keys.Client.Guid, Keys.Server.Guid, TransportRandom.Token(), 1, 0).ToArray();
        byte[][] inputs = [hello[..1], hello[..5], hello[..6], hello[..100], hello[..^1], resume[..7], resume[..^1]];

        await Task.WhenAll(inputs.Select(async input =>
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(listener.LocalEndPoint);
            await socket.SendAsync(input);
            socket.Shutdown(SocketShutdown.Send);
            await ClosedByPeerAsync(socket);
        })).WithTimeout();

        await TestTimeout.Eventually(() => listener.PendingHandshakes == 0, "the truncated handshakes are dropped");
        await AssertServesAsync(listener);
        AssertNothingAboveDebug(logs);
    }

    [Fact]
    public async Task A_byte_flipped_on_an_established_flow_fails_that_flow_and_the_connection_resumes_intact()
    {
        var logs = new ListLoggerFactory();
        await using var listener = new MobileListener(Keys.Server, new MobileListenerOptions { LoggerFactory = logs });
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        await using var proxy = new CorruptingProxy(listener.LocalEndPoint, corruptAt: 20_000);
        var locator = new TestLocator();
        locator.Set(Keys.Server.Guid, proxy.EndPoint);
        var accept = listener.AcceptAsync().AsTask();
        await using var client = await new MobileConnector(Keys.Client, new MobileConnectionOptions { LoggerFactory = logs })
            .ConnectAsync(Keys.Server.Guid, locator).WithTimeout();
        await using var server = await accept.WithTimeout();

        var data = RandomNumberGenerator.GetBytes(1 << 20);
        var receiving = PatternSource.ReceiveAsync(server.Stream);
        await client.Stream.WriteAsync(data).WithTimeout();
        client.ShutdownWrite();
        var (length, hash) = await receiving.WithTimeout();

        Assert.Equal(data.Length, length);
        Assert.Equal(SHA256.HashData(data), hash);
        Assert.Equal(1, proxy.Corrupted);
        Assert.True(proxy.Flows >= 2, "the client should have resumed over a new flow");
        Assert.True(client.Statistics.Moves >= 1 || server.Statistics.Moves >= 1);
        AssertNothingAboveDebug(logs);
    }

    /// <summary>A TCP relay that flips one byte, once, at a given offset of the client-to-server bytes of its first flow (an on-path attacker).</summary>
    private sealed class CorruptingProxy : IAsyncDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly IPEndPoint _target;
        private readonly long _corruptAt;
        private readonly CancellationTokenSource _cts = new();
        private readonly Task _loop;
        private readonly List<Task> _pumps = [];
        private int _flows;
        private int _corrupted;

        public CorruptingProxy(IPEndPoint target, long corruptAt)
        {
            _target = target;
            _corruptAt = corruptAt;
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen();
            _loop = AcceptAsync();
        }

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

        public int Flows => Volatile.Read(ref _flows);

        public int Corrupted => Volatile.Read(ref _corrupted);

        public async ValueTask DisposeAsync()
        {
            await _cts.CancelAsync();
            _listener.Dispose();
            await _loop.WithTimeout();
            Task[] pumps;
            lock (_pumps)
            {
                pumps = [.. _pumps];
            }

            await Task.WhenAll(pumps).WithTimeout();
            _cts.Dispose();
        }

        private async Task AcceptAsync()
        {
            while (!_cts.IsCancellationRequested)
            {
                Socket inbound;
                try
                {
                    inbound = await _listener.AcceptAsync(_cts.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }

                var first = Interlocked.Increment(ref _flows) == 1;
                var outbound = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    await outbound.ConnectAsync(_target, _cts.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException)
                {
                    inbound.Dispose();
                    outbound.Dispose();
                    continue;
                }

                lock (_pumps)
                {
                    _pumps.Add(PumpAsync(inbound, outbound, first ? _corruptAt : -1));
                    _pumps.Add(PumpAsync(outbound, inbound, -1));
                }
            }
        }

        private async Task PumpAsync(Socket from, Socket to, long corruptAt)
        {
            var buffer = new byte[16 * 1024];
            long offset = 0;
            try
            {
                int n;
                while ((n = await from.ReceiveAsync(buffer, _cts.Token)) > 0)
                {
                    if (corruptAt >= offset && corruptAt < offset + n)
                    {
                        buffer[corruptAt - offset] ^= 0x40;
                        Interlocked.Increment(ref _corrupted);
                    }

                    offset += n;
                    await to.SendAsync(buffer.AsMemory(0, n), _cts.Token);
                }

                to.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                from.Dispose();
                to.Dispose();
            }
        }
    }
}
