using System.Buffers;
using System.Threading.Channels;

namespace Mobility.Transport.Connections;

/// <summary>One queued datagram: its payload is <c>Array[..Length]</c>, an array rented from the shared pool.</summary>
internal readonly record struct QueuedDatagram(byte[] Array, int Length);

/// <summary>
/// A bounded queue of datagrams for one direction of a connection: at most <see cref="MaxCount"/>
/// datagrams and <see cref="MaxBytes"/> payload bytes. A datagram that does not fit is refused
/// (the caller counts the drop), never waited for: datagrams are not flow-controlled. Any thread
/// may enqueue and dequeue; the bounds are reserved with Interlocked before a datagram is queued,
/// so they hold at every instant. The queue owns the pooled arrays it holds.
/// </summary>
internal sealed class DatagramQueue
{
    private readonly Channel<QueuedDatagram> _items = Channel.CreateUnbounded<QueuedDatagram>(
        new UnboundedChannelOptions { SingleReader = false, SingleWriter = false, AllowSynchronousContinuations = false });

    private int _count;
    private long _bytes;

    public DatagramQueue(int maxCount, long maxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        MaxCount = maxCount;
        MaxBytes = maxBytes;
    }

    public int MaxCount { get; }

    public long MaxBytes { get; }

    /// <summary>Datagrams queued now.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Payload bytes queued now.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Copies <paramref name="payload"/> into a pooled array and queues it; false (nothing queued) when it does not fit or the queue is completed.</summary>
    public bool TryEnqueue(ReadOnlySpan<byte> payload)
    {
        if (!TryReserve(payload.Length))
        {
            return false;
        }

        var array = ArrayPool<byte>.Shared.Rent(payload.Length);
        payload.CopyTo(array);
        if (_items.Writer.TryWrite(new QueuedDatagram(array, payload.Length)))
        {
            return true;
        }

        Release(payload.Length);
        ArrayPool<byte>.Shared.Return(array);
        return false;
    }

    /// <summary>Queues a datagram already in a pooled array (the queue takes it); false when it does not fit (the caller keeps the array).</summary>
    public bool TryEnqueue(byte[] array, int length)
    {
        ArgumentNullException.ThrowIfNull(array);
        if (!TryReserve(length))
        {
            return false;
        }

        if (_items.Writer.TryWrite(new QueuedDatagram(array, length)))
        {
            return true;
        }

        Release(length);
        return false;
    }

    /// <summary>Takes the oldest datagram; the caller returns its array to the pool.</summary>
    public bool TryDequeue(out QueuedDatagram datagram)
    {
        if (!_items.Reader.TryRead(out datagram))
        {
            return false;
        }

        Release(datagram.Length);
        return true;
    }

    /// <summary>
    /// Waits for the oldest datagram (the caller returns its array to the pool). Throws
    /// <see cref="ChannelClosedException"/> once the queue is completed and empty.
    /// </summary>
    public async ValueTask<QueuedDatagram> DequeueAsync(CancellationToken cancellationToken)
    {
        while (await _items.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (TryDequeue(out var datagram))
            {
                return datagram;
            }
        }

        throw new ChannelClosedException();
    }

    /// <summary>No more datagrams are accepted; those queued can still be taken.</summary>
    public void Complete() => _items.Writer.TryComplete();

    /// <summary>Drops every queued datagram (their arrays go back to the pool); returns how many.</summary>
    public int Clear()
    {
        var dropped = 0;
        while (TryDequeue(out var datagram))
        {
            ArrayPool<byte>.Shared.Return(datagram.Array);
            dropped++;
        }

        return dropped;
    }

    private bool TryReserve(int length)
    {
        // Compare-and-swap, not add-then-undo: a reader (Count, Bytes) never sees a bound passed, even for an instant.
        while (true)
        {
            var count = Volatile.Read(ref _count);
            if (count >= MaxCount)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _count, count + 1, count) == count)
            {
                break;
            }
        }

        while (true)
        {
            var bytes = Interlocked.Read(ref _bytes);
            if (bytes + length > MaxBytes)
            {
                Interlocked.Decrement(ref _count);
                return false;
            }

            if (Interlocked.CompareExchange(ref _bytes, bytes + length, bytes) == bytes)
            {
                return true;
            }
        }
    }

    private void Release(int length)
    {
        Interlocked.Add(ref _bytes, -length);
        Interlocked.Decrement(ref _count);
    }
}

/// <summary>The application queued datagrams (posted once until the loop handles it): the active path has something to send.</summary>
internal sealed class DatagramsQueued : ConnectionEvent
{
    public static readonly DatagramsQueued Instance = new();
}
