using System.Collections.Immutable;
using System.Net;
using System.Text;
using Mobility.Protocol.Wire;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Protocol.Gns;

/// <summary>Message types of the GNS datagram protocol; replies have the high bit set.</summary>
public enum GnsMessageType : byte
{
    LookupGuid = 0x01,
    LookupName = 0x02,
    Reverse = 0x03,
    Update = 0x04,
    Remove = 0x05,
    Reflect = 0x06,
    RecordReply = 0x81,
    GuidListReply = 0x83,
    UpdateAck = 0x84,
    RemoveAck = 0x85,
    ReflectReply = 0x86,
    Error = 0xFF,
}

/// <summary>Error codes carried by <see cref="GnsMessageType.Error"/> replies (and mapped to gRPC status codes).</summary>
public enum GnsErrorCode : byte
{
    NotFound = 1,
    BadSignature = 2,
    StaleVersion = 3,
    Malformed = 4,
    TooLarge = 5,
    RateLimited = 6,
    NameTaken = 7,
    UnsupportedVersion = 8,
    Internal = 9,
    InvalidRecord = 10,
    Unavailable = 11,
}

/// <summary>The fixed 8-byte header of every datagram: "MG", protocol version, type, request id.</summary>
public readonly record struct GnsHeader(byte Version, GnsMessageType Type, uint RequestId);

/// <summary>A parsed request. Exactly one of the payload properties is set, according to <see cref="Type"/>.</summary>
public sealed record GnsRequest(GnsMessageType Type, uint RequestId)
{
    public HostGuid Guid { get; init; }

    public string? Name { get; init; }

    public IPAddress? Address { get; init; }

    public GnsRecord? Record { get; init; }

    public GnsRemoval? Removal { get; init; }

    /// <summary>For a reflect: <see cref="GnsDatagram.ReflectFromOtherPort"/> asks for the answer from the GNS's other datagram port.</summary>
    public byte ReflectFlags { get; init; }
}

/// <summary>A parsed reply.</summary>
public sealed record GnsResponse(GnsMessageType Type, uint RequestId)
{
    public GnsRecord? Record { get; init; }

    public ImmutableArray<HostGuid> Guids { get; init; } = [];

    /// <summary>For a GUID list: more GUIDs exist than fitted; ask over HTTP for all of them.</summary>
    public bool Truncated { get; init; }

    /// <summary>For acks: the version now stored.</summary>
    public ulong Version { get; init; }

    /// <summary>For an update ack or a reflect reply: the source address and port the GNS saw (reflexive address).</summary>
    public IPEndPoint? Observed { get; init; }

    /// <summary>For a reflect reply: <see cref="GnsDatagram.ReflectFromOtherPort"/> when it was sent from the GNS's other datagram port.</summary>
    public byte ReflectFlags { get; init; }

    /// <summary>For a reflect reply: the GNS's other datagram port on the address the request reached (0: it has none).</summary>
    public int OtherPort { get; init; }

    public GnsErrorCode ErrorCode { get; init; }

    public string? ErrorMessage { get; init; }
}

/// <summary>
/// Reader and writer of the GNS datagram protocol (docs/protocol.md, "GNS datagrams"). One request
/// datagram, one reply datagram. A reply is never larger than <see cref="AmplificationFactor"/>
/// times its request, so the GNS cannot amplify a flood sent with a forged source address.
/// </summary>
public static class GnsDatagram
{
    public const byte ProtocolVersion = 1;
    public const int HeaderSize = 8;

    /// <summary>Largest datagram either side sends: fits the IPv6 minimum MTU (1280 - 40 - 8) without fragmentation.</summary>
    public const int MaxDatagramSize = 1232;

    /// <summary>A reply to an unverified source is at most this many times the size of its request.</summary>
    public const int AmplificationFactor = 3;

    /// <summary>Clients pad lookups to this size so that any record (at most 530 bytes with header) fits in 3x.</summary>
    public const int LookupPaddedSize = ((GnsRecord.MaxEncodedSize + HeaderSize) / AmplificationFactor) + 1;

