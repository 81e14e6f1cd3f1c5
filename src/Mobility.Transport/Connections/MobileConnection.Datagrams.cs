using System.Buffers;
using System.Threading.Channels;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;

namespace Mobility.Transport;

/// <summary>A connection's datagram counters (<see cref="MobileConnectionStatistics.Datagrams"/>).</summary>
/// <param name="Sent">Datagrams laid out in a frame on a path (written, or lost with that path's write).</param>
/// <param name="Received">Datagrams received and queued for the application.</param>
/// <param name="DroppedOnSend">Datagrams refused by <see cref="MobileConnection.SendDatagram"/>: the send queue was full.</param>
/// <param name="DroppedOnReceive">Datagrams received while the receive queue was full.</param>
/// <param name="DroppedPathless">Datagrams refused or discarded because the connection had no path (or had ended).</param>
public readonly record struct DatagramStatistics(long Sent, long Received, long DroppedOnSend, long DroppedOnReceive, long DroppedPathless);

public readonly partial record struct MobileConnectionStatistics
{
    /// <summary>The datagram counters (read live, not only when the loop publishes).</summary>
    public DatagramStatistics Datagrams { get; init; }

    /// <summary>Switches from a relayed path to a direct one (docs/nat.md, "Direct paths").</summary>
    public int DirectUpgrades { get; init; }

    /// <summary>
    /// Server: DATA payload bytes dropped because a resumed client's first flight started beyond this end's receive
    /// position (docs/transport.md, "The first flight"); the client resends them from the ResumeAck's position.
    /// </summary>
    public long GapBytesDropped { get; init; }
}

/// <summary>
/// Datagrams (frame type 7, DATAGRAM): unreliable messages beside the byte stream, sealed like every
/// frame but never retransmitted and outside the stream's offsets and receive window. The application
/// queues them without waiting (<see cref="SendDatagram"/>); the loop lays them out after the control
/// frames, interleaved byte for byte with DATA (see BuildBatch). A full queue drops; a connection
/// without a path drops what is sent and what was still queued when the path was lost.
/// </summary>
public sealed partial class MobileConnection
{
    /// <summary>Largest datagram payload (<see cref="TransportConstants.MaxDatagramPayload"/>).</summary>
    public const int MaxDatagramSize = TransportConstants.MaxDatagramPayload;

    private DatagramQueue? _datagramsOutQueue;
    private DatagramQueue? _datagramsInQueue;
    private int _datagramWake; // 1 while a DatagramsQueued event is posted and not yet handled

    // Written with Interlocked from the application's threads and the loop.
    private long _datagramsSent;
    private long _datagramsReceived;
    private long _datagramsDroppedOnSend;
    private long _datagramsDroppedOnReceive;
    private long _datagramsDroppedPathless;

    // Made on first use: a connection that never carries a datagram costs two null fields.
    private DatagramQueue DatagramsOut => LazyInitializer.EnsureInitialized(ref _datagramsOutQueue,
        () => new DatagramQueue(_options.DatagramQueueLength, _options.DatagramQueueBytes));

    private DatagramQueue DatagramsIn => LazyInitializer.EnsureInitialized(ref _datagramsInQueue,
        () => NewReceiveQueue());

    private bool HasDatagramsToSend => _datagramsOutQueue is { Count: > 0 };

    private DatagramStatistics DatagramSnapshot() => new(
        Interlocked.Read(ref _datagramsSent),
        Interlocked.Read(ref _datagramsReceived),
        Interlocked.Read(ref _datagramsDroppedOnSend),
        Interlocked.Read(ref _datagramsDroppedOnReceive),
        Interlocked.Read(ref _datagramsDroppedPathless));

