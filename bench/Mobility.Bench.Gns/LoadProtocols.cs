using System.Buffers.Binary;
using System.Text;
using Mobility.Protocol;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;

namespace Mobility.Bench.Gns;

/// <summary>What one reply says, judged cheaply in the hot loop.</summary>
public enum ReplyOutcome
{
    Ok,
    /// <summary>A reply for the right request id but the wrong host (GUID or question mismatch).</summary>
    WrongAnswer,
    NotFound,
    RateLimited,
    /// <summary>The server is full (GNS Unavailable): retry.</summary>
    Busy,
    /// <summary>The server holds this version already (GNS StaleVersion).</summary>
    Stale,
    Error,
    Malformed,
}

/// <summary>
/// One request/reply protocol driven by <see cref="LoadRunner"/>: writes the request for a host into a
/// slot's buffer and judges replies. Implementations are stateless and shared by all sockets.
/// </summary>
public abstract class LoadProtocol
{
    /// <summary>Bits of the request id the protocol carries (32 for GNS, 16 for DNS).</summary>
    public abstract int IdBits { get; }

    public abstract int MaxRequestSize { get; }

    public abstract string Name { get; }

    public abstract int WriteRequest(Span<byte> buffer, int item, uint id);

    public abstract bool TryReadId(ReadOnlySpan<byte> reply, out uint id);

    /// <summary>Cheap check, run on every reply.</summary>
    public abstract ReplyOutcome Check(ReadOnlySpan<byte> reply, ReadOnlySpan<byte> request, int item);

    /// <summary>Full decode (and signature check where there is one), run on a sample of replies.</summary>
    public abstract bool VerifyFully(ReadOnlySpan<byte> reply, int item);
}

/// <summary>GNS LookupGuid, padded as clients pad it (so a full record fits the 3x reply budget).</summary>
public sealed class GnsLookupProtocol(BenchData data) : LoadProtocol
{
    /// <summary>Where a record reply carries the GUID: header, then the record's format byte.</summary>
    private const int ReplyGuidOffset = GnsDatagram.HeaderSize + 1;

    public override int IdBits => 32;

    public override int MaxRequestSize => GnsDatagram.LookupPaddedSize;

    public override string Name => "gns-lookup";

    public override int WriteRequest(Span<byte> buffer, int item, uint id)
    {
        // The same layout as GnsDatagram.LookupGuid, written in place; the padding stays zero.
        buffer[0] = (byte)'M';
        buffer[1] = (byte)'G';
        buffer[2] = GnsDatagram.ProtocolVersion;
        buffer[3] = (byte)GnsMessageType.LookupGuid;
        BinaryPrimitives.WriteUInt32BigEndian(buffer[4..], id);
        data.Guid(item).CopyTo(buffer[GnsDatagram.HeaderSize..]);
        return GnsDatagram.LookupPaddedSize;
    }

    public override bool TryReadId(ReadOnlySpan<byte> reply, out uint id) => GnsIds.TryRead(reply, out id);

    public override ReplyOutcome Check(ReadOnlySpan<byte> reply, ReadOnlySpan<byte> request, int item)
    {
        switch ((GnsMessageType)reply[3])
        {
            case GnsMessageType.RecordReply:
                if (reply.Length < ReplyGuidOffset + HostGuid.Size)
                {
                    return ReplyOutcome.Malformed;
                }

                return reply.Slice(ReplyGuidOffset, HostGuid.Size).SequenceEqual(data.Guid(item)) ? ReplyOutcome.Ok : ReplyOutcome.WrongAnswer;
            case GnsMessageType.Error:
                return GnsIds.ErrorOutcome(reply);
            default:
                return ReplyOutcome.Malformed;
        }
    }

    public override bool VerifyFully(ReadOnlySpan<byte> reply, int item)
    {
        try
        {
            var response = GnsDatagram.ParseResponse(reply);
            return response.Record is { } record
                && record.Guid == HostGuid.FromBytes(data.Guid(item))
                && record.Verify()
                && record.HasAddress(BenchData.AddressOf(item));
        }
        catch (MalformedMessageException)
        {
            return false;
        }
    }
}

/// <summary>GNS Update of the pre-signed record of each host.</summary>
public sealed class GnsUpdateProtocol(BenchData data) : LoadProtocol
{
    public override int IdBits => 32;

    public override int MaxRequestSize => GnsDatagram.MaxDatagramSize;

    public override string Name => "gns-update";

    public override int WriteRequest(Span<byte> buffer, int item, uint id)
    {
        var template = data.Updates![item];
        template.CopyTo(buffer);
        BinaryPrimitives.WriteUInt32BigEndian(buffer[4..], id);
        return template.Length;
    }

    public override bool TryReadId(ReadOnlySpan<byte> reply, out uint id) => GnsIds.TryRead(reply, out id);

    public override ReplyOutcome Check(ReadOnlySpan<byte> reply, ReadOnlySpan<byte> request, int item)
        => (GnsMessageType)reply[3] switch
        {
            GnsMessageType.UpdateAck => ReplyOutcome.Ok,
            GnsMessageType.Error => GnsIds.ErrorOutcome(reply),
            _ => ReplyOutcome.Malformed,
        };

    public override bool VerifyFully(ReadOnlySpan<byte> reply, int item)
    {
        try
        {
            return GnsDatagram.ParseResponse(reply) is { Type: GnsMessageType.UpdateAck, Version: > 0 };
        }
        catch (MalformedMessageException)
        {
            return false;
        }
    }
}

