using Mobility.Transport.Internal;

namespace Mobility.Transport.Connections;

/// <summary>The authenticated peer contradicted the protocol (the connection fails, not just the path).</summary>
internal sealed class ProtocolViolationException(string message) : Exception(message);

/// <summary>
/// The send direction of a connection: the retransmission buffer and the window, in stream offsets.
/// <c>PeerReceived ≤ Next ≤ Written</c>; <c>Written - PeerConsumed ≤ Limit</c>; FIN takes the
/// position after the last byte. Not thread-safe (one owner).
/// </summary>
internal sealed class SendState(long limit)
{
    private readonly SendBuffer _buffer = new();

    /// <summary>min(MaxUnackedBytes, the peer's announced receive window).</summary>
    public long Limit { get; } = limit;

    /// <summary>Bytes the application has written.</summary>
    public long Written { get; private set; }

    /// <summary>Offset of the next byte to send on the active path.</summary>
    public long Next { get; private set; }

    /// <summary>The highest offset ever sent (bytes below it that are sent again count as resent).</summary>
    public long HighestSent { get; private set; }

    /// <summary>Bytes the peer has received (from its ACK, Resume or ResumeAck); released from the buffer.</summary>
    public long PeerReceived { get; private set; }

    /// <summary>Bytes the peer's application has read: the window's left edge.</summary>
    public long PeerConsumed { get; private set; }

    /// <summary>The stream's length once writes were shut down, else -1.</summary>
    public long FinOffset { get; private set; } = -1;

    public bool FinAcked { get; private set; }

    public bool IsShutDown => FinOffset >= 0;

    /// <summary>Bytes the application may still write before the window is full.</summary>
    public long Space => Limit - (Written - PeerConsumed);

    public bool HasUnsent => Next < Written;

    /// <summary>Sent data or FIN the peer has not acknowledged.</summary>
    public bool HasUnacknowledged => Written > PeerReceived || (FinOffset >= 0 && !FinAcked);

    /// <summary>The highest receive position the peer may announce: every byte, plus one for FIN.</summary>
    public long MaxPeerReceived => Written + (FinOffset >= 0 ? 1 : 0);

    /// <summary>Bytes held for retransmission.</summary>
    public long Buffered => _buffer.Length;

    /// <summary>Copies as much of <paramref name="data"/> as the window allows; returns the count.</summary>
    public int Append(ReadOnlySpan<byte> data)
    {
        if (FinOffset >= 0)
        {
            throw new InvalidOperationException("Writes were shut down on this connection.");
        }

        var n = (int)Math.Clamp(Space, 0, data.Length);
        _buffer.Append(data[..n]);
        Written += n;
        return n;
    }

    /// <summary>Queues FIN after everything written; false if it was already queued.</summary>
    public bool ShutDown()
    {
        if (FinOffset >= 0)
        {
            return false;
        }

        FinOffset = Written;
        return true;
    }

    /// <summary>FIN should go out on a path that has not sent it: all data is sent and FIN is not acknowledged.</summary>
    public bool FinDue(bool finSentOnPath) => FinOffset >= 0 && Next == FinOffset && !finSentOnPath && !FinAcked;

    /// <summary>
    /// Applies the peer's cumulative receive position. Throws <see cref="ProtocolViolationException"/>
    /// beyond what was sent; returns true when this acknowledges our FIN for the first time.
    /// </summary>
    public bool ApplyPeerReceived(long received)
    {
        if (received > MaxPeerReceived || received < 0)
        {
            throw new ProtocolViolationException($"The peer acknowledged {received} bytes of {MaxPeerReceived} sent.");
        }

        var data = Math.Min(received, Written);
        if (data > PeerReceived)
        {
            PeerReceived = data;
            _buffer.ReleaseTo(data);
        }

        if (Next < PeerReceived)
        {
            Next = PeerReceived;
        }

        if (FinOffset >= 0 && received == FinOffset + 1 && !FinAcked)
        {
            FinAcked = true;
            return true;
        }

        return false;
    }

    /// <summary>Applies the peer's consumed position (capped at what was written); true when the window opened.</summary>
    public bool ApplyPeerConsumed(long consumed)
    {
        var c = Math.Min(consumed, Written);
        if (c <= PeerConsumed)
        {
            return false;
        }

        PeerConsumed = c;
        return true;
    }

    /// <summary>A new path: resend from what the peer is known to hold.</summary>
    public void RewindToPeerReceived() => Next = PeerReceived;

    /// <summary>A new path: send from <paramref name="offset"/> (between what the peer acknowledged and the highest offset sent).</summary>
    public void SkipTo(long offset)
    {
        if (offset < PeerReceived || offset > HighestSent)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"Not within [{PeerReceived}, {HighestSent}].");
        }

        Next = offset;
    }

    /// <summary>
    /// Copies the next unsent bytes (at most <paramref name="destination"/>'s length) and advances
    /// <see cref="Next"/>. Returns the stream offset of the first byte, the count, and how many of
    /// them were sent before (resent) and never before (new).
    /// </summary>
    public (long Offset, int Count, long Resent, long New) TakeNext(Span<byte> destination)
    {
        var offset = Next;
        var n = (int)Math.Min(destination.Length, Written - Next);
        _buffer.CopyTo(offset, destination[..n]);
        var resent = offset < HighestSent ? Math.Min(n, HighestSent - offset) : 0;
        Next += n;
        long fresh = 0;
        if (Next > HighestSent)
        {
            fresh = Next - HighestSent;
            HighestSent = Next;
        }

        return (offset, n, resent, fresh);
    }

    /// <summary>Returns the buffer's memory to the pool.</summary>
    public void Clear() => _buffer.Clear();
}
