using Mobility.Netlab.Emulation;

namespace Mobility.Netlab.Tests;

public sealed class DelayLineTests
{
    private static readonly long Ms = Stopwatch.Frequency / 1000;

    private static DelayLine Line(LinkEmulatorOptions options) => new(options, TimeProvider.System);

    [Fact]
    public void Packet_is_released_only_after_the_delay()
    {
        var line = Line(new LinkEmulatorOptions { Delay = TimeSpan.FromMilliseconds(25) });
        Assert.True(line.Enqueue(new byte[10], 10, now: 1000 * Ms));

        Assert.False(line.TryDequeueDue(1024 * Ms, out _));
        Assert.Equal(1025 * Ms, line.NextReleaseAt);
        Assert.True(line.TryDequeueDue(1025 * Ms, out var packet));
        Assert.Equal(10, packet.Length);
        Assert.Equal(1, line.Forwarded);
    }

    [Fact]
    public void Without_jitter_packets_keep_their_order_even_with_equal_release_times()
    {
        var line = Line(new LinkEmulatorOptions { Delay = TimeSpan.FromMilliseconds(5) });
        for (var i = 0; i < 50; i++)
        {
            line.Enqueue([(byte)i], 1, now: 0);
        }

        for (var i = 0; i < 50; i++)
        {
            Assert.True(line.TryDequeueDue(5 * Ms, out var packet));
            Assert.Equal(i, packet.Buffer[0]);
        }
    }

    [Fact]
    public void Queue_limit_tail_drops_and_counts()
    {
        var line = Line(new LinkEmulatorOptions { Delay = TimeSpan.FromMilliseconds(5), MaxQueuedPackets = 3 });
        var accepted = Enumerable.Range(0, 5).Count(_ => line.Enqueue(new byte[1], 1, now: 0));

        Assert.Equal(3, accepted);
        Assert.Equal(3, line.Count);
        Assert.Equal(2, line.DroppedByQueueLimit);
    }

    [Fact]
    public void Loss_rate_is_applied_per_packet()
    {
        var line = Line(new LinkEmulatorOptions { Loss = 0.25, Seed = 7, MaxQueuedPackets = 100_000 });
        var accepted = Enumerable.Range(0, 10_000).Count(_ => line.Enqueue(new byte[1], 1, now: 0));

        Assert.InRange(line.DroppedByLoss, 2200, 2800);
        Assert.Equal(10_000 - line.DroppedByLoss, accepted);
    }

    [Fact]
    public void Jitter_stays_within_bounds()
    {
        var line = Line(new LinkEmulatorOptions { Delay = TimeSpan.FromMilliseconds(20), Jitter = TimeSpan.FromMilliseconds(5), Seed = 1, MaxQueuedPackets = 10_000 });
        for (var i = 0; i < 1000; i++)
        {
            line.Enqueue(new byte[1], 1, now: 0);
        }

        var released = new List<long>();
        while (line.TryDequeueDue(long.MaxValue, out var packet))
        {
            released.Add(packet.ReleaseAt);
        }

        Assert.Equal(1000, released.Count);
        Assert.All(released, r => Assert.InRange(r, 15 * Ms, 25 * Ms));
        Assert.True(released.Distinct().Count() > 100, "jitter should spread release times");
    }

    [Theory]
    [InlineData(-1.0)]
    [InlineData(1.5)]
    public void Invalid_loss_is_rejected(double loss) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => Line(new LinkEmulatorOptions { Loss = loss }));
}
