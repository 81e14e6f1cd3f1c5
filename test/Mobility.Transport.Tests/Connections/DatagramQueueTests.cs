using System.Threading.Channels;
using Mobility.Transport.Connections;

namespace Mobility.Transport.Tests.Connections;

public class DatagramQueueTests
{
    [Fact]
    public void The_count_bound_refuses_the_next_datagram_and_a_dequeue_makes_room()
    {
        var queue = new DatagramQueue(maxCount: 3, maxBytes: 1 << 20);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(queue.TryEnqueue([(byte)i]));
        }

        Assert.False(queue.TryEnqueue([9]));
        Assert.Equal(3, queue.Count);
        Assert.True(queue.TryDequeue(out var first));
        Assert.Equal(0, first.Array[0]);
        Assert.True(queue.TryEnqueue([3]));
        Assert.Equal(3, queue.Clear());
        Assert.Equal(0, queue.Count);
        Assert.Equal(0, queue.Bytes);
    }

    [Fact]
    public void The_byte_bound_refuses_a_datagram_that_would_pass_it_but_takes_a_smaller_one()
    {
        var queue = new DatagramQueue(maxCount: 100, maxBytes: 1000);
        Assert.True(queue.TryEnqueue(new byte[600]));
        Assert.False(queue.TryEnqueue(new byte[401]));
        Assert.True(queue.TryEnqueue(new byte[400]));
        Assert.Equal(1000, queue.Bytes);
        Assert.Equal(2, queue.Count);
    }

    [Fact]
    public void A_refused_pooled_array_stays_with_the_caller_and_a_taken_one_comes_back_whole()
    {
        var queue = new DatagramQueue(maxCount: 1, maxBytes: 100);
        var kept = new byte[] { 1, 2, 3, 4 };
        Assert.True(queue.TryEnqueue(kept, 3));
        Assert.False(queue.TryEnqueue(new byte[4], 4));
        Assert.True(queue.TryDequeue(out var datagram));
        Assert.Same(kept, datagram.Array);
        Assert.Equal(3, datagram.Length);
    }

    [Fact]
    public async Task A_completed_queue_refuses_new_datagrams_hands_out_the_queued_ones_then_ends()
    {
        var queue = new DatagramQueue(maxCount: 4, maxBytes: 100);
        Assert.True(queue.TryEnqueue([7]));
        queue.Complete();
        Assert.False(queue.TryEnqueue([8]));
        Assert.Equal(1, queue.Count);
        var datagram = await queue.DequeueAsync(CancellationToken.None).AsTask().WithTimeout();
        Assert.Equal(7, datagram.Array[0]);
        await Assert.ThrowsAsync<ChannelClosedException>(() => queue.DequeueAsync(CancellationToken.None).AsTask().WithTimeout());
    }

    [Fact]
    public async Task Many_writers_at_once_never_pass_either_bound()
    {
        var queue = new DatagramQueue(maxCount: 50, maxBytes: 50 * 100);
        var accepted = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < 1000; i++)
            {
                if (queue.TryEnqueue(new byte[1 + ((w + i) % 150)]))
                {
                    Interlocked.Increment(ref accepted);
                }

                Assert.InRange(queue.Count, 0, 50);
                Assert.InRange(queue.Bytes, 0, 5000);
            }
        }))).WithTimeout();
        Assert.Equal(accepted, queue.Clear());
    }
}
