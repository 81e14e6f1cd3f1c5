using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// The destination a redirected connection was made to, before nftables' REDIRECT rewrote it
/// (SO_ORIGINAL_DST: SOL_IP 80 for IPv4, IP6T_SO_ORIGINAL_DST, SOL_IPV6 80, for IPv6).
/// </summary>
public static class OriginalDestination
{
    private const int SolIp = 0;
    private const int SolIpv6 = 41;
    private const int SoOriginalDst = 80;

    /// <summary>The original destination, or null when the connection was not redirected (the kernel has no NAT entry for it).</summary>
    public static IPEndPoint? Of(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Span<byte> raw = stackalloc byte[28];
        try
        {
            var length = socket.AddressFamily == AddressFamily.InterNetworkV6
                ? socket.GetRawSocketOption(SolIpv6, SoOriginalDst, raw)
                : socket.GetRawSocketOption(SolIp, SoOriginalDst, raw[..16]);
            return Parse(raw[..length]);
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>Reads a sockaddr_in (16 octets) or sockaddr_in6 (28): family in host order, port and address in network order.</summary>
    public static IPEndPoint? Parse(ReadOnlySpan<byte> sockaddr)
    {
        if (sockaddr.Length < 2)
        {
            return null;
        }

        var family = BitConverter.ToUInt16(sockaddr);
        return family switch
        {
            2 when sockaddr.Length >= 8 => new IPEndPoint(new IPAddress(sockaddr.Slice(4, 4)), BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..])),
            10 when sockaddr.Length >= 24 => new IPEndPoint(new IPAddress(sockaddr.Slice(8, 16)), BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..])),
            _ => null,
        };
    }
}
