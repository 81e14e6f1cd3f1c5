using System.Buffers.Binary;
using System.Net;

namespace Mobility.Net.Netlink;

/// <summary>What one rtnetlink message said.</summary>
public enum NetlinkEventKind
{
    /// <summary>RTM_NEWADDR: an address was added or its flags or lifetimes changed.</summary>
    AddressAdded,

    /// <summary>RTM_DELADDR: an address was removed.</summary>
    AddressRemoved,

    /// <summary>RTM_NEWLINK: an interface appeared or its flags changed.</summary>
    LinkChanged,

    /// <summary>RTM_DELLINK: an interface went away.</summary>
    LinkRemoved,

    /// <summary>NLMSG_DONE: the end of a dump.</summary>
    Done,

    /// <summary>NLMSG_ERROR: the answer to a request (<see cref="NetlinkEvent.Error"/> 0 is an acknowledgement).</summary>
    Error,

    /// <summary>NLMSG_OVERRUN: messages were lost; the caller must read the whole table again.</summary>
    Overrun,
}

/// <summary>
/// One rtnetlink message as the address monitor needs it. Address fields are set for the address
/// kinds, <see cref="LinkFlags"/> for the link kinds, <see cref="Error"/> (a negative errno or 0) for
/// <see cref="NetlinkEventKind.Error"/>; <see cref="Sequence"/> is the message's sequence number.
/// </summary>
public sealed record NetlinkEvent(
    NetlinkEventKind Kind,
    uint Sequence,
    int InterfaceIndex = 0,
    IPAddress? Address = null,
    byte PrefixLength = 0,
    byte Scope = 0,
    uint Flags = 0,
    uint PreferredLifetime = uint.MaxValue,
    uint ValidLifetime = uint.MaxValue,
    uint LinkFlags = 0,
    int Error = 0);

/// <summary>
/// Reads the rtnetlink datagrams a NETLINK_ROUTE socket receives (address and link notifications and
/// dumps; <c>man 7 rtnetlink</c>): <c>nlmsghdr</c>, then <c>ifaddrmsg</c> with IFA_ADDRESS, IFA_LOCAL,
/// IFA_FLAGS and IFA_CACHEINFO, or <c>ifinfomsg</c>. Integers are in host byte order. Every length is
/// checked against what is left before it is used; a datagram that breaks a rule is refused with
/// <see cref="InvalidDataException"/> as a whole (the monitor then reads the kernel's table again).
/// Message types and attributes it does not need are skipped.
/// </summary>
public static class NetlinkRouteReader
{
    public const int AfInet = 2;
    public const int AfInet6 = 10;

    public const ushort NlmsgNoop = 1;
    public const ushort NlmsgError = 2;
    public const ushort NlmsgDone = 3;
    public const ushort NlmsgOverrun = 4;
    public const ushort RtmNewLink = 16;
    public const ushort RtmDelLink = 17;
    public const ushort RtmGetLink = 18;
    public const ushort RtmNewAddr = 20;
    public const ushort RtmDelAddr = 21;
    public const ushort RtmGetAddr = 22;

    public const ushort NlmFRequest = 0x1;
    public const ushort NlmFDump = 0x300;

    public const ushort IfaAddress = 1;
    public const ushort IfaLocal = 2;
    public const ushort IfaCacheInfo = 6;
    public const ushort IfaFlags = 8;

    /// <summary>IFA_F_* flags of an address (linux/if_addr.h).</summary>
    public const uint IfaFTemporary = 0x01;
    public const uint IfaFNoDad = 0x02;
    public const uint IfaFOptimistic = 0x04;
    public const uint IfaFDadFailed = 0x08;
    public const uint IfaFDeprecated = 0x20;
    public const uint IfaFTentative = 0x40;
    public const uint IfaFPermanent = 0x80;

    /// <summary>IFF_* flags of a link (linux/if.h).</summary>
    public const uint IffUp = 0x1;
    public const uint IffRunning = 0x40;

    /// <summary>RTMGRP_* multicast groups.</summary>
    public const uint RtmgrpLink = 0x1;
    public const uint RtmgrpIpv4Ifaddr = 0x10;
    public const uint RtmgrpIpv6Ifaddr = 0x100;

    public const int HeaderLength = 16;
    private const int IfAddrMsgLength = 8;
    private const int IfInfoMsgLength = 16;
    private const int RtAttrHeaderLength = 4;
    private const int CacheInfoLength = 16;

    /// <summary>Appends the events of one datagram to <paramref name="events"/> (nothing is appended when it is refused).</summary>
    /// <exception cref="InvalidDataException">A length, family or attribute size is out of bounds.</exception>
    public static void Read(ReadOnlySpan<byte> datagram, List<NetlinkEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var read = new List<NetlinkEvent>();
        var offset = 0;
        while (offset < datagram.Length)
        {
            var left = datagram.Length - offset;
            if (left < HeaderLength)
            {
                throw new InvalidDataException($"A netlink datagram ends with {left} bytes, fewer than a message header.");
            }

            var length = U32(datagram[offset..]);
            if (length < HeaderLength || length > (uint)left)
            {
                throw new InvalidDataException($"A netlink message claims {length} bytes where {left} are left.");
            }

            var type = U16(datagram[(offset + 4)..]);
            var sequence = U32(datagram[(offset + 8)..]);
            var payload = datagram.Slice(offset + HeaderLength, (int)length - HeaderLength);
            if (ReadMessage(type, sequence, payload) is { } e)
            {
                read.Add(e);
            }

            // Messages are padded to 4 bytes; the last one may end the datagram without its padding.
            offset += Math.Min(Align((int)length), left);
        }

        events.AddRange(read);
    }

