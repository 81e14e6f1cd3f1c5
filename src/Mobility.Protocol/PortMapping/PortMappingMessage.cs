using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Wire;

namespace Mobility.Protocol.PortMapping;

/// <summary>Which port mapping protocol a gateway answered with.</summary>
public enum PortMappingProtocol
{
    /// <summary>RFC 6887, the Port Control Protocol (version 2).</summary>
    Pcp,

    /// <summary>RFC 6886, NAT Port Mapping Protocol (version 0), PCP's predecessor.</summary>
    NatPmp,

    /// <summary>UPnP Internet Gateway Device (WANIPConnection or WANPPPConnection over SOAP): <see cref="UpnpMessage"/>.</summary>
    Upnp,
}

/// <summary>The transport protocol of a mapping, by its IANA protocol number (PCP's field; NAT-PMP has opcode 1 for UDP, 2 for TCP).</summary>
public enum MappedTransport : byte
{
    Tcp = 6,
    Udp = 17,
}

/// <summary>
/// One reply of a PCP or NAT-PMP gateway (docs/protocol.md, "Port mapping"). <see cref="Opcode"/> is the request's
/// opcode (the reply bit cleared); <see cref="ExternalAddress"/> is null in a NAT-PMP mapping reply (that protocol
/// sends it only in the public address reply) and in error replies that carry none.
/// </summary>
public sealed record PortMappingReply(
    PortMappingProtocol Protocol,
    byte Opcode,
    int ResultCode,
    uint Epoch,
    uint Lifetime,
    MappedTransport? Transport,
    ushort InternalPort,
    ushort ExternalPort,
    IPAddress? ExternalAddress,
    PcpNonce Nonce)
{
    public bool Succeeded => ResultCode == 0;
}

/// <summary>The 96-bit nonce of a PCP MAP request: a gateway's answer must repeat it.</summary>
public readonly record struct PcpNonce(ulong High, uint Low)
{
    public const int Size = 12;

    public static PcpNonce Random()
    {
        Span<byte> bytes = stackalloc byte[Size];
        System.Security.Cryptography.RandomNumberGenerator.Fill(bytes);
        return Read(bytes);
    }

    public static PcpNonce Read(ReadOnlySpan<byte> bytes) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt32BigEndian(bytes[8..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, High);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], Low);
    }
}

/// <summary>
/// The requests mobilityd sends to its default gateway and the parser of the gateway's replies: PCP MAP (RFC 6887
/// sections 7 and 11) and NAT-PMP (RFC 6886 sections 3.2 and 3.3), IPv4 only. The parser checks structure only; the
/// caller checks that a reply answers its own request (<see cref="PortMappingReply.Nonce"/>, opcode, transport, port).
/// </summary>
public static class PortMappingMessage
{
    /// <summary>The UDP port a PCP or NAT-PMP server listens on (both protocols share it).</summary>
    public const int ServerPort = 5351;

    public const byte PcpVersion = 2;
    public const byte NatPmpVersion = 0;

    /// <summary>PCP opcode MAP; NAT-PMP opcodes: 0 public address, 1 map UDP, 2 map TCP. A reply sets bit 7 (128).</summary>
    public const byte PcpOpMap = 1;
    public const byte NatPmpOpPublicAddress = 0;
    public const byte ReplyBit = 0x80;

    /// <summary>A PCP MAP request or reply without options: 24-byte header + 36 bytes of MAP data.</summary>
    public const int PcpMapLength = 60;

    /// <summary>PCP's largest message (RFC 6887 section 7): nothing longer is read.</summary>
    public const int PcpMaxLength = 1100;

    public const int NatPmpMapRequestLength = 12;
    public const int NatPmpMapReplyLength = 16;
    public const int NatPmpPublicAddressReplyLength = 12;

    /// <summary>The shortest NAT-PMP reply: version, opcode, result and epoch (what an error such as "unsupported version" carries).</summary>
    public const int NatPmpHeaderLength = 8;

    /// <summary>PCP result UNSUPP_VERSION, also NAT-PMP's "unsupported version" (1): the gateway speaks the other protocol.</summary>
    public const int UnsupportedVersion = 1;

