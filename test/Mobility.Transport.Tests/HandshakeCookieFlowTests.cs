namespace Mobility.Transport.Tests;

/// <summary>Cookies, per-source slots and cut half-done handshakes, on real loopback sockets from several 127.x sources.</summary>
public sealed class HandshakeCookieFlowTests
{
    private static readonly int Net = LoopbackScenario.NextSubnet();
    private static int s_host;

    /// <summary>A fresh source address per call, so the tests of this class never share a source.</summary>
    private static IPAddress NewSource() => IPAddress.Parse($"127.{Net}.{100 + (Interlocked.Increment(ref s_host) / 250)}.{1 + (s_host % 250)}");

    private static byte[] Hello()
    {
        using var ephemeral = new EphemeralKey();
        return new ClientHello(HandshakeFlags.None, Keys.Client.Guid, Keys.Client.PublicKeyBytes(), ephemeral.PublicKey,
            TransportRandom.Nonce(), TransportRandom.Token(), HostGuid.Empty, 1 << 20).ToArray();
    }

    private static byte[] Concat(byte[] first, byte[] second) => [.. first, .. second];

    private static MobileListener Listen(MobileListenerOptions options)
    {
        var listener = new MobileListener(Keys.Server, options);
        listener.Start(new IPEndPoint(IPAddress.Parse($"127.{Net}.250.1"), 0));
        return listener;
    }

