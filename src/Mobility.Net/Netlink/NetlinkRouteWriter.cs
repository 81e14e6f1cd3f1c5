using System.Buffers.Binary;
using System.Net;

namespace Mobility.Net.Netlink;

/// <summary>
/// Writes rtnetlink messages in the kernel's layout: the dump requests the address monitor sends, and
/// the address and link messages the kernel sends (for the tests and the fuzz corpus, which must feed
/// <see cref="NetlinkRouteReader"/> what a kernel would).
/// </summary>
public static class NetlinkRouteWriter
{
    /// <summary>A dump request (RTM_GETADDR or RTM_GETLINK for every family) with sequence number <paramref name="sequence"/>.</summary>
    public static byte[] DumpRequest(ushort type, uint sequence)
    {
        if (type is not (NetlinkRouteReader.RtmGetAddr or NetlinkRouteReader.RtmGetLink))
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "Only address and link dumps are requested.");
        }

        // nlmsghdr + rtgenmsg (one family byte, AF_UNSPEC), padded.
        return Message(type, (ushort)(NetlinkRouteReader.NlmFRequest | NetlinkRouteReader.NlmFDump), sequence, new byte[4]);
    }

    /// <summary>RTM_NEWADDR or RTM_DELADDR as the kernel sends it: ifaddrmsg, IFA_ADDRESS (and IFA_LOCAL for IPv4), IFA_FLAGS, IFA_CACHEINFO.</summary>
    public static byte[] Address(bool removed, int interfaceIndex, IPAddress address, byte prefixLength, uint flags,
        uint preferredLifetime = uint.MaxValue, uint validLifetime = uint.MaxValue, uint sequence = 0, byte scope = 0)
    {
        ArgumentNullException.ThrowIfNull(address);
        var v4 = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork;
        var body = new List<byte>
        {
            (byte)(v4 ? NetlinkRouteReader.AfInet : NetlinkRouteReader.AfInet6), prefixLength, (byte)flags, scope,
        };
        body.AddRange(U32((uint)interfaceIndex));
        var bytes = address.GetAddressBytes();
        Attribute(body, NetlinkRouteReader.IfaAddress, bytes);
        if (v4)
        {
            Attribute(body, NetlinkRouteReader.IfaLocal, bytes);
        }

        Attribute(body, NetlinkRouteReader.IfaFlags, U32(flags));
        Attribute(body, NetlinkRouteReader.IfaCacheInfo, [.. U32(preferredLifetime), .. U32(validLifetime), .. U32(100), .. U32(100)]);
        return Message(removed ? NetlinkRouteReader.RtmDelAddr : NetlinkRouteReader.RtmNewAddr, 0, sequence, [.. body]);
    }

    /// <summary>RTM_NEWLINK or RTM_DELLINK: ifinfomsg with no attributes.</summary>
    public static byte[] Link(bool removed, int interfaceIndex, uint flags, uint sequence = 0) =>
        Message(removed ? NetlinkRouteReader.RtmDelLink : NetlinkRouteReader.RtmNewLink, 0, sequence,
            [0, 0, 1, 0, .. U32((uint)interfaceIndex), .. U32(flags), .. U32(uint.MaxValue)]);

    /// <summary>NLMSG_DONE, the end of a dump.</summary>
    public static byte[] Done(uint sequence) => Message(NetlinkRouteReader.NlmsgDone, 0x2, sequence, new byte[4]);

    /// <summary>One message: nlmsghdr (length, type, flags, sequence, port 0) and the payload, padded to 4 bytes.</summary>
    public static byte[] Message(ushort type, ushort flags, uint sequence, byte[] payload)
    {
        ArgumentNullException.ThrowIfNull(payload);
        var length = NetlinkRouteReader.HeaderLength + payload.Length;
        var message = new byte[(length + 3) & ~3];
        U32(message, (uint)length);
        U16(message.AsSpan(4), type);
        U16(message.AsSpan(6), flags);
        U32(message.AsSpan(8), sequence);
        payload.CopyTo(message.AsSpan(NetlinkRouteReader.HeaderLength));
        return message;
    }

    private static void Attribute(List<byte> body, ushort type, byte[] value)
    {
        var header = new byte[4];
        U16(header, (ushort)(4 + value.Length));
        U16(header.AsSpan(2), type);
        body.AddRange(header);
        body.AddRange(value);
        while (body.Count % 4 != 0)
        {
            body.Add(0);
        }
    }

    private static byte[] U32(uint value)
    {
        var bytes = new byte[4];
        U32(bytes, value);
        return bytes;
    }

    private static void U32(Span<byte> bytes, uint value)
    {
        if (BitConverter.IsLittleEndian)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        }
    }

    private static void U16(Span<byte> bytes, ushort value)
    {
        if (BitConverter.IsLittleEndian)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(bytes, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        }
    }
}