    /// <summary>A PCP MAP request (a renewal repeats the nonce; lifetime 0 deletes the mapping).</summary>
    public static byte[] WritePcpMap(IPAddress client, PcpNonce nonce, MappedTransport transport, ushort internalPort, ushort suggestedExternalPort, uint lifetime)
    {
        ArgumentNullException.ThrowIfNull(client);
        var bytes = new byte[PcpMapLength];
        var writer = new WireWriter(bytes);
        writer.WriteByte(PcpVersion);
        writer.WriteByte(PcpOpMap);
        writer.WriteUInt16(0);
        writer.WriteUInt32(lifetime);
        writer.WriteBytes(Mapped(client));
        nonce.Write(bytes.AsSpan(writer.Position, PcpNonce.Size));
        writer.WriteBytes(bytes.AsSpan(writer.Position, PcpNonce.Size));
        writer.WriteByte((byte)transport);
        writer.WriteBytes([0, 0, 0]);
        writer.WriteUInt16(internalPort);
        writer.WriteUInt16(suggestedExternalPort);
        // No preferred external address: the IPv4-mapped all-zeros address (RFC 6887 section 11.1).
        writer.WriteBytes(Mapped(IPAddress.Any));
        return bytes;
    }

    /// <summary>A NAT-PMP public address request (2 bytes).</summary>
    public static byte[] WriteNatPmpPublicAddress() => [NatPmpVersion, NatPmpOpPublicAddress];

    /// <summary>A NAT-PMP mapping request (lifetime 0 and suggested port 0 delete the mapping).</summary>
    public static byte[] WriteNatPmpMap(MappedTransport transport, ushort internalPort, ushort suggestedExternalPort, uint lifetime)
    {
        var bytes = new byte[NatPmpMapRequestLength];
        var writer = new WireWriter(bytes);
        writer.WriteByte(NatPmpVersion);
        writer.WriteByte(NatPmpOpcode(transport));
        writer.WriteUInt16(0);
        writer.WriteUInt16(internalPort);
        writer.WriteUInt16(suggestedExternalPort);
        writer.WriteUInt32(lifetime);
        return bytes;
    }

    /// <summary>A gateway's reply to a MAP request, without options (what a PCP server sends; the tests' and fuzz seeds' encoder).</summary>
    public static byte[] WritePcpMapReply(int resultCode, uint lifetime, uint epoch, PcpNonce nonce, MappedTransport transport, ushort internalPort,
        ushort externalPort, IPAddress externalAddress)
    {
        ArgumentNullException.ThrowIfNull(externalAddress);
        var bytes = new byte[PcpMapLength];
        var writer = new WireWriter(bytes);
        writer.WriteByte(PcpVersion);
        writer.WriteByte(PcpOpMap | ReplyBit);
        writer.WriteByte(0);
        writer.WriteByte((byte)resultCode);
        writer.WriteUInt32(lifetime);
        writer.WriteUInt32(epoch);
        writer.WriteBytes(new byte[12]);
        nonce.Write(bytes.AsSpan(writer.Position, PcpNonce.Size));
        writer.WriteBytes(bytes.AsSpan(writer.Position, PcpNonce.Size));
        writer.WriteByte((byte)transport);
        writer.WriteBytes([0, 0, 0]);
        writer.WriteUInt16(internalPort);
        writer.WriteUInt16(externalPort);
        writer.WriteBytes(Mapped(externalAddress));
        return bytes;
    }

    /// <summary>A NAT-PMP gateway's reply: to a public address request (<paramref name="transport"/> null) or to a mapping request.</summary>
    public static byte[] WriteNatPmpReply(int resultCode, uint epoch, MappedTransport? transport, IPAddress? publicAddress, ushort internalPort = 0,
        ushort externalPort = 0, uint lifetime = 0)
    {
        var bytes = new byte[transport is null ? NatPmpPublicAddressReplyLength : NatPmpMapReplyLength];
        var writer = new WireWriter(bytes);
        writer.WriteByte(NatPmpVersion);
        writer.WriteByte((byte)((transport is { } t ? NatPmpOpcode(t) : NatPmpOpPublicAddress) | ReplyBit));
        writer.WriteUInt16((ushort)resultCode);
        writer.WriteUInt32(epoch);
        if (transport is null)
        {
            writer.WriteBytes((publicAddress ?? IPAddress.Any).MapToIPv4().GetAddressBytes());
        }
        else
        {
            writer.WriteUInt16(internalPort);
            writer.WriteUInt16(externalPort);
            writer.WriteUInt32(lifetime);
        }

        return bytes;
    }

    public static byte NatPmpOpcode(MappedTransport transport) => transport == MappedTransport.Udp ? (byte)1 : (byte)2;

    /// <summary>
    /// Reads one datagram from the gateway's port. Version 2 is PCP, version 0 NAT-PMP (also what a NAT-PMP-only gateway
    /// sends to refuse a PCP request: result 1, unsupported version). Throws <see cref="MalformedMessageException"/> for
    /// anything else: another version, a request (reply bit clear), a truncated or over-long datagram, bad PCP options.
    /// </summary>
    public static PortMappingReply ParseReply(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length < 2)
        {
            throw new MalformedMessageException("Port mapping reply: shorter than its version and opcode.");
        }

