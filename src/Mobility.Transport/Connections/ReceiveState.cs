using Mobility.Protocol;
using Mobility.Transport.Internal;

namespace Mobility.Transport.Connections;

/// <summary>
/// The receive direction of a connection: in-order bytes not yet read by the application, the
/// window, the frame counter, and what our last ACK said. <c>Consumed ≤ Received ≤ Consumed + Window</c>.
/// Not thread-safe (one owner).
/// </summary>
internal sealed class ReceiveState(long window)
{
    private readonly ReceiveBuffer _buffer = new();

    /// <summary>Our receive window (announced in the handshake).</summary>
    public long Window { get; } = window;

    /// <summary>Bytes received in order.</summary>
    public long Received { get; private set; }

    /// <summary>Bytes read by the application.</summary>
    public long Consumed { get; private set; }

    /// <summary>The peer's stream length once its FIN arrived, else -1.</summary>
    public long PeerFin { get; private set; } = -1;

    /// <summary>The highest frame counter accepted (counters continue across paths).</summary>
    public ulong Counter { get; private set; }

    /// <summary>The receive position our last ACK (or Resume/ResumeAck) announced.</summary>
    public long AckedReceived { get; private set; }

    /// <summary>The consumed position our last ACK announced.</summary>
    public long AckedConsumed { get; private set; }

    /// <summary>Received bytes waiting to be read.</summary>
    public long Buffered => _buffer.Length;

    /// <summary>Our cumulative receive position: data bytes, plus one once the peer's FIN is in.</summary>
    public long ReceivedValue => Received + (PeerFin >= 0 ? 1 : 0);

    /// <summary>The peer closed its side and everything was read.</summary>
    public bool AtEnd => PeerFin >= 0 && Received == PeerFin && _buffer.Length == 0;

    /// <summary>Bytes received or consumed after which an ACK is sent without waiting for anything else to carry it.</summary>
    public long AckEvery => Math.Min(Window / 8, 256 * 1024);

    /// <summary>An ACK now would tell the peer something new.</summary>
    public bool AckChanged => ReceivedValue != AckedReceived || Consumed != AckedConsumed;

    /// <summary>An ACK must go now: the peer's FIN is unacknowledged, or enough was received or consumed since the last ACK.</summary>
    public bool AckDue => (PeerFin >= 0 && ReceivedValue != AckedReceived)
        || ReceivedValue - AckedReceived >= AckEvery
        || Consumed - AckedConsumed >= AckEvery;

    /// <summary>Accepts a frame counter above every one accepted; a replayed or reordered frame is malformed (it fails the path).</summary>
    public void AcceptCounter(ulong counter)
    {
        if (counter <= Counter)
        {
            throw new MalformedMessageException($"Frame counter {counter} not above {Counter} (replayed frame).");
        }

        Counter = counter;
    }

    /// <summary>
    /// A DATA frame at <paramref name="offset"/> whose payload is <paramref name="array"/>[start ..
    /// start + count) (rented from the shared pool). Returns how many bytes were new (the buffer then
    /// owns <paramref name="array"/>: <c>Owned</c>) and how many were duplicates. Throws
    /// <see cref="ProtocolViolationException"/> for a gap, data beyond the window or after FIN.
    /// </summary>
    public (long Delivered, long Duplicate, bool Owned) AcceptData(long offset, byte[] array, int start, int count)
    {
        var end = offset + count;
        if (offset < 0 || end < offset)
        {
            throw new ProtocolViolationException("DATA offset overflow.");
        }

        if (end <= Received)
        {
            return (0, count, false);
        }

        if (offset > Received)
        {
            throw new ProtocolViolationException($"DATA at {offset} leaves a gap after {Received}.");
        }

        if (PeerFin >= 0)
        {
            throw new ProtocolViolationException("DATA after FIN.");
        }

        if (end > Consumed + Window)
        {
            throw new ProtocolViolationException($"DATA up to {end} exceeds the receive window ending at {Consumed + Window}.");
        }

        var skip = (int)(Received - offset);
        _buffer.Append(array, start + skip, count - skip);
        Received = end;
        return (count - skip, skip, true);
    }

    /// <summary>The peer's FIN at <paramref name="fin"/>: true the first time, false for a repeat; a FIN elsewhere is a violation.</summary>
    public bool AcceptFin(long fin)
    {
        if (PeerFin >= 0)
        {
            return fin == PeerFin ? false : throw new ProtocolViolationException("A second FIN at another offset.");
        }

        if (fin != Received)
        {
            throw new ProtocolViolationException($"FIN at {fin} while {Received} bytes were received.");
        }

        PeerFin = fin;
        return true;
    }

    /// <summary>Moves received bytes to <paramref name="destination"/>; the consumed position advances.</summary>
    public int Read(Span<byte> destination)
    {
        var n = _buffer.Read(destination);
        Consumed += n;
        return n;
    }

    /// <summary>An ACK (or a Resume/ResumeAck, which carry only the receive position) is being sent.</summary>
    public void MarkAcked(bool withConsumed)
    {
        AckedReceived = ReceivedValue;
        if (withConsumed)
        {
            AckedConsumed = Consumed;
        }
    }

    /// <summary>Returns the buffered segments to the pool.</summary>
    public void Clear() => _buffer.Clear();
}
