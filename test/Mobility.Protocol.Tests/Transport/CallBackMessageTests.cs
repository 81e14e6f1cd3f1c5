using static Mobility.Protocol.Tests.Transport.ServerDialMessageAssert;

namespace Mobility.Protocol.Tests.Transport;

/// <summary>
/// The CallBack handshake message (type 12, docs/protocol.md "Mobile TCP call back"): its bytes, its MAC,
/// and hostile input to its reader (truncated, relabelled, counter 0, trailing or random bytes).
/// </summary>
public class CallBackMessageTests
{
    [Fact]
    public void A_call_back_is_110_bytes_laid_out_as_documented_and_round_trips()
    {
        var callBack = CallBackRequest.Create(ResumeKey, Client, Server, Token, 3, 0x0102030405);
        var bytes = callBack.ToArray();
        Assert.Equal(110, bytes.Length);
        Assert.Equal(110, HandshakeMessage.SizeOf(HandshakeMessageType.CallBack));
        StartsAsDocumented(bytes, "4d4f4254010c", "0000000000000003");
        Assert.Equal("0000000102030405", Convert.ToHexStringLower(bytes[70..78]));
        EndsWithTheMac(bytes, "mobility/transport-callback/v1");

        var (ok, parsed, consumed) = Read([.. bytes, 0xEE]);
        Assert.True(ok);
        Assert.Equal(110, consumed);
        var read = Assert.IsType<CallBackRequest>(parsed);
        Assert.Equal((Client, Server, Token, 3UL, 0x0102030405UL), (read.ClientGuid, read.ServerGuid, read.Token, read.Counter, read.ReceivedOffset));
        Assert.True(read.VerifyMac(ResumeKey));
    }

    [Fact]
    public void Truncation_at_every_offset_asks_for_more_and_consumes_nothing()
        => TruncationAsksForMore(CallBackRequest.Create(ResumeKey, Client, Server, Token, 1, 77).ToArray(), "call back");

    [Fact]
    public void Counter_zero_is_malformed() => CounterZeroIsMalformed(CallBackRequest.Create(ResumeKey, Client, Server, Token, 1, 77).ToArray());

    [Fact]
    public void Every_changed_byte_or_another_key_breaks_the_mac()
        => EveryChangedByteOrAnotherKeyBreaksTheMac<CallBackRequest>(CallBackRequest.Create(ResumeKey, Client, Server, Token, 9, 1234).ToArray());

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
        => RandomBodiesNeverThrowAnythingButMalformed<CallBackRequest>(HandshakeMessageType.CallBack, 110);
}
