using Mobility.Protocol;
// The transport's, not System.Net's (both namespaces are global usings of this project).
using ProtocolViolationException = Mobility.Transport.Connections.ProtocolViolationException;

namespace Mobility.Transport.Tests.Connections;

/// <summary>The receive window, duplicate handling and violations, without a connection.</summary>
public sealed class ReceiveStateTests
{
    private static (long Delivered, long Duplicate, bool Owned) Data(ReceiveState receive, long offset, int count, byte first = 0)
    {
        var array = ArrayPool<byte>.Shared.Rent(count);
        for (var i = 0; i < count; i++)
        {
            array[i] = (byte)(first + i);
        }

        var result = receive.AcceptData(offset, array, 0, count);
        if (!result.Owned)
        {
            ArrayPool<byte>.Shared.Return(array);
        }

        return result;
    }

    [Fact]
    public void In_order_data_is_delivered_a_duplicate_is_counted_and_an_overlap_delivers_only_its_new_tail()
    {
        var receive = new ReceiveState(window: 1000);
        Assert.Equal((10L, 0L, true), Data(receive, 0, 10, first: 0));
        Assert.Equal((0L, 10L, false), Data(receive, 0, 10, first: 0));
        Assert.Equal((5L, 5L, true), Data(receive, 5, 10, first: 5));
        var read = new byte[32];
        Assert.Equal(15, receive.Read(read));
        Assert.Equal(Enumerable.Range(0, 15).Select(i => (byte)i), read[..15]);
        Assert.Equal(15, receive.Consumed);
        receive.Clear();
    }

    [Fact]
    public void A_gap_data_beyond_the_window_and_data_after_fin_are_protocol_violations()
    {
        var receive = new ReceiveState(window: 100);
        Assert.Throws<ProtocolViolationException>(() => Data(receive, 1, 10));
        Assert.Throws<ProtocolViolationException>(() => Data(receive, 0, 101));
        Data(receive, 0, 100);
        Assert.Throws<ProtocolViolationException>(() => Data(receive, 100, 1));   // window full until read
        receive.Read(new byte[50]);
        Data(receive, 100, 50);
        Assert.True(receive.AcceptFin(150));
        Assert.Throws<ProtocolViolationException>(() => Data(receive, 150, 1));
        receive.Clear();
    }

    [Fact]
    public void Fin_must_be_at_the_received_offset_and_may_repeat_only_there()
    {
        var receive = new ReceiveState(window: 1000);
        Data(receive, 0, 10);
        Assert.Throws<ProtocolViolationException>(() => receive.AcceptFin(9));
        Assert.True(receive.AcceptFin(10));
        Assert.False(receive.AcceptFin(10));
        Assert.Throws<ProtocolViolationException>(() => receive.AcceptFin(11));
        Assert.Equal(11, receive.ReceivedValue);
        Assert.False(receive.AtEnd);
        receive.Read(new byte[10]);
        Assert.True(receive.AtEnd);
    }

    [Fact]
    public void A_replayed_or_reordered_counter_is_malformed()
    {
        var receive = new ReceiveState(window: 1000);
        receive.AcceptCounter(1);
        receive.AcceptCounter(5);
        Assert.Throws<MalformedMessageException>(() => receive.AcceptCounter(5));
        Assert.Throws<MalformedMessageException>(() => receive.AcceptCounter(3));
        Assert.Equal(5UL, receive.Counter);
    }

    [Fact]
    public void An_ack_is_due_after_an_eighth_of_the_window_or_at_the_peers_fin()
    {
        var receive = new ReceiveState(window: 800);
        Assert.Equal(100, receive.AckEvery);
        Data(receive, 0, 99);
        Assert.True(receive.AckChanged);
        Assert.False(receive.AckDue);
        Data(receive, 99, 1);
        Assert.True(receive.AckDue);
        receive.MarkAcked(withConsumed: true);
        Assert.False(receive.AckChanged);
        receive.Read(new byte[100]);
        Assert.True(receive.AckDue);   // consumed 100 since the last ACK
        receive.MarkAcked(withConsumed: false);
        Assert.True(receive.AckChanged);   // a Resume carries only the receive position
        receive.MarkAcked(withConsumed: true);
        Assert.True(receive.AcceptFin(100));
        Assert.True(receive.AckDue);
    }
}