    /// <summary>Clients pad reverse lookups to this size, leaving room for 61 GUIDs in the reply.</summary>
    public const int ReversePaddedSize = MaxDatagramSize / AmplificationFactor;

    /// <summary>
    /// Clients pad reflects to this size: the largest reflect reply (30 bytes, an IPv6 address) fits 3x of it with room to
    /// spare, and the request stays far smaller than a lookup.
    /// </summary>
    public const int ReflectPaddedSize = 16;

    /// <summary>Reflect flag (request and reply): the reply comes from the GNS's other datagram port (RFC 5780's CHANGE-REQUEST, port only).</summary>
    public const byte ReflectFromOtherPort = 0x01;

    /// <summary>Longest error text carried in a reply.</summary>
    public const int MaxErrorMessageBytes = 200;

    private const byte Magic0 = (byte)'M';
    private const byte Magic1 = (byte)'G';

    /// <summary>
    /// Reads the header. False means the datagram is not ours (too short or wrong magic) and is
    /// dropped without a reply. A header with another protocol version is returned as is.
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> datagram, out GnsHeader header)
    {
        header = default;
        if (datagram.Length < HeaderSize || datagram[0] != Magic0 || datagram[1] != Magic1)
        {
            return false;
        }

        header = new GnsHeader(datagram[2], (GnsMessageType)datagram[3],
            System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(datagram[4..]));
        return true;
    }

    /// <summary>The largest reply the server may send to a request of <paramref name="requestLength"/> bytes.</summary>
    public static int ReplyBudget(int requestLength) => Math.Min(MaxDatagramSize, AmplificationFactor * requestLength);

    // ---- Requests ------------------------------------------------------------------------------

    /// <exception cref="MalformedMessageException">Not a valid request of protocol version 1.</exception>
    public static GnsRequest ParseRequest(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length > MaxDatagramSize)
        {
            throw new MalformedMessageException($"Datagram of {datagram.Length} bytes exceeds {MaxDatagramSize}.");
        }

        if (!TryReadHeader(datagram, out var header))
        {
            throw new MalformedMessageException("Not a GNS datagram.");
        }

        if (header.Version != ProtocolVersion)
        {
            throw new MalformedMessageException($"Unsupported protocol version {header.Version}.");
        }

        var reader = new WireReader(datagram[HeaderSize..]);
        GnsRequest request;
        switch (header.Type)
        {
            case GnsMessageType.LookupGuid:
                request = new GnsRequest(header.Type, header.RequestId) { Guid = reader.ReadGuid() };
                break;
            case GnsMessageType.LookupName:
                var nameBytes = reader.ReadShortBytes(HostName.MaxLength);
                var name = HostName.Normalize(Encoding.ASCII.GetString(nameBytes), out var error)
                    ?? throw new MalformedMessageException(error ?? "Bad name.");
                request = new GnsRequest(header.Type, header.RequestId) { Name = name };
                break;
            case GnsMessageType.Reverse:
                request = new GnsRequest(header.Type, header.RequestId) { Address = reader.ReadAddress() };
                break;
            case GnsMessageType.Update:
                request = new GnsRequest(header.Type, header.RequestId) { Record = GnsRecord.Read(ref reader) };
                break;
            case GnsMessageType.Remove:
                request = new GnsRequest(header.Type, header.RequestId) { Removal = GnsRemoval.Read(ref reader) };
                break;
            case GnsMessageType.Reflect:
                request = new GnsRequest(header.Type, header.RequestId) { ReflectFlags = ReadReflectFlags(ref reader) };
                break;
            default:
                throw new MalformedMessageException($"Unknown request type 0x{(byte)header.Type:x2}.");
        }

        reader.EnsureEnd(allowZeroPadding: true);
        return request;
    }

    public static byte[] LookupGuid(uint requestId, HostGuid guid, int padTo = LookupPaddedSize)
    {
        var buffer = new byte[Math.Max(HeaderSize + HostGuid.Size, Math.Min(padTo, MaxDatagramSize))];
        var writer = Header(buffer, GnsMessageType.LookupGuid, requestId);
        writer.WriteGuid(guid);
        return buffer;
    }

    public static byte[] LookupName(uint requestId, string name, int padTo = LookupPaddedSize)
    {
        var canonical = HostName.Normalize(name, out var error) ?? throw new ArgumentException(error, nameof(name));
        var buffer = new byte[Math.Max(HeaderSize + 1 + canonical.Length, Math.Min(padTo, MaxDatagramSize))];
        var writer = Header(buffer, GnsMessageType.LookupName, requestId);
        writer.WriteShortBytes(Encoding.ASCII.GetBytes(canonical));
        return buffer;
    }

    public static byte[] Reverse(uint requestId, IPAddress address, int padTo = ReversePaddedSize)
    {
        var buffer = new byte[Math.Max(HeaderSize + 17, Math.Min(padTo, MaxDatagramSize))];
        var writer = Header(buffer, GnsMessageType.Reverse, requestId);
        writer.WriteAddress(Locator.Normalize(address));
        return buffer;
    }

    /// <summary>A reflect request (docs/protocol.md, "Reflect"): "which address and port do you see me at?".</summary>
    public static byte[] Reflect(uint requestId, byte flags = 0, int padTo = ReflectPaddedSize)
    {
        if ((flags & ~ReflectFromOtherPort) != 0)
        {
            throw new ArgumentException($"Unknown reflect flags 0x{flags:x2}.", nameof(flags));
        }

        var buffer = new byte[Math.Max(HeaderSize + 1, Math.Min(padTo, MaxDatagramSize))];
        var writer = Header(buffer, GnsMessageType.Reflect, requestId);
        writer.WriteByte(flags);
        return buffer;
    }

    public static byte[] Update(uint requestId, GnsRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return SignedRequest(GnsMessageType.Update, requestId, record.Encoded.Span);
    }

    public static byte[] Remove(uint requestId, GnsRemoval removal)
    {
        ArgumentNullException.ThrowIfNull(removal);
        return SignedRequest(GnsMessageType.Remove, requestId, removal.Encoded.Span);
    }

    /// <summary>A request whose body is one signed object exactly as its owner encoded it.</summary>
    private static byte[] SignedRequest(GnsMessageType type, uint requestId, ReadOnlySpan<byte> encoded)
    {
        var buffer = new byte[HeaderSize + encoded.Length];
        var writer = Header(buffer, type, requestId);
        writer.WriteBytes(encoded);
        return buffer;
    }

    // ---- Replies -------------------------------------------------------------------------------

    /// <summary>Writes a record reply into <paramref name="destination"/>; false if it does not fit.</summary>
    public static bool TryWriteRecord(Span<byte> destination, uint requestId, GnsRecord record, out int written)
    {
        ArgumentNullException.ThrowIfNull(record);
        written = 0;
        if (destination.Length < HeaderSize + record.Encoded.Length)
        {
            return false;
        }

        var writer = Header(destination, GnsMessageType.RecordReply, requestId);
        writer.WriteBytes(record.Encoded.Span);
        written = writer.Position;
        return true;
    }

    /// <summary>Writes as many GUIDs as fit; sets the truncated flag when some were left out.</summary>
    public static int WriteGuidList(Span<byte> destination, uint requestId, IReadOnlyList<HostGuid> guids, bool moreExist = false)
    {
        ArgumentNullException.ThrowIfNull(guids);
        if (destination.Length < HeaderSize + 2)
        {
            throw new ArgumentException("Destination too small for a GUID list.", nameof(destination));
        }

        var fit = Math.Min(Math.Min(guids.Count, byte.MaxValue), (destination.Length - HeaderSize - 2) / HostGuid.Size);

        var writer = Header(destination, GnsMessageType.GuidListReply, requestId);
        writer.WriteByte(fit < guids.Count || moreExist ? (byte)1 : (byte)0);
        writer.WriteByte((byte)fit);
        for (var i = 0; i < fit; i++)
        {
            writer.WriteGuid(guids[i]);
        }

        return writer.Position;
    }

    public static int WriteUpdateAck(Span<byte> destination, uint requestId, ulong version, IPEndPoint observed)
    {
        ArgumentNullException.ThrowIfNull(observed);
        var writer = Header(destination, GnsMessageType.UpdateAck, requestId);
        writer.WriteUInt64(version);
        writer.WriteAddress(Locator.Normalize(observed.Address));
        writer.WriteUInt16((ushort)observed.Port);
        return writer.Position;
    }

    /// <summary>The size of a reflect reply for <paramref name="observed"/>: 18 bytes for IPv4, 30 for IPv6.</summary>
    public static int ReflectReplySize(IPAddress observed)
    {
        ArgumentNullException.ThrowIfNull(observed);
        return HeaderSize + 1 + (Locator.Normalize(observed).AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 5 : 17) + 2 + 2;
    }

    /// <summary>Writes a reflect reply: the flags it was sent with, the source the GNS saw, and the GNS's other datagram port (0: none).</summary>
    public static int WriteReflectReply(Span<byte> destination, uint requestId, byte flags, IPEndPoint observed, int otherPort)
    {
        ArgumentNullException.ThrowIfNull(observed);
        ArgumentOutOfRangeException.ThrowIfNegative(otherPort);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(otherPort, ushort.MaxValue);
        var writer = Header(destination, GnsMessageType.ReflectReply, requestId);
        writer.WriteByte(flags);
        writer.WriteAddress(Locator.Normalize(observed.Address));
        writer.WriteUInt16((ushort)observed.Port);
        writer.WriteUInt16((ushort)otherPort);
        return writer.Position;
    }

    /// <summary>True when <paramref name="reply"/> is a reflect reply that must leave from the other datagram port.</summary>
    public static bool IsReflectFromOtherPort(ReadOnlySpan<byte> reply)
        => reply.Length > HeaderSize && TryReadHeader(reply, out var header) && header.Type == GnsMessageType.ReflectReply
           && (reply[HeaderSize] & ReflectFromOtherPort) != 0;

    public static int WriteRemoveAck(Span<byte> destination, uint requestId, ulong version)
    {
        var writer = Header(destination, GnsMessageType.RemoveAck, requestId);
        writer.WriteUInt64(version);
        return writer.Position;
    }

    /// <summary>Writes an error reply, cutting the message so the reply fits <paramref name="destination"/>.</summary>
    public static int WriteError(Span<byte> destination, uint requestId, GnsErrorCode code, string? message, byte version = ProtocolVersion)
    {
        var room = Math.Clamp(destination.Length - HeaderSize - 2, 0, MaxErrorMessageBytes);
        var text = Encoding.UTF8.GetBytes(message ?? "");
        var length = Math.Min(text.Length, room);
        // Never cut a UTF-8 sequence in half.
        while (length > 0 && length < text.Length && (text[length] & 0xC0) == 0x80)
        {
            length--;
        }

        var writer = Header(destination, GnsMessageType.Error, requestId, version);
        writer.WriteByte((byte)code);
        writer.WriteShortBytes(text.AsSpan(0, length));
        return writer.Position;
    }

    /// <exception cref="MalformedMessageException">Not a valid reply.</exception>
    public static GnsResponse ParseResponse(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length > MaxDatagramSize)
        {
            throw new MalformedMessageException($"Datagram of {datagram.Length} bytes exceeds {MaxDatagramSize}.");
        }

        if (!TryReadHeader(datagram, out var header))
        {
            throw new MalformedMessageException("Not a GNS datagram.");
        }

        var reader = new WireReader(datagram[HeaderSize..]);
        if (header.Type == GnsMessageType.Error)
        {
            // Error replies are readable whatever the version, so a client learns "unsupported version".
            var code = (GnsErrorCode)reader.ReadByte();
            var text = reader.ReadShortBytes(MaxErrorMessageBytes);
            reader.EnsureEnd(allowZeroPadding: false);
            return new GnsResponse(header.Type, header.RequestId)
            {
                ErrorCode = code,
                ErrorMessage = Encoding.UTF8.GetString(text),
            };
        }

        if (header.Version != ProtocolVersion)
        {
            throw new MalformedMessageException($"Unsupported protocol version {header.Version}.");
        }

        GnsResponse response;
        switch (header.Type)
        {
            case GnsMessageType.RecordReply:
                response = new GnsResponse(header.Type, header.RequestId) { Record = GnsRecord.Read(ref reader) };
                break;
            case GnsMessageType.GuidListReply:
                var flags = reader.ReadByte();
                if ((flags & ~1) != 0)
                {
                    throw new MalformedMessageException("Unknown flags.");
                }

                var count = reader.ReadByte();
                if (count * HostGuid.Size > reader.Remaining)
                {
                    throw new MalformedMessageException("GUID count exceeds the datagram.");
                }

                var guids = ImmutableArray.CreateBuilder<HostGuid>(count);
                for (var i = 0; i < count; i++)
                {
                    guids.Add(reader.ReadGuid());
                }

                response = new GnsResponse(header.Type, header.RequestId) { Guids = guids.MoveToImmutable(), Truncated = flags == 1 };
                break;
            case GnsMessageType.UpdateAck:
                var version = reader.ReadUInt64();
                var address = reader.ReadAddress();
                var port = reader.ReadUInt16();
                response = new GnsResponse(header.Type, header.RequestId) { Version = version, Observed = new IPEndPoint(address, port) };
                break;
            case GnsMessageType.RemoveAck:
                response = new GnsResponse(header.Type, header.RequestId) { Version = reader.ReadUInt64() };
                break;
            case GnsMessageType.ReflectReply:
                var reflectFlags = ReadReflectFlags(ref reader);
                var seen = reader.ReadAddress();
                var seenPort = reader.ReadUInt16();
                response = new GnsResponse(header.Type, header.RequestId)
                {
                    ReflectFlags = reflectFlags,
                    Observed = new IPEndPoint(seen, seenPort),
                    OtherPort = reader.ReadUInt16(),
                };
                break;
            default:
                throw new MalformedMessageException($"Unknown reply type 0x{(byte)header.Type:x2}.");
        }

        reader.EnsureEnd(allowZeroPadding: false);
        return response;
    }

    private static byte ReadReflectFlags(ref WireReader reader)
    {
        var flags = reader.ReadByte();
        return (flags & ~ReflectFromOtherPort) == 0 ? flags : throw new MalformedMessageException($"Unknown reflect flags 0x{flags:x2}.");
    }

    private static WireWriter Header(Span<byte> buffer, GnsMessageType type, uint requestId, byte version = ProtocolVersion)
    {
        var writer = new WireWriter(buffer);
        writer.WriteByte(Magic0);
        writer.WriteByte(Magic1);
        writer.WriteByte(version);
        writer.WriteByte((byte)type);
        writer.WriteUInt32(requestId);
        return writer;
    }

    public static string Describe(GnsErrorCode code) => code switch
    {
        GnsErrorCode.NotFound => "not found",
        GnsErrorCode.BadSignature => "rejected signature",
        GnsErrorCode.StaleVersion => "stale version",
        GnsErrorCode.Malformed => "malformed request",
        GnsErrorCode.TooLarge => "reply too large for a datagram",
        GnsErrorCode.RateLimited => "rate limited",
        GnsErrorCode.NameTaken => "name taken",
        GnsErrorCode.UnsupportedVersion => "unsupported protocol version",
        GnsErrorCode.Internal => "internal error",
        GnsErrorCode.InvalidRecord => "invalid record",
        GnsErrorCode.Unavailable => "unavailable",
        _ => $"error {(byte)code}",
    };
}