    private static async Task<Socket> ConnectAsync(MobileListener listener, IPAddress source)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(source, 0));
        await socket.ConnectAsync(listener.LocalEndPoint).WithTimeout();
        return socket;
    }

    /// <summary>Reads one whole handshake message of the given type.</summary>
    private static async Task<byte[]> ReceiveAsync(Socket socket, HandshakeMessageType type)
    {
        var bytes = new byte[HandshakeMessage.SizeOf(type)];
        var read = 0;
        while (read < bytes.Length)
        {
            var n = await socket.ReceiveAsync(bytes.AsMemory(read)).WithTimeout();
            Assert.True(n > 0, $"the flow closed after {read} bytes, before a whole {type}");
            read += n;
        }

        Assert.Equal((byte)type, bytes[5]);
        return bytes;
    }

    private static async Task AssertClosedAsync(Socket socket)
    {
        var buffer = new byte[64];
        try
        {
            Assert.Equal(0, await socket.ReceiveAsync(buffer).WithTimeout());
        }
        catch (SocketException)
        {
            // Reset: closed too.
        }
    }

    /// <summary>A half-done handshake from its own source: a ClientHello answered with a ServerHello, never finished.</summary>
    private static async Task<Socket> HalfDoneAsync(MobileListener listener)
    {
        var socket = await ConnectAsync(listener, NewSource());
        await socket.SendAsync(Hello());
        await ReceiveAsync(socket, HandshakeMessageType.ServerHello);
        return socket;
    }

    [Fact]
    public async Task Under_load_a_hello_gets_a_cookie_that_works_once_more_only_from_its_source_and_for_its_hello()
    {
        await using var listener = Listen(new MobileListenerOptions { CookieLoadThreshold = 1 });
        using var holder = await HalfDoneAsync(listener);
        Assert.Equal(1, listener.PendingHandshakes);

        // Cookieless: a CookieReply and a closed flow; the listener keeps nothing of it.
        var source = NewSource();
        var hello = Hello();
        byte[] cookie;
        using (var first = await ConnectAsync(listener, source))
        {
            await first.SendAsync(hello);
            cookie = (await ReceiveAsync(first, HandshakeMessageType.CookieReply))[6..];
            await AssertClosedAsync(first);
        }

        Assert.Equal(1, listener.CookiesSent);
        Assert.Equal(1, listener.PendingHandshakes);

        // From another source, or for another hello, or altered: a new cookie, no ServerHello.
        foreach (var (from, bytes, echo) in new[] { (NewSource(), hello, cookie), (source, Hello(), cookie), (source, hello, Flip(cookie)) })
        {
            using var retry = await ConnectAsync(listener, from);
            await retry.SendAsync(Concat(new CookieEcho(echo).ToArray(), bytes));
            await ReceiveAsync(retry, HandshakeMessageType.CookieReply);
            await AssertClosedAsync(retry);
        }

        Assert.Equal(4, listener.CookiesSent);

        // The cookie, from its source, before its hello: the handshake goes on.
        using var good = await ConnectAsync(listener, source);
        await good.SendAsync(Concat(new CookieEcho(cookie).ToArray(), hello));
        await ReceiveAsync(good, HandshakeMessageType.ServerHello);
        Assert.Equal(2, listener.PendingHandshakes);

        static byte[] Flip(byte[] cookie)
        {
            var flipped = (byte[])cookie.Clone();
            flipped[0] ^= 1;
            return flipped;
        }
    }

    [Fact]
    public async Task A_cookie_echo_followed_by_anything_but_a_hello_is_dropped()
    {
        await using var listener = Listen(new MobileListenerOptions { CookieLoadThreshold = 1 });
        using var socket = await ConnectAsync(listener, NewSource());
        await socket.SendAsync(Concat(new CookieEcho(new byte[16]).ToArray(), new CookieEcho(new byte[16]).ToArray()));
        await AssertClosedAsync(socket);
        await TestTimeout.Eventually(() => listener.AdmittedFlows == 0, "the flow leaves the admission");
    }

    [Fact]
    public async Task Under_load_the_connector_retries_once_with_its_cookie_and_connects()
    {
        await using var listener = Listen(new MobileListenerOptions { CookieLoadThreshold = 1 });
        using var holder = await HalfDoneAsync(listener);

        var accept = listener.AcceptAsync().AsTask();
        var connector = new MobileConnector(Keys.Other, new MobileConnectionOptions { LocalAddress = NewSource() });
        await using var client = await connector.ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid).WithTimeout();
        await using var server = await accept.WithTimeout();
        Assert.Equal(1, listener.CookiesSent);
        await client.Stream.WriteAsync(new byte[] { 42 }).WithTimeout();
        var b = new byte[1];
        await server.Stream.ReadExactlyAsync(b).WithTimeout();
        Assert.Equal(42, b[0]);
    }

    [Fact]
    public async Task Half_done_handshakes_on_every_slot_are_cut_for_a_hello_that_waits()
    {
        await using var listener = Listen(new MobileListenerOptions
        {
            MaxPendingHandshakes = 2,
            CookieLoadThreshold = 1_000,
            HandshakeTimeout = TimeSpan.FromMinutes(5),   // the cut, not the timeout, must free the slots
            HandshakeFinishGrace = TimeSpan.FromMilliseconds(50),
        });
        using var first = await HalfDoneAsync(listener);
        using var second = await HalfDoneAsync(listener);
        Assert.Equal(2, listener.PendingHandshakes);

        var accept = listener.AcceptAsync().AsTask();
        var connector = new MobileConnector(Keys.Other, new MobileConnectionOptions { LocalAddress = NewSource() });
        MobileConnection? client = null;
        for (var attempt = 0; client is null; attempt++)
        {
            try
            {
                client = await connector.ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid).WithTimeout();
            }
            catch (MobileHandshakeException) when (attempt < 3)
            {
                // A hello that found both within their grace waits its own handshake timeout; only a later one cuts.
            }
        }

        await using (client)
        await using (var server = await accept.WithTimeout())
        {
            await Task.WhenAny(AssertClosedAsync(first), AssertClosedAsync(second)).WithTimeout();
        }
    }

    [Fact]
    public async Task One_source_holds_at_most_its_share_of_the_slots_and_another_source_is_served()
    {
        await using var listener = Listen(new MobileListenerOptions
        {
            MaxPendingHandshakes = 4,
            MaxPendingHandshakesPerSource = 2,
            CookieLoadThreshold = 1_000,
            HandshakeFinishGrace = TimeSpan.FromMinutes(5),
            HandshakeTimeout = TimeSpan.FromMinutes(5),
        });
        var greedy = NewSource();
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < 6; i++)
            {
                var socket = await ConnectAsync(listener, greedy);
                sockets.Add(socket);
                await socket.SendAsync(Hello());
            }

            await TestTimeout.Eventually(() => listener.PendingHandshakes == 2 && listener.AdmittedFlows == 6, "the greedy source holds its two slots, its other hellos wait");

            // Two slots are still free for everybody else.
            var other = await HalfDoneAsync(listener);
            sockets.Add(other);
            Assert.Equal(3, listener.PendingHandshakes);
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }
}