        return datagram[0] switch
        {
            PcpVersion => ParsePcp(datagram),
            NatPmpVersion => ParseNatPmp(datagram),
            var v => throw new MalformedMessageException($"Port mapping reply: unknown version {v}."),
        };
    }

    private static PortMappingReply ParsePcp(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length > PcpMaxLength || datagram.Length % 4 != 0)
        {
            throw new MalformedMessageException($"PCP reply: {datagram.Length} bytes (a multiple of 4 up to {PcpMaxLength}).");
        }

        var reader = new WireReader(datagram);
        reader.ReadByte();
        var opcode = reader.ReadByte();
        if ((opcode & ReplyBit) == 0)
        {
            throw new MalformedMessageException("PCP reply: the reply bit is clear (a request).");
        }

        opcode &= 0x7f;
        reader.ReadByte();
        var result = reader.ReadByte();
        var lifetime = reader.ReadUInt32();
        var epoch = reader.ReadUInt32();
        reader.ReadBytes(12);
        if (opcode != PcpOpMap)
        {
            // ANNOUNCE, PEER or an unknown opcode: the header is all mobilityd reads of them.
            SkipOptions(ref reader);
            return new PortMappingReply(PortMappingProtocol.Pcp, opcode, result, epoch, lifetime, null, 0, 0, null, default);
        }

        if (reader.Remaining < PcpMapLength - 24)
        {
            throw new MalformedMessageException("PCP MAP reply: shorter than its 36 bytes of MAP data.");
        }

        var nonce = PcpNonce.Read(reader.ReadBytes(PcpNonce.Size));
        var protocol = reader.ReadByte();
        reader.ReadBytes(3);
        var internalPort = reader.ReadUInt16();
        var externalPort = reader.ReadUInt16();
        var external = ReadMapped(reader.ReadBytes(16));
        SkipOptions(ref reader);
        MappedTransport? transport = protocol switch
        {
            (byte)MappedTransport.Tcp => MappedTransport.Tcp,
            (byte)MappedTransport.Udp => MappedTransport.Udp,
            _ => null,
        };
        return new PortMappingReply(PortMappingProtocol.Pcp, opcode, result, epoch, lifetime, transport, internalPort, externalPort, external, nonce);
    }

    /// <summary>PCP options: code, reserved, u16 length, data padded to 4 bytes; each must fit the datagram (their contents are not used).</summary>
    private static void SkipOptions(ref WireReader reader)
    {
        while (reader.Remaining > 0)
        {
            reader.ReadByte();
            reader.ReadByte();
            var length = reader.ReadUInt16();
            var padded = (length + 3) & ~3;
            if (padded > reader.Remaining)
            {
                throw new MalformedMessageException($"PCP option of {length} bytes runs past the datagram.");
            }

            reader.ReadBytes(padded);
        }
    }

    private static PortMappingReply ParseNatPmp(ReadOnlySpan<byte> datagram)
    {
        var reader = new WireReader(datagram);
        reader.ReadByte();
        var opcode = reader.ReadByte();
        if ((opcode & ReplyBit) == 0)
        {
            throw new MalformedMessageException("NAT-PMP reply: the reply bit is clear (a request).");
        }

        opcode &= 0x7f;
        var result = reader.ReadUInt16();
        var epoch = reader.ReadUInt32();
        if (result != 0 && reader.Remaining == 0)
        {
            // An error may come as the 8-byte header alone (RFC 6886 section 3.5: "unsupported version").
            return new PortMappingReply(PortMappingProtocol.NatPmp, opcode, result, epoch, 0, null, 0, 0, null, default);
        }

        switch (opcode)
        {
            case NatPmpOpPublicAddress:
                var address = new IPAddress(reader.ReadBytes(4));
                return new PortMappingReply(PortMappingProtocol.NatPmp, opcode, result, epoch, 0, null, 0, 0, address, default);
            case 1 or 2:
                var internalPort = reader.ReadUInt16();
                var externalPort = reader.ReadUInt16();
                var lifetime = reader.ReadUInt32();
                var transport = opcode == 1 ? MappedTransport.Udp : MappedTransport.Tcp;
                return new PortMappingReply(PortMappingProtocol.NatPmp, opcode, result, epoch, lifetime, transport, internalPort, externalPort, null, default);
            default:
                throw new MalformedMessageException($"NAT-PMP reply: unknown opcode {opcode}.");
        }
    }

    /// <summary>An IPv4 address as PCP carries it (IPv4-mapped IPv6, 16 bytes); an IPv6 address as itself.</summary>
    private static byte[] Mapped(IPAddress address) =>
        (address.AddressFamily == AddressFamily.InterNetwork ? address.MapToIPv6() : address).GetAddressBytes();

    private static IPAddress ReadMapped(ReadOnlySpan<byte> bytes)
    {
        var address = new IPAddress(bytes);
        return address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
    }
}
