using System.Net;
using System.Net.Sockets;

namespace Mobility.Transport.Handshakes;

/// <summary>
/// What per-source limits and cookies are keyed by: an IPv4 address (/32), or the /64 of an IPv6
/// address (one subscriber or one LAN usually holds a whole /64, so counting single IPv6 addresses
/// would let one attacker be 2^64 sources). Encoded as 16 bytes: IPv4 as <c>::ffff:a.b.c.d</c>
/// (so an IPv4-mapped IPv6 peer is the same source), IPv6 with its last 8 bytes zeroed.
/// </summary>
internal readonly record struct SourcePrefix(UInt128 Value)
{
    public static SourcePrefix Of(IPAddress? address)
    {
        if (address is null)
        {
            return default;
        }

        Span<byte> bytes = stackalloc byte[16];
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            address = address.MapToIPv6();
        }

        address.TryWriteBytes(bytes, out _);
        if (!address.IsIPv4MappedToIPv6)
        {
            bytes[8..].Clear();
        }

        return new SourcePrefix(System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(bytes));
    }

    public void WriteTo(Span<byte> destination) => System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(destination, Value);

    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[16];
        WriteTo(bytes);
        var address = new IPAddress(bytes);
        return address.IsIPv4MappedToIPv6 ? address.MapToIPv4().ToString() : $"{address}/64";
    }
}
