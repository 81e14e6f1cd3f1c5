using System.Buffers.Binary;

namespace Mobility.Netlab.Traffic;

/// <summary>
/// The measurement payload: fixed-size chunks of [sequence u64 BE][send timestamp i64 BE][filler derived from the
/// sequence]. The receiver can thus detect lost, duplicated, reordered and corrupted bytes without trusting the stream.
/// </summary>
public static class Chunks
{
    /// <summary>1 KiB: small enough that a chunk fits one segment, large enough that headers do not dominate.</summary>
    public const int Size = 1024;

    public static void Write(Span<byte> chunk, long sequence, long timestamp)
    {
        BinaryPrimitives.WriteInt64BigEndian(chunk, sequence);
        BinaryPrimitives.WriteInt64BigEndian(chunk[8..], timestamp);
        for (var i = 16; i < Size; i++)
        {
            chunk[i] = Filler(sequence, i);
        }
    }

    /// <summary>Returns the sequence number, or -1 when the filler does not match (corrupted or misaligned stream).</summary>
    public static long Read(ReadOnlySpan<byte> chunk, out long timestamp)
    {
        var sequence = BinaryPrimitives.ReadInt64BigEndian(chunk);
        timestamp = BinaryPrimitives.ReadInt64BigEndian(chunk[8..]);
        for (var i = 16; i < Size; i += 61)
        {
            if (chunk[i] != Filler(sequence, i))
            {
                return -1;
            }
        }

        return sequence;
    }

    private static byte Filler(long sequence, int index) => (byte)((sequence * 31) + index);
}
