namespace Mobility.Transport.Tests.Connections;

/// <summary>The server's Resume checks, without a listener or a socket.</summary>
public sealed class ResumeResponderTests
{
    private static readonly UInt128 Token = 0x0123_4567_89ab_cdefUL;
    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);

    private ResumeRequest Resume(ulong counter, ulong received, byte[]? key = null)
        => ResumeRequest.Create(key ?? _key, Keys.Client.Guid, Keys.Server.Guid, Token, counter, received);

    private static SendState SentBytes(int count, long peerReceived)
    {
        var send = new SendState(limit: 1 << 20);
        send.Append(new byte[count]);
        send.TakeNext(new byte[count]);
        send.ApplyPeerReceived(peerReceived);
        return send;
    }

    [Fact]
    public void A_resume_without_the_resume_key_is_refused_and_changes_nothing()
    {
        var responder = new ResumeResponder(_key, Token);
        var forged = Resume(1, 0, key: RandomNumberGenerator.GetBytes(32));
        var send = SentBytes(100, 10);
        Assert.False(responder.VerifyMac(forged));
        Assert.Equal(ResumeVerdict.BadMac, responder.Check(forged, macValid: false, send));
        Assert.Equal(0UL, responder.LastCounter);
        Assert.Equal(10, send.PeerReceived);
    }

    [Fact]
    public void An_accepted_join_leaves_sending_alone_and_takes_the_counter_so_its_replay_and_older_resumes_are_refused()
    {
        var responder = new ResumeResponder(_key, Token);
        var send = SentBytes(100, 10);
        var receive = new ReceiveState(window: 1000);
        var join = ResumeRequest.Create(_key, Keys.Client.Guid, Keys.Server.Guid, Token, 3, 50, standby: true);
        Assert.True(responder.VerifyMac(join));
        Assert.Equal(ResumeVerdict.Accept, responder.Check(join, macValid: true, send));

        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(responder.AcceptJoin(join, receive)));
        Assert.True(HandshakeMessage.TryRead(ref reader, out var message));
        var joinAck = Assert.IsType<ResumeAck>(message);
        Assert.True(joinAck.Standby);
        Assert.Equal(3UL, joinAck.Counter);
        Assert.True(joinAck.VerifyMac(_key));
        Assert.Equal(3UL, responder.LastCounter);
        Assert.Equal((10, 100), (send.PeerReceived, send.Next));   // a standby changes nothing of the send state

        Assert.Equal(ResumeVerdict.Replayed, responder.Check(join, macValid: true, send));

        // An ACK on the active path may overtake the Join: a receive position below the acknowledged one is no contradiction for a Join.
        var overtaken = ResumeRequest.Create(_key, Keys.Client.Guid, Keys.Server.Guid, Token, 4, 5, standby: true);
        Assert.Equal(ResumeVerdict.Accept, responder.Check(overtaken, macValid: true, send));
        Assert.Equal(ResumeVerdict.Contradiction, responder.Check(Resume(4, 5), macValid: true, send));
        Assert.Equal(ResumeVerdict.Replayed, responder.Check(Resume(2, 50), macValid: true, send));
        var forged = ResumeRequest.Create(RandomNumberGenerator.GetBytes(32), Keys.Client.Guid, Keys.Server.Guid, Token, 9, 50, standby: true);
        Assert.Equal(ResumeVerdict.BadMac, responder.Check(forged, macValid: responder.VerifyMac(forged), send));
    }

    [Fact]
    public void An_accepted_resume_rewinds_sending_to_the_clients_position_and_is_answered_with_a_valid_ack()
    {
        var responder = new ResumeResponder(_key, Token);
        var send = SentBytes(100, 10);
        var receive = new ReceiveState(window: 1000);
        var buffer = ArrayPool<byte>.Shared.Rent(7);
        receive.AcceptData(0, buffer, 0, 7);
        var request = Resume(3, 60);
        Assert.True(responder.VerifyMac(request));
        Assert.Equal(ResumeVerdict.Accept, responder.Check(request, macValid: true, send));

        var answer = responder.Accept(request, send, receive);
        Assert.Equal(3UL, responder.LastCounter);
        Assert.Equal(60, send.PeerReceived);
        Assert.Equal(60, send.Next);   // resend from what the client holds
        Assert.Equal(7, receive.AckedReceived);
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(answer));
        Assert.True(HandshakeMessage.TryRead(ref reader, out var message));
        var ack = Assert.IsType<ResumeAck>(message);
        Assert.True(ack.VerifyMac(_key));
        Assert.Equal((Token, 3UL, 7UL), (ack.Token, ack.Counter, ack.ReceivedOffset));
        receive.Clear();
    }

    [Fact]
    public void A_counter_not_above_the_last_accepted_one_is_a_replay()
    {
        var responder = new ResumeResponder(_key, Token);
        var send = SentBytes(100, 0);
        var receive = new ReceiveState(window: 1000);
        responder.Accept(Resume(5, 0), send, receive);
        Assert.Equal(ResumeVerdict.Replayed, responder.Check(Resume(5, 0), macValid: true, send));
        Assert.Equal(ResumeVerdict.Replayed, responder.Check(Resume(4, 0), macValid: true, send));
        Assert.Equal(ResumeVerdict.Accept, responder.Check(Resume(6, 0), macValid: true, send));
    }

    [Theory]
    [InlineData(9UL)]                       // below what the client already acknowledged
    [InlineData(101UL)]                     // beyond what was sent (no FIN)
    [InlineData(ulong.MaxValue)]            // negative as a stream offset
    public void A_received_offset_the_peer_cannot_have_is_a_contradiction(ulong received)
    {
        var responder = new ResumeResponder(_key, Token);
        var send = SentBytes(100, 10);
        Assert.Equal(ResumeVerdict.Contradiction, responder.Check(Resume(1, received), macValid: true, send));
    }
}