    private static NetlinkEvent? ReadMessage(ushort type, uint sequence, ReadOnlySpan<byte> payload)
    {
        switch (type)
        {
            case NlmsgDone:
                return new NetlinkEvent(NetlinkEventKind.Done, sequence);
            case NlmsgOverrun:
                return new NetlinkEvent(NetlinkEventKind.Overrun, sequence);
            case NlmsgError:
                if (payload.Length < 4)
                {
                    throw new InvalidDataException("A netlink error message is shorter than its error code.");
                }

                return new NetlinkEvent(NetlinkEventKind.Error, sequence, Error: (int)U32(payload));
            case RtmNewAddr or RtmDelAddr:
                return ReadAddress(type == RtmDelAddr, sequence, payload);
            case RtmNewLink or RtmDelLink:
                if (payload.Length < IfInfoMsgLength)
                {
                    throw new InvalidDataException("A netlink link message is shorter than ifinfomsg.");
                }

                return new NetlinkEvent(type == RtmDelLink ? NetlinkEventKind.LinkRemoved : NetlinkEventKind.LinkChanged, sequence,
                    InterfaceIndex: (int)U32(payload[4..]), LinkFlags: U32(payload[8..]));
            default:
                return null;
        }
    }

    private static NetlinkEvent? ReadAddress(bool removed, uint sequence, ReadOnlySpan<byte> payload)
    {
        if (payload.Length < IfAddrMsgLength)
        {
            throw new InvalidDataException("A netlink address message is shorter than ifaddrmsg.");
        }

        var family = payload[0];
        if (family is not (AfInet or AfInet6))
        {
            // Other families (DECnet, MPLS, ...) are not ours to publish.
            return null;
        }

        var addressLength = family == AfInet ? 4 : 16;
        var prefixLength = payload[1];
        if (prefixLength > addressLength * 8)
        {
            throw new InvalidDataException($"A netlink address message has prefix length {prefixLength}.");
        }

        uint flags = payload[2];
        var scope = payload[3];
        var index = (int)U32(payload[4..]);
        IPAddress? address = null;
        IPAddress? local = null;
        uint preferred = uint.MaxValue;
        uint valid = uint.MaxValue;
        var attributes = payload[IfAddrMsgLength..];
        while (attributes.Length > 0)
        {
            if (attributes.Length < RtAttrHeaderLength)
            {
                throw new InvalidDataException("A netlink address message ends inside an attribute header.");
            }

            var length = U16(attributes);
            if (length < RtAttrHeaderLength || length > attributes.Length)
            {
                throw new InvalidDataException($"A netlink attribute claims {length} bytes where {attributes.Length} are left.");
            }

            // The top bits of rta_type are NLA_F_NESTED and NLA_F_NET_BYTEORDER.
            var type = (ushort)(U16(attributes[2..]) & 0x3FFF);
            var value = attributes[RtAttrHeaderLength..length];
            switch (type)
            {
                case IfaAddress:
                    address = ReadIp(value, addressLength);
                    break;
                case IfaLocal:
                    local = ReadIp(value, addressLength);
                    break;
                case IfaFlags:
                    flags = value.Length >= 4 ? U32(value) : throw new InvalidDataException("IFA_FLAGS is shorter than 4 bytes.");
                    break;
                case IfaCacheInfo:
                    if (value.Length < CacheInfoLength)
                    {
                        throw new InvalidDataException("IFA_CACHEINFO is shorter than ifa_cacheinfo.");
                    }

                    preferred = U32(value);
                    valid = U32(value[4..]);
                    break;
            }

            attributes = attributes[Math.Min(Align(length), attributes.Length)..];
        }

        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on a point-to-point link
        // and the only one an IPv6 address normally carries.
        var own = local ?? address ?? throw new InvalidDataException("A netlink address message carries no address.");
        return new NetlinkEvent(removed ? NetlinkEventKind.AddressRemoved : NetlinkEventKind.AddressAdded, sequence,
            index, own, prefixLength, scope, flags, preferred, valid);
    }

    private static IPAddress ReadIp(ReadOnlySpan<byte> value, int length) =>
        value.Length == length ? new IPAddress(value) : throw new InvalidDataException($"A netlink address attribute has {value.Length} bytes, not {length}.");

    private static int Align(int length) => (length + 3) & ~3;

    private static uint U32(ReadOnlySpan<byte> bytes) =>
        BitConverter.IsLittleEndian ? BinaryPrimitives.ReadUInt32LittleEndian(bytes) : BinaryPrimitives.ReadUInt32BigEndian(bytes);

    private static ushort U16(ReadOnlySpan<byte> bytes) =>
        BitConverter.IsLittleEndian ? BinaryPrimitives.ReadUInt16LittleEndian(bytes) : BinaryPrimitives.ReadUInt16BigEndian(bytes);
}
