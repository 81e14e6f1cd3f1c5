using System.Buffers;
using System.Buffers.Binary;

namespace Mobility.Protocol.Forwarding;

/// <summary>Status byte the server answers an <see cref="OpenHeader"/> with.</summary>
public enum OpenStatus : byte
{
    Ok = 0,
    NotExposed = 1,
    ConnectionRefused = 2,
}

/// <summary>
/// The first bytes a client writes on a mobile connection opened by mobilityd's forwarder:
/// magic "MOPN" (a TCP port: the stream is relayed) or "MUDP" (a UDP port: datagram frames are
/// relayed, the stream carries nothing more), then the target local port (u16, big endian). The
/// server answers with one <see cref="OpenStatus"/> byte; bytes or datagrams flow only after
/// <see cref="OpenStatus.Ok"/>.
/// </summary>
public static class OpenHeader
{
    public const int Size = 6;

    private static ReadOnlySpan<byte> Magic => "MOPN"u8;

    private static ReadOnlySpan<byte> UdpMagic => "MUDP"u8;

    public static byte[] Create(ushort port, bool udp = false)
    {
        var bytes = new byte[Size];
        (udp ? UdpMagic : Magic).CopyTo(bytes);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4), port);
        return bytes;
    }

    /// <summary>Either form (<paramref name="udp"/>: "MUDP"). False: need more bytes. <see cref="InvalidDataException"/>: not an open header.</summary>
    public static bool TryRead(ref SequenceReader<byte> reader, out ushort port, out bool udp)
    {
        port = 0;
        udp = false;
        Span<byte> header = stackalloc byte[Size];
        if (!reader.TryCopyTo(header))
        {
            // Fail early on a wrong magic even when the rest has not arrived.
            var available = (int)Math.Min(reader.Remaining, Magic.Length);
            reader.TryCopyTo(header[..available]);
            if (!header[..available].SequenceEqual(Magic[..available]) && !header[..available].SequenceEqual(UdpMagic[..available]))
            {
                throw new InvalidDataException("Not a mobilityd open header (bad magic).");
            }

            return false;
        }

        udp = header[..4].SequenceEqual(UdpMagic);
        if (!udp && !header[..4].SequenceEqual(Magic))
        {
            throw new InvalidDataException("Not a mobilityd open header (bad magic).");
        }

        port = BinaryPrimitives.ReadUInt16BigEndian(header[4..]);
        if (port == 0)
        {
            throw new InvalidDataException("Port 0 cannot be opened.");
        }

        reader.Advance(Size);
        return true;
    }
}
