using System.Buffers;
using System.Buffers.Binary;

namespace Mobility.Protocol.Gns;

/// <summary>
/// The GNS datagram protocol over a byte stream (the GNS's TLS endpoint, docs/protocol.md, "GNS over TLS"): each
/// message is one GNS datagram, unchanged, preceded by its length as a 16-bit big-endian integer. A length of 0 or
/// above <see cref="GnsDatagram.MaxDatagramSize"/> is a protocol error: the reader closes the stream.
/// </summary>
public static class GnsStreamFrame
{
    /// <summary>Bytes of the length prefix.</summary>
    public const int PrefixSize = 2;

    /// <summary>The largest frame: prefix and the largest datagram.</summary>
    public const int MaxFrameSize = PrefixSize + GnsDatagram.MaxDatagramSize;

    /// <summary>
    /// Reads one frame from the start of <paramref name="buffer"/>. True with the message when a whole frame is there;
    /// false when more bytes are needed (<paramref name="message"/> empty). <paramref name="consumed"/> is the position
    /// after the frame. Throws <see cref="MalformedMessageException"/> when the prefix names 0 or more than
    /// <see cref="GnsDatagram.MaxDatagramSize"/> bytes: the stream cannot be resynchronised and must be closed.
    /// </summary>
    public static bool TryRead(in ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> message, out SequencePosition consumed)
    {
        message = default;
        consumed = buffer.Start;
        if (buffer.Length < PrefixSize)
        {
            return false;
        }

        Span<byte> prefix = stackalloc byte[PrefixSize];
        buffer.Slice(0, PrefixSize).CopyTo(prefix);
        var length = ReadLength(prefix);
        if (buffer.Length < PrefixSize + length)
        {
            return false;
        }

        message = buffer.Slice(PrefixSize, length);
        consumed = message.End;
        return true;
    }

    /// <summary>The message length a prefix names; <see cref="MalformedMessageException"/> when it is 0 or too large.</summary>
    public static int ReadLength(ReadOnlySpan<byte> prefix)
    {
        var length = BinaryPrimitives.ReadUInt16BigEndian(prefix);
        if (length is 0 or > GnsDatagram.MaxDatagramSize)
        {
            throw new MalformedMessageException($"GNS stream frame of {length} bytes (1 to {GnsDatagram.MaxDatagramSize} allowed).");
        }

        return length;
    }

    /// <summary>Writes <paramref name="message"/> with its prefix into <paramref name="destination"/>; returns the bytes written.</summary>
    public static int Write(ReadOnlySpan<byte> message, Span<byte> destination)
    {
        if (message.Length is 0 or > GnsDatagram.MaxDatagramSize)
        {
            throw new ArgumentException($"A GNS stream frame holds 1 to {GnsDatagram.MaxDatagramSize} bytes.", nameof(message));
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)message.Length);
        message.CopyTo(destination[PrefixSize..]);
        return PrefixSize + message.Length;
    }

    /// <summary>A new array holding <paramref name="message"/> framed.</summary>
    public static byte[] Frame(ReadOnlySpan<byte> message)
    {
        var frame = new byte[PrefixSize + message.Length];
        Write(message, frame);
        return frame;
    }
}
