namespace Mobility.Protocol.Tests.Transport;

/// <summary>CookieReply and CookieEcho (types 8 and 9) and the cookie MAC, byte by byte as in docs/transport.md.</summary>
public class HandshakeCookieTests
{
    private static readonly byte[] Secret = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
    private static readonly byte[] Cookie = Enumerable.Range(0, 16).Select(i => (byte)(0xC0 + i)).ToArray();
    private static readonly byte[] Hello = Enumerable.Repeat((byte)0xAB, ClientHello.EncodedSize).ToArray();
    private static readonly byte[] V4Source = Convert.FromHexString("00000000000000000000ffff7f000001");   // 127.0.0.1
    private static readonly byte[] V6Source = Convert.FromHexString("20010db8000000010000000000000000");   // 2001:db8:0:1::/64

    private static (bool Ok, HandshakeMessage? Message, long Consumed) Read(byte[] bytes)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        var ok = HandshakeMessage.TryRead(ref reader, out var message);
        return (ok, message, reader.Consumed);
    }

    [Fact]
    public void Cookie_messages_encode_to_the_pinned_bytes()
    {
        Assert.Equal("4d4f4254" + "01" + "08" + "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", Convert.ToHexStringLower(new CookieReply(Cookie).ToArray()));
        Assert.Equal("4d4f4254" + "01" + "09" + "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", Convert.ToHexStringLower(new CookieEcho(Cookie).ToArray()));
        Assert.Equal(22, HandshakeMessage.SizeOf(HandshakeMessageType.CookieReply));
        Assert.Equal(22, HandshakeMessage.SizeOf(HandshakeMessageType.CookieEcho));
    }

    [Fact]
    public void Cookie_mac_matches_the_pinned_vectors()
    {
        // HMAC-SHA256(secret, 0x1c || "mobility/handshake-cookie/v1" || source || hello)[..16], computed apart from this code.
        var cookie = new byte[16];
        HandshakeCookie.Compute(Secret, V4Source, Hello, cookie);
        Assert.Equal("4e11e20b2589961c4ebf0fdf462daa5a", Convert.ToHexStringLower(cookie));
        HandshakeCookie.Compute(Secret, V6Source, Hello, cookie);
        Assert.Equal("51b202b154473aeb6c1c8eb65a0f7fc8", Convert.ToHexStringLower(cookie));
    }

    [Fact]
    public void Cookie_messages_round_trip_and_a_following_hello_is_left_unread()
    {
        HandshakeMessage[] messages = [new CookieReply(Cookie), new CookieEcho(Cookie)];
        foreach (var message in messages)
        {
            var bytes = message.ToArray();
            var (ok, parsed, consumed) = Read([.. bytes, .. Hello]);
            Assert.True(ok);
            Assert.Equal(bytes.Length, consumed);
            Assert.Equal(bytes, parsed!.ToArray());
            Assert.Equal(Cookie, parsed is CookieReply r ? r.Cookie : ((CookieEcho)parsed).Cookie);
        }
    }

    [Fact]
    public void A_truncated_cookie_message_asks_for_more_and_consumes_nothing()
    {
        var bytes = new CookieEcho(Cookie).ToArray();
        for (var length = 0; length < bytes.Length; length++)
        {
            var (ok, _, consumed) = Read(bytes[..length]);
            Assert.False(ok, $"accepted a cookie echo cut at {length}");
            Assert.Equal(0, consumed);
        }
    }

    [Fact]
    public void A_cookie_verifies_only_for_its_secret_source_and_hello()
    {
        var cookie = new byte[16];
        HandshakeCookie.Compute(Secret, V4Source, Hello, cookie);
        Assert.True(HandshakeCookie.Verify(Secret, V4Source, Hello, cookie));

        var otherSecret = (byte[])Secret.Clone();
        otherSecret[0] ^= 1;
        Assert.False(HandshakeCookie.Verify(otherSecret, V4Source, Hello, cookie));
        Assert.False(HandshakeCookie.Verify(Secret, V6Source, Hello, cookie));
        var otherHello = (byte[])Hello.Clone();
        otherHello[^1] ^= 1;
        Assert.False(HandshakeCookie.Verify(Secret, V4Source, otherHello, cookie));
        for (var bit = 0; bit < cookie.Length * 8; bit++)
        {
            var flipped = (byte[])cookie.Clone();
            flipped[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.False(HandshakeCookie.Verify(Secret, V4Source, Hello, flipped));
        }

        Assert.False(HandshakeCookie.Verify(Secret, V4Source, Hello, cookie[..15]));
        Assert.False(HandshakeCookie.Verify(Secret, V4Source, Hello, []));
    }

    [Fact]
    public void Wrong_sizes_are_argument_errors_not_silent_cookies()
    {
        var cookie = new byte[16];
        Assert.Throws<ArgumentException>(() => HandshakeCookie.Compute(Secret[..31], V4Source, Hello, cookie));
        Assert.Throws<ArgumentException>(() => HandshakeCookie.Compute(Secret, V4Source[..4], Hello, cookie));
        Assert.Throws<ArgumentException>(() => HandshakeCookie.Compute(Secret, V4Source, Hello, new byte[32]));
        Assert.Throws<ArgumentException>(() => new CookieReply(new byte[15]));
        Assert.Throws<ArgumentException>(() => new CookieEcho(new byte[17]));
    }

    /// <summary>Types 7 and 14 are unassigned (10 and 11 are Join and JoinAck, 12 CallBack, 13 Reverse); 8 and 9 the cookie messages.</summary>
    private static readonly byte[] UnknownAndCookieTypes = [7, 8, 9, 14];

    [Fact]
    public void Random_cookie_bodies_parse_or_are_malformed_and_type_7_stays_unknown()
    {
        var random = new Random(4321);
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = new byte[random.Next(6, 40)];
            random.NextBytes(bytes);
            "MOBT"u8.CopyTo(bytes);
            bytes[4] = TransportConstants.Version;
            bytes[5] = UnknownAndCookieTypes[random.Next(UnknownAndCookieTypes.Length)];
            try
            {
                var (ok, message, consumed) = Read(bytes);
                Assert.True(bytes[5] is 8 or 9, $"type {bytes[5]} was accepted");
                if (ok)
                {
                    Assert.Equal(22, consumed);
                    Assert.Equal(bytes[..22], message!.ToArray());
                }
            }
            catch (MalformedMessageException)
            {
                Assert.True(bytes[5] is 7 or 14, $"type {bytes[5]} was refused");
            }
        }
    }
}
