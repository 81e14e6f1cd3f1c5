// The transport's, not System.Net's (both namespaces are global usings of this project).
using ProtocolViolationException = Mobility.Transport.Connections.ProtocolViolationException;

namespace Mobility.Transport.Tests.Connections;

/// <summary>The send window and retransmission buffer, without a connection.</summary>
public sealed class SendStateTests
{
    private static byte[] Bytes(int count, int seed = 0) => [.. Enumerable.Range(seed, count).Select(i => (byte)i)];

    [Fact]
    public void Writes_stop_at_the_window_and_an_ack_of_consumed_bytes_opens_it()
    {
        var send = new SendState(limit: 100);
        Assert.Equal(100, send.Append(Bytes(150)));
        Assert.Equal(0, send.Space);
        Assert.Equal(0, send.Append(Bytes(10)));
        Assert.False(send.ApplyPeerConsumed(0));
        Assert.True(send.ApplyPeerConsumed(40));
        Assert.Equal(40, send.Space);
        Assert.True(send.ApplyPeerConsumed(1_000));   // capped at what was written
        Assert.Equal(100, send.PeerConsumed);
    }

    [Fact]
    public void Taking_bytes_sends_them_in_order_and_counts_resent_bytes_after_a_rewind()
    {
        var send = new SendState(limit: 1 << 20);
        var data = Bytes(300);
        send.Append(data);
        var frame = new byte[128];
        var (offset, count, resent, fresh) = send.TakeNext(frame);
        Assert.Equal((0L, 128, 0L, 128L), (offset, count, resent, fresh));
        Assert.Equal(data[..128], frame);
        send.TakeNext(frame);
        Assert.Equal(256, send.Next);

        // A new path: the peer holds 100 bytes, so 100..256 go again.
        send.ApplyPeerReceived(100);
        send.RewindToPeerReceived();
        (offset, count, resent, fresh) = send.TakeNext(new byte[200]);
        Assert.Equal((100L, 200, 156L, 44L), (offset, count, resent, fresh));
        Assert.False(send.HasUnsent);
        Assert.Equal(200, send.Buffered);   // 0..100 released
    }

    [Fact]
    public void An_ack_beyond_what_was_sent_is_a_protocol_violation()
    {
        var send = new SendState(limit: 1000);
        send.Append(Bytes(10));
        Assert.Throws<ProtocolViolationException>(() => send.ApplyPeerReceived(11));   // no FIN yet: 10 is the most
        send.ShutDown();
        Assert.False(send.ApplyPeerReceived(10));
        Assert.Throws<ProtocolViolationException>(() => send.ApplyPeerReceived(12));
    }

    [Fact]
    public void Fin_takes_one_position_after_the_data_and_is_acknowledged_once()
    {
        var send = new SendState(limit: 1000);
        send.Append(Bytes(10));
        Assert.True(send.ShutDown());
        Assert.False(send.ShutDown());
        Assert.Equal(10, send.FinOffset);
        Assert.False(send.FinDue(finSentOnPath: false));   // data first
        send.TakeNext(new byte[10]);
        Assert.True(send.FinDue(finSentOnPath: false));
        Assert.False(send.FinDue(finSentOnPath: true));
        Assert.True(send.HasUnacknowledged);
        Assert.True(send.ApplyPeerReceived(11));
        Assert.False(send.ApplyPeerReceived(11));
        Assert.True(send.FinAcked);
        Assert.False(send.HasUnacknowledged);
        Assert.False(send.FinDue(finSentOnPath: false));
    }

    [Fact]
    public void Writing_after_shutdown_is_refused()
    {
        var send = new SendState(limit: 1000);
        send.ShutDown();
        Assert.Throws<InvalidOperationException>(() => send.Append(Bytes(1)));
    }
}
