namespace Mobility.Protocol.Tests.Transport;

/// <summary>
/// The Reverse handshake message (type 13, docs/protocol.md "Mobile TCP connection reversal"): its bytes, its MAC,
/// and hostile input to its reader (truncated, relabelled, counter 0, trailing or random bytes).
/// </summary>
public class ReverseMessageTests
{
    private static readonly byte[] ResumeKey = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
    private static readonly HostGuid Client = HostGuid.Parse("0102030405060708090a0b0c0d0e0f1011121314");
    private static readonly HostGuid Server = HostGuid.Parse("15161718191a1b1c1d1e1f202122232425262728");
    private static readonly UInt128 Token = new(0x2a2b2c2d2e2f3031, 0x3233343536373839);

    private static (bool Ok, HandshakeMessage? Message, long Consumed) Read(byte[] bytes)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        var ok = HandshakeMessage.TryRead(ref reader, out var message);
        return (ok, message, reader.Consumed);
    }

    [Fact]
    public void A_reverse_is_102_bytes_laid_out_as_documented_and_round_trips()
    {
        var reverse = ReverseRequest.Create(ResumeKey, Client, Server, Token, 3);
        var bytes = reverse.ToArray();
        Assert.Equal(102, bytes.Length);
        Assert.Equal(102, HandshakeMessage.SizeOf(HandshakeMessageType.Reverse));
        Assert.Equal("4d4f4254010d", Convert.ToHexStringLower(bytes[..6]));
        Assert.Equal(Client.ToString(), Convert.ToHexStringLower(bytes[6..26]));
        Assert.Equal(Server.ToString(), Convert.ToHexStringLower(bytes[26..46]));
        Assert.Equal("2a2b2c2d2e2f30313233343536373839", Convert.ToHexStringLower(bytes[46..62]));
        Assert.Equal("0000000000000003", Convert.ToHexStringLower(bytes[62..70]));
        byte[] macced = [(byte)"mobility/transport-reverse/v1".Length, .. "mobility/transport-reverse/v1"u8.ToArray(), .. bytes[..70]];
        var expected = System.Security.Cryptography.HMACSHA256.HashData(ResumeKey, macced);
        Assert.Equal(expected, bytes[70..]);

        var (ok, parsed, consumed) = Read([.. bytes, 0xEE]);
        Assert.True(ok);
        Assert.Equal(102, consumed);
        var read = Assert.IsType<ReverseRequest>(parsed);
        Assert.Equal((Client, Server, Token, 3UL), (read.ClientGuid, read.ServerGuid, read.Token, read.Counter));
        Assert.True(read.VerifyMac(ResumeKey));
    }

    [Fact]
    public void Truncation_at_every_offset_asks_for_more_and_consumes_nothing()
    {
        var bytes = ReverseRequest.Create(ResumeKey, Client, Server, Token, 1).ToArray();
        for (var length = 0; length < bytes.Length; length++)
        {
            var (ok, _, consumed) = Read(bytes[..length]);
            Assert.False(ok, $"accepted a reverse cut at {length}");
            Assert.Equal(0, consumed);
        }
    }

    [Fact]
    public void Counter_zero_is_malformed()
    {
        var bytes = ReverseRequest.Create(ResumeKey, Client, Server, Token, 1).ToArray();
        bytes.AsSpan(62, 8).Clear();
        Assert.Throws<MalformedMessageException>(() => Read(bytes));
    }

    [Fact]
    public void Every_changed_byte_or_another_key_breaks_the_mac()
    {
        var bytes = ReverseRequest.Create(ResumeKey, Client, Server, Token, 9).ToArray();
        for (var i = 6; i < bytes.Length; i++)
        {
            var changed = (byte[])bytes.Clone();
            changed[i] ^= 0x01;
            if (i is >= 62 and < 70 && changed.AsSpan(62, 8).IndexOfAnyExcept((byte)0) < 0)
            {
                continue;
            }

            var (ok, parsed, _) = Read(changed);
            Assert.True(ok);
            Assert.False(((ReverseRequest)parsed!).VerifyMac(ResumeKey), $"byte {i} changed and the MAC still held");
        }

        var otherKey = ResumeKey.Select(b => (byte)(b ^ 0xff)).ToArray();
        Assert.False(((ReverseRequest)Read(bytes).Message!).VerifyMac(otherKey));
    }

    [Fact]
    public void A_call_back_cut_to_a_reverses_size_and_relabelled_fails_the_mac()
    {
        // The same key, the same leading fields: only the context (and the type byte) tell them apart.
        var callBack = CallBackRequest.Create(ResumeKey, Client, Server, Token, 1, 0).ToArray();
        byte[] relabelled = [.. callBack[..70], .. callBack[78..]];
        relabelled[5] = (byte)HandshakeMessageType.Reverse;
        var (ok, parsed, _) = Read(relabelled);
        Assert.True(ok);
        Assert.False(((ReverseRequest)parsed!).VerifyMac(ResumeKey));

        // A reverse's own bytes MAC'd under the call back's context fail too.
        var unsigned = new ReverseRequest(Client, Server, Token, 1, new byte[32]).ToArray();
        var wrongContext = new byte[32];
        ResumeMac.Compute(ResumeKey, SigningContext.TransportCallBack, unsigned.AsSpan(0, ReverseRequest.MacOffset), wrongContext);
        Assert.False(new ReverseRequest(Client, Server, Token, 1, wrongContext).VerifyMac(ResumeKey));
    }

    [Fact]
    public void Random_bodies_under_the_reverse_type_never_throw_anything_but_malformed()
    {
        var random = new Random(4321);
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = new byte[random.Next(6, 140)];
            random.NextBytes(bytes);
            "MOBT"u8.CopyTo(bytes);
            bytes[4] = TransportConstants.Version;
            bytes[5] = (byte)HandshakeMessageType.Reverse;
            try
            {
                var (ok, message, consumed) = Read(bytes);
                Assert.Equal(ok ? 102 : 0, consumed);
                if (ok)
                {
                    Assert.False(((ReverseRequest)message!).VerifyMac(ResumeKey));
                }
            }
            catch (MalformedMessageException)
            {
            }
        }
    }
}