internal static class GnsIds
{
    public static bool TryRead(ReadOnlySpan<byte> reply, out uint id)
    {
        if (reply.Length < GnsDatagram.HeaderSize + 1 || reply[0] != (byte)'M' || reply[1] != (byte)'G')
        {
            id = 0;
            return false;
        }

        id = BinaryPrimitives.ReadUInt32BigEndian(reply[4..]);
        return true;
    }

    public static ReplyOutcome ErrorOutcome(ReadOnlySpan<byte> reply) => (GnsErrorCode)reply[GnsDatagram.HeaderSize] switch
    {
        GnsErrorCode.NotFound => ReplyOutcome.NotFound,
        GnsErrorCode.RateLimited => ReplyOutcome.RateLimited,
        GnsErrorCode.Unavailable => ReplyOutcome.Busy,
        GnsErrorCode.StaleVersion => ReplyOutcome.Stale,
        _ => ReplyOutcome.Error,
    };
}

/// <summary>
/// DNS A queries for <c>&lt;guid-hex&gt;.zone.</c> (RD set, no EDNS, as dnsperf sends them), so the
/// same client can measure a DNS server serving the same names: the client's cost cancels out of the ratio.
/// </summary>
public sealed class DnsLookupProtocol : LoadProtocol
{
    private const int HeaderSize = 12;
    private readonly BenchData _data;
    private readonly byte[] _zoneLabels;

    public DnsLookupProtocol(BenchData data, string zone)
    {
        _data = data;
        var labels = new List<byte>();
        foreach (var label in zone.Trim('.').Split('.'))
        {
            labels.Add(checked((byte)label.Length));
            labels.AddRange(Encoding.ASCII.GetBytes(label.ToLowerInvariant()));
        }

        labels.Add(0);
        _zoneLabels = [.. labels];
    }

    public override int IdBits => 16;

    public override int MaxRequestSize => HeaderSize + 1 + HostGuid.TextLength + _zoneLabels.Length + 4;

    public override string Name => "dns-a";

    public override int WriteRequest(Span<byte> buffer, int item, uint id)
    {
        BinaryPrimitives.WriteUInt16BigEndian(buffer, (ushort)id);
        buffer[2] = 0x01; // RD
        buffer[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(buffer[4..], 1); // QDCOUNT
        buffer[6..HeaderSize].Clear();
        var p = HeaderSize;
        buffer[p++] = HostGuid.TextLength;
        var guid = _data.Guid(item);
        for (var i = 0; i < HostGuid.Size; i++)
        {
            buffer[p++] = Hex(guid[i] >> 4);
            buffer[p++] = Hex(guid[i] & 0xF);
        }

        _zoneLabels.CopyTo(buffer[p..]);
        p += _zoneLabels.Length;
        BinaryPrimitives.WriteUInt16BigEndian(buffer[p..], 1); // A
        BinaryPrimitives.WriteUInt16BigEndian(buffer[(p + 2)..], 1); // IN
        return p + 4;
    }

    public override bool TryReadId(ReadOnlySpan<byte> reply, out uint id)
    {
        if (reply.Length < HeaderSize || (reply[2] & 0x80) == 0)
        {
            id = 0;
            return false;
        }

        id = BinaryPrimitives.ReadUInt16BigEndian(reply);
        return true;
    }

    public override ReplyOutcome Check(ReadOnlySpan<byte> reply, ReadOnlySpan<byte> request, int item)
    {
        // The reply must echo our question (its bytes; Knot keeps the case we sent).
        var question = request[HeaderSize..];
        if (reply.Length < HeaderSize + question.Length || !reply.Slice(HeaderSize, question.Length).SequenceEqual(question))
        {
            return ReplyOutcome.WrongAnswer;
        }

        return (reply[3] & 0x0F) switch
        {
            0 => BinaryPrimitives.ReadUInt16BigEndian(reply[6..]) > 0 ? ReplyOutcome.Ok : ReplyOutcome.NotFound,
            3 => ReplyOutcome.NotFound,
            5 => ReplyOutcome.RateLimited,
            _ => ReplyOutcome.Error,
        };
    }

    public override bool VerifyFully(ReadOnlySpan<byte> reply, int item)
    {
        // Skip the question, then read the first answer: name (pointer or labels), type, class, TTL, RDATA.
        var p = HeaderSize;
        if (!SkipName(reply, ref p) || p + 4 > reply.Length)
        {
            return false;
        }

        p += 4;
        if (!SkipName(reply, ref p) || p + 10 > reply.Length)
        {
            return false;
        }

        var type = BinaryPrimitives.ReadUInt16BigEndian(reply[p..]);
        var length = BinaryPrimitives.ReadUInt16BigEndian(reply[(p + 8)..]);
        p += 10;
        return type == 1 && length == 4 && p + 4 <= reply.Length
            && reply.Slice(p, 4).SequenceEqual(BenchData.AddressOf(item).GetAddressBytes());
    }

    private static bool SkipName(ReadOnlySpan<byte> message, ref int p)
    {
        while (p < message.Length)
        {
            var length = message[p];
            if ((length & 0xC0) == 0xC0)
            {
                p += 2;
                return p <= message.Length;
            }

            p += 1 + length;
            if (length == 0)
            {
                return true;
            }
        }

        return false;
    }

    private static byte Hex(int nibble) => (byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
}
