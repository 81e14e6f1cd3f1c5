using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// The destination a redirected connection was made to, before nftables' REDIRECT rewrote it
/// (SO_ORIGINAL_DST: SOL_IP 80 for IPv4, IP6T_SO_ORIGINAL_DST, SOL_IPV6 80, for IPv6); and the destination
/// of a datagram TPROXY delivered (<see cref="FromControlMessages"/>).
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

    private const int IpOrigDstAddr = 20;
    private const int Ipv6OrigDstAddr = 74;

    /// <summary>
    /// The original destination of a datagram TPROXY delivered: the IP_ORIGDSTADDR (SOL_IP 20) or
    /// IPV6_ORIGDSTADDR (SOL_IPV6 74) control message among <paramref name="control"/> (recvmsg's msg_control,
    /// LP64 layout: each a cmsghdr of length (u64), level (i32), type (i32), then its data, each aligned to 8
    /// octets). Null when there is none or the messages are malformed (a length shorter than the header or
    /// running past the end).
    /// </summary>
    public static IPEndPoint? FromControlMessages(ReadOnlySpan<byte> control)
    {
        const int HeaderSize = 16;
        while (control.Length >= HeaderSize)
        {
            var length = BinaryPrimitives.ReadUInt64LittleEndian(control);
            if (length < HeaderSize || length > (ulong)control.Length)
            {
                return null;
            }

            var level = BinaryPrimitives.ReadInt32LittleEndian(control[8..]);
            var type = BinaryPrimitives.ReadInt32LittleEndian(control[12..]);
            if ((level, type) is (SolIp, IpOrigDstAddr) or (SolIpv6, Ipv6OrigDstAddr))
            {
                return Parse(control[HeaderSize..(int)length]);
            }

            var next = (int)((length + 7) & ~7UL);
            control = next >= control.Length ? [] : control[next..];
        }

        return null;
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
