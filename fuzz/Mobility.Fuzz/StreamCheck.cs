using System.Buffers;

namespace Mobility.Fuzz;

/// <summary>
/// Reads message number <paramref name="index"/> of a stream. Returns a description of the message
/// (which must cover every field read), or null for "need more bytes".
/// </summary>
public delegate string? StreamStep(ref SequenceReader<byte> reader, int index);

/// <summary>
/// Drives a stream parser (<c>TryRead(ref SequenceReader&lt;byte&gt;, out T)</c>) the way a receive loop
/// does, over the same bytes laid out three ways: one segment, two segments split at a point the
/// input chooses, and (for inputs up to <see cref="BytewiseLimit"/> bytes) one byte per segment. The
/// three transcripts must be equal, "need more bytes" must consume nothing, and a message must
/// consume at least one byte (or the receive loop would spin).
/// </summary>
public static class StreamCheck
{
    /// <summary>Inputs up to this size are also read one byte per segment (the costliest layout).</summary>
    public const int BytewiseLimit = 2048;

    public static FuzzOutcome Drain(ReadOnlySpan<byte> input, IReadOnlyList<Type> rejections, int maxMessages, StreamStep step)
    {
        ArgumentNullException.ThrowIfNull(rejections);
        ArgumentNullException.ThrowIfNull(step);
        var bytes = input.ToArray();
        var whole = Transcript(new ReadOnlySequence<byte>(bytes), rejections, maxMessages, step);

        var splitAt = bytes.Length == 0 ? 0 : ((bytes[^1] * 257) + bytes.Length) % (bytes.Length + 1);
        Compare(whole, Transcript(Segments(bytes, [splitAt]), rejections, maxMessages, step), $"split at {splitAt}");

        if (bytes.Length <= BytewiseLimit)
        {
            var cuts = Enumerable.Range(1, Math.Max(0, bytes.Length - 1)).ToArray();
            Compare(whole, Transcript(Segments(bytes, cuts), rejections, maxMessages, step), "one byte per segment");
        }

        return whole.Rejected ? FuzzOutcome.Rejected : FuzzOutcome.Accepted;
    }

    /// <summary>The bytes as a sequence of segments cut at the ascending offsets <paramref name="cuts"/>.</summary>
    public static ReadOnlySequence<byte> Segments(byte[] bytes, IReadOnlyList<int> cuts)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ArgumentNullException.ThrowIfNull(cuts);
        var bounds = new List<int> { 0 };
        bounds.AddRange(cuts.Where(c => c > 0 && c < bytes.Length));
        bounds.Add(bytes.Length);
        var first = new Segment(bytes.AsMemory(bounds[0], bounds[1] - bounds[0]), 0);
        var last = first;
        for (var i = 1; i < bounds.Count - 1; i++)
        {
            last = last.Append(bytes.AsMemory(bounds[i], bounds[i + 1] - bounds[i]));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private static (List<string> Lines, bool Rejected) Transcript(ReadOnlySequence<byte> sequence, IReadOnlyList<Type> rejections, int maxMessages, StreamStep step)
    {
        var reader = new SequenceReader<byte>(sequence);
        var lines = new List<string>();
        for (var index = 0; index < maxMessages; index++)
        {
            var consumed = reader.Consumed;
            string? message;
            try
            {
                message = step(ref reader, index);
            }
            catch (Exception e) when (rejections.Contains(e.GetType()))
            {
                lines.Add($"rejected at {consumed}: {e.GetType().Name}: {e.Message}");
                return (lines, true);
            }

            if (message is null)
            {
                if (reader.Consumed != consumed)
                {
                    throw new FuzzFailureException($"Message {index}: 'need more bytes' consumed {reader.Consumed - consumed} bytes.");
                }

                lines.Add($"need more at {consumed}");
                return (lines, false);
            }

            if (reader.Consumed == consumed)
            {
                throw new FuzzFailureException($"Message {index} was read without consuming a byte.");
            }

            lines.Add($"{consumed}..{reader.Consumed}: {message}");
        }

        return (lines, false);
    }

    private static void Compare((List<string> Lines, bool Rejected) expected, (List<string> Lines, bool Rejected) actual, string layout)
    {
        if (!expected.Lines.SequenceEqual(actual.Lines))
        {
            throw new FuzzFailureException(
                $"The parse depends on how the bytes were split ({layout}):\n  one segment: {string.Join(" | ", expected.Lines)}\n  {layout}: {string.Join(" | ", actual.Lines)}");
        }
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
