using System.Buffers;

namespace Mobility.Transport.Internal;

/// <summary>
/// In-order bytes received and not yet read by the application: a queue of pooled segments.
/// Bounded by the receive window (checked by the connection before appending). Not thread-safe.
/// </summary>
internal sealed class ReceiveBuffer
{
    private readonly Queue<Segment> _segments = new();

    public long Length { get; private set; }

    /// <summary>Takes ownership of <paramref name="array"/> (rented from the shared pool).</summary>
    public void Append(byte[] array, int start, int count)
    {
        _segments.Enqueue(new Segment(array, start, start + count));
        Length += count;
    }

    public int Read(Span<byte> destination)
    {
        var total = 0;
        while (!destination.IsEmpty && _segments.Count > 0)
        {
            var segment = _segments.Peek();
            var n = Math.Min(segment.End - segment.Start, destination.Length);
            segment.Array.AsSpan(segment.Start, n).CopyTo(destination);
            destination = destination[n..];
            total += n;
            segment.Start += n;
            if (segment.Start == segment.End)
            {
                _segments.Dequeue();
                ArrayPool<byte>.Shared.Return(segment.Array);
            }
        }

        Length -= total;
        return total;
    }

    public void Clear()
    {
        while (_segments.Count > 0)
        {
            ArrayPool<byte>.Shared.Return(_segments.Dequeue().Array);
        }

        Length = 0;
    }

    private sealed class Segment(byte[] array, int start, int end)
    {
        public byte[] Array { get; } = array;

        public int Start { get; set; } = start;

        public int End { get; } = end;
    }
}
