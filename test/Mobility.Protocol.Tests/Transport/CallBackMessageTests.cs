namespace Mobility.Protocol.Tests.Transport;

/// <summary>
/// The CallBack handshake message (type 12, docs/protocol.md "Mobile TCP call back"): its bytes, its MAC,
/// and hostile input to its reader (truncated, relabelled, counter 0, trailing or random bytes).
/// </summary>
public class CallBackMessageTests
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
    public void A_call_back_is_110_bytes_laid_out_as_documented_and_round_trips()
    {
        var callBack = CallBackRequest.Create(ResumeKey, Client, Server, Token, 3, 0x0102030405);
        var bytes = callBack.ToArray();
        Assert.Equal(110, bytes.Length);
        Assert.Equal(110, HandshakeMessage.SizeOf(HandshakeMessageType.CallBack));
        Assert.Equal("4d4f4254010c", Convert.ToHexStringLower(bytes[..6]));
        Assert.Equal(Client.ToString(), Convert.ToHexStringLower(bytes[6..26]));
        Assert.Equal(Server.ToString(), Convert.ToHexStringLower(bytes[26..46]));
        Assert.Equal("2a2b2c2d2e2f30313233343536373839", Convert.ToHexStringLower(bytes[46..62]));
        Assert.Equal("0000000000000003", Convert.ToHexStringLower(bytes[62..70]));
        Assert.Equal("0000000102030405", Convert.ToHexStringLower(bytes[70..78]));
        byte[] macced = [(byte)"mobility/transport-callback/v1".Length, .. "mobility/transport-callback/v1"u8.ToArray(), .. bytes[..78]];
        var expected = System.Security.Cryptography.HMACSHA256.HashData(ResumeKey, macced);
        Assert.Equal(expected, bytes[78..]);

        var (ok, parsed, consumed) = Read([.. bytes, 0xEE]);
        Assert.True(ok);
        Assert.Equal(110, consumed);
        var read = Assert.IsType<CallBackRequest>(parsed);
        Assert.Equal((Client, Server, Token, 3UL, 0x0102030405UL), (read.ClientGuid, read.ServerGuid, read.Token, read.Counter, read.ReceivedOffset));
        Assert.True(read.VerifyMac(ResumeKey));
    }

    [Fact]
    public void Truncation_at_every_offset_asks_for_more_and_consumes_nothing()
    {
        var bytes = CallBackRequest.Create(ResumeKey, Client, Server, Token, 1, 77).ToArray();
        for (var length = 0; length < bytes.Length; length++)
        {
            var (ok, _, consumed) = Read(bytes[..length]);
            Assert.False(ok, $"accepted a call back cut at {length}");
            Assert.Equal(0, consumed);
        }
    }

    [Fact]
    public void Counter_zero_is_malformed()
    {
        var bytes = CallBackRequest.Create(ResumeKey, Client, Server, Token, 1, 77).ToArray();
        bytes.AsSpan(62, 8).Clear();
        Assert.Throws<MalformedMessageException>(() => Read(bytes));
    }

    [Fact]
    public void Every_changed_byte_or_another_key_breaks_the_mac()
    {
        var bytes = CallBackRequest.Create(ResumeKey, Client, Server, Token, 9, 1234).ToArray();
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
            Assert.False(((CallBackRequest)parsed!).VerifyMac(ResumeKey), $"byte {i} changed and the MAC still held");
        }

        var otherKey = ResumeKey.Select(b => (byte)(b ^ 0xff)).ToArray();
        Assert.False(((CallBackRequest)Read(bytes).Message!).VerifyMac(otherKey));
    }

    [Fact]
    public void A_call_back_relabelled_as_a_resume_or_join_and_a_resume_relabelled_as_a_call_back_fail_their_macs()
    {
        // The same size as a Resume and a Join (110 bytes): relabelled, each parses, and its MAC (other bytes, another context) fails.
        var callBack = CallBackRequest.Create(ResumeKey, Client, Server, Token, 1, 77).ToArray();
        foreach (var type in new[] { HandshakeMessageType.Resume, HandshakeMessageType.Join })
        {
            var relabelled = (byte[])callBack.Clone();
            relabelled[5] = (byte)type;
            var (ok, parsed, _) = Read(relabelled);
            Assert.True(ok);
            Assert.False(((ResumeRequest)parsed!).VerifyMac(ResumeKey));
        }

        var resume = ResumeRequest.Create(ResumeKey, Client, Server, Token, 1, 77).ToArray();
        resume[5] = (byte)HandshakeMessageType.CallBack;
        var asCallBack = Read(resume);
        Assert.True(asCallBack.Ok);
        Assert.False(((CallBackRequest)asCallBack.Message!).VerifyMac(ResumeKey));
    }

    [Fact]
    public void Random_bodies_under_the_call_back_type_never_throw_anything_but_malformed()
    {
        var random = new Random(4321);
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = new byte[random.Next(6, 140)];
            random.NextBytes(bytes);
            "MOBT"u8.CopyTo(bytes);
            bytes[4] = TransportConstants.Version;
            bytes[5] = (byte)HandshakeMessageType.CallBack;
            try
            {
                var (ok, message, consumed) = Read(bytes);
                Assert.Equal(ok ? 110 : 0, consumed);
                if (ok)
                {
                    Assert.False(((CallBackRequest)message!).VerifyMac(ResumeKey));
                }
            }
            catch (MalformedMessageException)
            {
            }
        }
    }
}
