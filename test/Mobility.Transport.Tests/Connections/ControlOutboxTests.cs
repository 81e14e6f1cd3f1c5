namespace Mobility.Transport.Tests.Connections;

/// <summary><see cref="ControlOutbox"/>: the control frames the loop queues for a path (no clock involved).</summary>
public sealed class ControlOutboxTests
{
    [Fact]
    public void A_new_path_owes_one_ack_and_nothing_else()
    {
        var outbox = new ControlOutbox();
        Assert.Equal([FrameType.Ack], outbox.Pending());
        Assert.Equal((true, false), outbox.TakeAckRequests());
        Assert.False(outbox.HasFrames);
        Assert.Empty(outbox.Pending());
    }

    [Fact]
    public void Repeated_requests_coalesce_so_a_stuck_write_leaves_the_outbox_bounded()
    {
        var outbox = new ControlOutbox();
        outbox.TakeAckRequests();
        for (ulong i = 1; i <= 1000; i++)
        {
            outbox.QueuePing();
            outbox.QueuePong(i);
            outbox.RequestAck();
        }

        Assert.Equal([FrameType.Pong, FrameType.Ping, FrameType.Ack], outbox.Pending());
        Assert.True(outbox.TryTakePong(out var pong));
        Assert.Equal(1000UL, pong);
        Assert.False(outbox.TryTakePong(out _));
        Assert.True(outbox.TakePing());
        Assert.False(outbox.TakePing());
        Assert.Equal((false, true), outbox.TakeAckRequests());
        Assert.False(outbox.HasFrames);
    }

    [Fact]
    public void A_reset_goes_alone_and_keeps_the_first_code()
    {
        var outbox = new ControlOutbox();
        outbox.QueuePing();
        outbox.QueueReset(1);
        outbox.QueueReset(2);
        Assert.Equal([FrameType.Reset], outbox.Pending());
        Assert.Equal(1U, outbox.TakeReset());
        Assert.Null(outbox.TakeReset());
    }
}