    /// <summary>
    /// Queues one datagram (1 to <see cref="MaxDatagramSize"/> bytes, copied) and returns at once:
    /// true when queued, false when dropped (the send queue is full, the connection has no path, or
    /// it has completed; each counted in <see cref="MobileConnectionStatistics.Datagrams"/>). Not
    /// retransmitted: a datagram in flight when a path dies is lost. Throws
    /// <see cref="MobileConnectionException"/> once the connection has failed.
    /// </summary>
    public bool SendDatagram(ReadOnlySpan<byte> datagram)
    {
        if (datagram.IsEmpty || datagram.Length > MaxDatagramSize)
        {
            throw new ArgumentOutOfRangeException(nameof(datagram), $"A datagram has 1 to {MaxDatagramSize} bytes.");
        }

        ThrowIfFailed();
        if (_publishedState is MobileConnectionState.Pathless or MobileConnectionState.Completed)
        {
            Interlocked.Increment(ref _datagramsDroppedPathless);
            return false;
        }

        if (!DatagramsOut.TryEnqueue(datagram))
        {
            Interlocked.Increment(ref _datagramsDroppedOnSend);
            return false;
        }

        if (Interlocked.Exchange(ref _datagramWake, 1) == 0 && !Post(DatagramsQueued.Instance))
        {
            // Disposed meanwhile: what was queued is freed by DisposeAsync.
            Volatile.Write(ref _datagramWake, 0);
        }

        return true;
    }

    /// <summary>
    /// Waits for the next datagram and copies it into <paramref name="buffer"/>; returns its length
    /// (a buffer shorter than the datagram gets its first bytes only, as a UDP socket truncates: a
    /// buffer of <see cref="MaxDatagramSize"/> never truncates). Returns 0 once the connection has
    /// completed and every received datagram was read; throws <see cref="MobileConnectionException"/>
    /// once it has failed.
    /// </summary>
    public async ValueTask<int> ReceiveDatagramAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        QueuedDatagram datagram;
        try
        {
            datagram = await DatagramsIn.DequeueAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            ThrowIfFailed();
            return 0;
        }

        try
        {
            var length = Math.Min(buffer.Length, datagram.Length);
            datagram.Array.AsSpan(0, length).CopyTo(buffer.Span);
            return length;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(datagram.Array);
        }
    }

    /// <summary>The receive queue, completed at once if the connection has already ended (a reader then sees the end, not a hang).</summary>
    private DatagramQueue NewReceiveQueue()
    {
        var queue = new DatagramQueue(_options.DatagramQueueLength, _options.DatagramQueueBytes);
        if (_ended.Task.IsCompleted)
        {
            queue.Complete();
        }

        return queue;
    }

    /// <summary>On the loop: the application queued datagrams; they go out with the next batch of the active path.</summary>
    private void OnDatagramsQueued()
    {
        Volatile.Write(ref _datagramWake, 0);
        if (_paths.Active is null)
        {
            DropQueuedDatagrams();
            return;
        }

        MarkActive();
    }

    /// <summary>On the loop, when the connection loses its path: queued datagrams would be stale by the time a path is back.</summary>
    private void DropQueuedDatagrams()
    {
        if (_datagramsOutQueue is { } queue)
        {
            Interlocked.Add(ref _datagramsDroppedPathless, queue.Clear());
        }
    }

    /// <summary>On the loop: lays out the oldest queued datagram at <paramref name="position"/>; returns the position after it.</summary>
    private int PlaceDatagram(byte[] output, int position, ref long placedBytes)
    {
        if (!DatagramsOut.TryDequeue(out var datagram))
        {
            return position;
        }

        datagram.Array.AsSpan(0, datagram.Length).CopyTo(BodyAt(output, position, datagram.Length));
        ArrayPool<byte>.Shared.Return(datagram.Array);
        placedBytes += datagram.Length;
        Interlocked.Increment(ref _datagramsSent);
        return PlaceControl(position, FrameType.Datagram, datagram.Length);
    }

    /// <summary>On the loop: a received DATAGRAM; true when the receive queue took its array.</summary>
    private bool AcceptDatagram(byte[] array, int length)
    {
        if (!DatagramsIn.TryEnqueue(array, length))
        {
            Interlocked.Increment(ref _datagramsDroppedOnReceive);
            return false;
        }

        Interlocked.Increment(ref _datagramsReceived);
        MarkActive();
        return true;
    }

    /// <summary>The connection ended: readers see the end once the queue is read; nothing more is queued to send.</summary>
    private void CompleteDatagrams()
    {
        DatagramsIn.Complete();
        _datagramsOutQueue?.Complete();
    }

    /// <summary>Dispose: frees the arrays still queued in either direction.</summary>
    private void ClearDatagrams()
    {
        _datagramsOutQueue?.Clear();
        _datagramsInQueue?.Clear();
    }
}
