using System.Buffers.Binary;

namespace Mobility.Netlab.Soak;

/// <summary>
/// The application data of the soak: a deterministic pseudo-random stream in 16-byte blocks, each
/// <c>[u64 LE index][u64 LE Mix(seed, index)]</c>. A block names its own offset, so the receiver
/// checks every byte against its position and tells loss (a block index jumps ahead), duplication
/// (an index already seen comes again) and corruption (a block whose check word is wrong) apart,
/// which a hash of the whole stream cannot.
/// </summary>
public static class CheckedStream
{
    public const int BlockSize = 16;

    /// <summary>SplitMix64 of seed + index: the check word of block <paramref name="index"/>.</summary>
    public static ulong Mix(ulong seed, ulong index)
    {
        var z = seed + ((index + 1) * 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Fills <paramref name="buffer"/> (a multiple of <see cref="BlockSize"/>) with blocks from <paramref name="firstIndex"/> on.</summary>
    public static void Fill(Span<byte> buffer, ulong seed, ulong firstIndex)
    {
        for (var i = 0; i + BlockSize <= buffer.Length; i += BlockSize)
        {
            var index = firstIndex + (ulong)(i / BlockSize);
            BinaryPrimitives.WriteUInt64LittleEndian(buffer[i..], index);
            BinaryPrimitives.WriteUInt64LittleEndian(buffer[(i + 8)..], Mix(seed, index));
        }
    }
}

/// <summary>
/// Checks a received <see cref="CheckedStream"/> chunk by chunk (any split). Counts, in bytes:
/// in order, lost (blocks skipped, and at <see cref="Finish"/> blocks never received), duplicated
/// (blocks whose index was already passed) and corrupt (bytes skipped while looking for the next
/// valid block after a bad one).
/// </summary>
public sealed class StreamChecker(ulong seed)
{
    private readonly byte[] _carry = new byte[CheckedStream.BlockSize];
    private int _carried;

    /// <summary>Index of the next block expected in order.</summary>
    public ulong Next { get; private set; }

    public long Received { get; private set; }

    public long Lost { get; private set; }

    public long Duplicated { get; private set; }

    public long Corrupt { get; private set; }

    /// <summary>Offset (in bytes received) of the first anomaly, or -1.</summary>
    public long FirstAnomalyAt { get; private set; } = -1;

    public void Add(ReadOnlySpan<byte> data)
    {
        foreach (var b in data)
        {
            Received++;
            _carry[_carried++] = b;
            if (_carried < CheckedStream.BlockSize)
            {
                continue;
            }

            var index = BinaryPrimitives.ReadUInt64LittleEndian(_carry);
            var check = BinaryPrimitives.ReadUInt64LittleEndian(_carry.AsSpan(8));
            if (check != CheckedStream.Mix(seed, index))
            {
                // Not a block boundary: slide by one byte until a valid block appears again.
                Anomaly();
                Corrupt++;
                _carry.AsSpan(1).CopyTo(_carry);
                _carried--;
                continue;
            }

            _carried = 0;
            if (index == Next)
            {
                Next++;
            }
            else if (index > Next)
            {
                Anomaly();
                Lost += (long)(index - Next) * CheckedStream.BlockSize;
                Next = index + 1;
            }
            else
            {
                Anomaly();
                Duplicated += CheckedStream.BlockSize;
            }
        }
    }

    /// <summary>The stream ended: blocks of the <paramref name="sentBytes"/> never received are lost; a partial block is corrupt.</summary>
    public void Finish(long sentBytes)
    {
        var sentBlocks = (ulong)(sentBytes / CheckedStream.BlockSize);
        if (sentBlocks > Next)
        {
            Anomaly();
            Lost += (long)(sentBlocks - Next) * CheckedStream.BlockSize;
            Next = sentBlocks;
        }

        if (_carried > 0)
        {
            Anomaly();
            Corrupt += _carried;
            _carried = 0;
        }
    }

    private void Anomaly()
    {
        if (FirstAnomalyAt < 0)
        {
            FirstAnomalyAt = Received;
        }
    }
}
