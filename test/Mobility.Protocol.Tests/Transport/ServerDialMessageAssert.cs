namespace Mobility.Protocol.Tests.Transport;

/// <summary>
/// What the tests of the two messages a server dials its client with (<see cref="CallBackMessageTests"/>,
/// <see cref="ReverseMessageTests"/>) share: the session they are sealed for, a reader, and the hostile-input checks
/// every <see cref="ServerDialRequest"/> must pass (truncated, counter 0, any byte changed, random bodies).
/// </summary>
internal static class ServerDialMessageAssert
{
    public static readonly byte[] ResumeKey = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
    public static readonly HostGuid Client = HostGuid.Parse("0102030405060708090a0b0c0d0e0f1011121314");
    public static readonly HostGuid Server = HostGuid.Parse("15161718191a1b1c1d1e1f202122232425262728");
    public static readonly UInt128 Token = new(0x2a2b2c2d2e2f3031, 0x3233343536373839);

    /// <summary>Where the counter stands in both kinds (after the preamble, the GUIDs and the token).</summary>
    private const int CounterOffset = 62;

    public static (bool Ok, HandshakeMessage? Message, long Consumed) Read(byte[] bytes)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        var ok = HandshakeMessage.TryRead(ref reader, out var message);
        return (ok, message, reader.Consumed);
    }

    /// <summary>
    /// The fields both kinds start with, at their documented offsets: the preamble (<paramref name="preambleHex"/>,
    /// the type byte last), the GUIDs, the token, <paramref name="counterHex"/>.
    /// </summary>
    public static void StartsAsDocumented(byte[] bytes, string preambleHex, string counterHex)
    {
        Assert.Equal(preambleHex, Convert.ToHexStringLower(bytes[..6]));
        Assert.Equal(Client.ToString(), Convert.ToHexStringLower(bytes[6..26]));
        Assert.Equal(Server.ToString(), Convert.ToHexStringLower(bytes[26..46]));
        Assert.Equal("2a2b2c2d2e2f30313233343536373839", Convert.ToHexStringLower(bytes[46..62]));
        Assert.Equal(counterHex, Convert.ToHexStringLower(bytes[CounterOffset..70]));
    }

    /// <summary>The last 32 bytes are HMAC-SHA256 under <see cref="ResumeKey"/> over <paramref name="context"/> (length-prefixed) and every byte before them.</summary>
    public static void EndsWithTheMac(byte[] bytes, string context)
    {
        var macOffset = bytes.Length - 32;
        byte[] macced = [(byte)context.Length, .. Encoding.ASCII.GetBytes(context), .. bytes[..macOffset]];
        var expected = System.Security.Cryptography.HMACSHA256.HashData(ResumeKey, macced);
        Assert.Equal(expected, bytes[macOffset..]);
    }

    /// <summary>Cut at every offset, <paramref name="bytes"/> asks for more and nothing is consumed (<paramref name="what"/> names it in the failure).</summary>
    public static void TruncationAsksForMore(byte[] bytes, string what)
    {
        for (var length = 0; length < bytes.Length; length++)
        {
            var (ok, _, consumed) = Read(bytes[..length]);
            Assert.False(ok, $"accepted a {what} cut at {length}");
            Assert.Equal(0, consumed);
        }
    }

    public static void CounterZeroIsMalformed(byte[] bytes)
    {
        bytes.AsSpan(CounterOffset, 8).Clear();
        Assert.Throws<MalformedMessageException>(() => Read(bytes));
    }

    /// <summary>Each byte after the preamble changed (but a counter changed to 0, malformed) fails the MAC, and so does another key.</summary>
    public static void EveryChangedByteOrAnotherKeyBreaksTheMac<T>(byte[] bytes)
        where T : ServerDialRequest
    {
        for (var i = 6; i < bytes.Length; i++)
        {
            var changed = (byte[])bytes.Clone();
            changed[i] ^= 0x01;
            if (i is >= CounterOffset and < CounterOffset + 8 && changed.AsSpan(CounterOffset, 8).IndexOfAnyExcept((byte)0) < 0)
            {
                continue;
            }

            var (ok, parsed, _) = Read(changed);
            Assert.True(ok);
            Assert.False(((T)parsed!).VerifyMac(ResumeKey), $"byte {i} changed and the MAC still held");
        }

        var otherKey = ResumeKey.Select(b => (byte)(b ^ 0xff)).ToArray();
        Assert.False(((T)Read(bytes).Message!).VerifyMac(otherKey));
    }

    /// <summary>20,000 random bodies under <paramref name="type"/>: malformed, more needed, or exactly <paramref name="size"/> bytes read as a <typeparamref name="T"/> whose MAC fails.</summary>
    public static void RandomBodiesNeverThrowAnythingButMalformed<T>(HandshakeMessageType type, int size)
        where T : ServerDialRequest
    {
        var random = new Random(4321);
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = new byte[random.Next(6, 140)];
            random.NextBytes(bytes);
            "MOBT"u8.CopyTo(bytes);
            bytes[4] = TransportConstants.Version;
            bytes[5] = (byte)type;
            try
            {
                var (ok, message, consumed) = Read(bytes);
                Assert.Equal(ok ? size : 0, consumed);
                if (ok)
                {
                    Assert.False(((T)message!).VerifyMac(ResumeKey));
                }
            }
            catch (MalformedMessageException)
            {
            }
        }
    }
}
