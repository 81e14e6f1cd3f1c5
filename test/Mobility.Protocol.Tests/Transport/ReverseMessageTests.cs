using static Mobility.Protocol.Tests.Transport.ServerDialMessageAssert;

namespace Mobility.Protocol.Tests.Transport;

/// <summary>
/// The Reverse handshake message (type 13, docs/protocol.md "Mobile TCP connection reversal"): its bytes, its MAC,
/// and hostile input to its reader (truncated, relabelled, counter 0, trailing or random bytes).
/// </summary>
public class ReverseMessageTests
{
    [Fact]
    public void A_reverse_is_102_bytes_laid_out_as_documented_and_round_trips()
    {
        var reverse = ReverseRequest.Create(ResumeKey, Client, Server, Token, 3);
        var bytes = reverse.ToArray();
        Assert.Equal(102, bytes.Length);
        Assert.Equal(102, HandshakeMessage.SizeOf(HandshakeMessageType.Reverse));
        StartsAsDocumented(bytes, "4d4f4254010d", "0000000000000003");
        EndsWithTheMac(bytes, "mobility/transport-reverse/v1");

        var (ok, parsed, consumed) = Read([.. bytes, 0xEE]);
        Assert.True(ok);
        Assert.Equal(102, consumed);
        var read = Assert.IsType<ReverseRequest>(parsed);
        Assert.Equal((Client, Server, Token, 3UL), (read.ClientGuid, read.ServerGuid, read.Token, read.Counter));
        Assert.True(read.VerifyMac(ResumeKey));
    }

    [Fact]
    public void Truncation_at_every_offset_asks_for_more_and_consumes_nothing()
        => TruncationAsksForMore(ReverseRequest.Create(ResumeKey, Client, Server, Token, 1).ToArray(), "reverse");

    [Fact]
    public void Counter_zero_is_malformed() => CounterZeroIsMalformed(ReverseRequest.Create(ResumeKey, Client, Server, Token, 1).ToArray());

    [Fact]
    public void Every_changed_byte_or_another_key_breaks_the_mac()
        => EveryChangedByteOrAnotherKeyBreaksTheMac<ReverseRequest>(ReverseRequest.Create(ResumeKey, Client, Server, Token, 9).ToArray());

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
        => RandomBodiesNeverThrowAnythingButMalformed<ReverseRequest>(HandshakeMessageType.Reverse, 102);
}
