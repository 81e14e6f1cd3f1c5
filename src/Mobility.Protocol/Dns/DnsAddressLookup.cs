using System.Buffers.Binary;
using System.Net;

namespace Mobility.Protocol.Dns;

/// <summary>The addresses a DNS response answered for one name and type, with the smallest TTL among them (seconds).</summary>
public sealed record DnsAddressAnswer(DnsResponseCode Code, IReadOnlyList<IPAddress> Addresses, uint? Ttl);

/// <summary>
/// The stub side of an A or AAAA lookup, as a client of a recursive resolver: <see cref="WriteQuery"/> builds the
/// query, <see cref="ReadAnswer"/> reads the response to it. The reader is bounds-checked as
/// <see cref="DnsMessageReader"/> is; it takes only the records of the asked type whose owner is the asked name or
/// a name a CNAME of the answer led to from it, and anything malformed is a <see cref="DnsFormatException"/>.
/// </summary>
public static class DnsAddressLookup
{
    private const ushort CnameType = 5;

    /// <summary>Most answer records read from one response: far more than any address set, and a bound on a hostile one.</summary>
    public const int MaxAnswers = 64;

    /// <summary>Writes a recursive query for <paramref name="name"/> of <paramref name="type"/> (A or AAAA); returns its length.</summary>
    public static int WriteQuery(ushort id, DnsName name, DnsType type, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (type is not (DnsType.A or DnsType.AAAA))
        {
            throw new ArgumentOutOfRangeException(nameof(type), "Only A and AAAA are looked up.");
        }

        var length = DnsLimits.HeaderSize + name.WireLength + 4;
        if (destination.Length < length)
        {
            throw new ArgumentException($"The query needs {length} octets.", nameof(destination));
        }

        destination[..DnsLimits.HeaderSize].Clear();
        BinaryPrimitives.WriteUInt16BigEndian(destination, id);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], 0x0100); // RD
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], 1);
        var offset = DnsLimits.HeaderSize;
        foreach (var label in name.Labels)
        {
            destination[offset++] = (byte)label.Length;
            label.CopyTo(destination[offset..]);
            offset += label.Length;
        }

        destination[offset++] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(destination[offset..], (ushort)type);
        BinaryPrimitives.WriteUInt16BigEndian(destination[(offset + 2)..], (ushort)DnsClass.IN);
        return offset + 4;
    }

    /// <summary>
    /// Reads the response to the query <see cref="WriteQuery"/> wrote with <paramref name="id"/>: null when the message
    /// is not that response (another id, not a response, another question: a stray datagram to ignore), otherwise its
    /// code and the addresses it answered. A truncated response (TC) answers what it holds.
    /// </summary>
    public static DnsAddressAnswer? ReadAnswer(ReadOnlySpan<byte> message, ushort id, DnsName name, DnsType type)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (message.Length < DnsLimits.HeaderSize || message.Length > DnsLimits.MaxMessageSize
            || BinaryPrimitives.ReadUInt16BigEndian(message) != id)
        {
            return null;
        }

        var flags = BinaryPrimitives.ReadUInt16BigEndian(message[2..]);
        if ((flags & 0x8000) == 0 || BinaryPrimitives.ReadUInt16BigEndian(message[4..]) != 1)
        {
            return null;
        }

        var answers = BinaryPrimitives.ReadUInt16BigEndian(message[6..]);
        var offset = DnsLimits.HeaderSize;
        var question = DnsMessageReader.ReadName(message, ref offset, id);
        if (offset + 4 > message.Length)
        {
            throw new DnsFormatException("The question is cut short.", id);
        }

        if (!SameName(question, name) || BinaryPrimitives.ReadUInt16BigEndian(message[offset..]) != (ushort)type)
        {
            return null;
        }

        offset += 4;
        var code = (DnsResponseCode)(flags & 0xF);
        var owners = new List<DnsName> { name };
        var addresses = new List<IPAddress>();
        uint? ttl = null;
        for (var i = 0; i < Math.Min((int)answers, MaxAnswers); i++)
        {
            var owner = DnsMessageReader.ReadName(message, ref offset, id);
            if (offset + 10 > message.Length)
            {
                throw new DnsFormatException("A record header is cut short.", id);
            }

            var recordType = BinaryPrimitives.ReadUInt16BigEndian(message[offset..]);
            var recordClass = BinaryPrimitives.ReadUInt16BigEndian(message[(offset + 2)..]);
            var recordTtl = BinaryPrimitives.ReadUInt32BigEndian(message[(offset + 4)..]) & 0x7FFF_FFFF; // RFC 2181 8
            var length = BinaryPrimitives.ReadUInt16BigEndian(message[(offset + 8)..]);
            offset += 10;
            if (offset + length > message.Length)
            {
                throw new DnsFormatException("A record's data runs past the end of the message.", id);
            }

            var data = message.Slice(offset, length);
            var ours = recordClass == (ushort)DnsClass.IN && owners.Exists(o => SameName(o, owner));
            if (ours && recordType == CnameType && owners.Count < DnsLimits.MaxCompressionPointers)
            {
                var target = offset;
                owners.Add(DnsMessageReader.ReadName(message, ref target, id));
            }
            else if (ours && recordType == (ushort)type && length == (type == DnsType.A ? 4 : 16))
            {
                addresses.Add(new IPAddress(data));
                ttl = ttl is { } least && least < recordTtl ? least : recordTtl;
            }

            offset += length;
        }

        return new DnsAddressAnswer(code, addresses, ttl);
    }

    private static bool SameName(DnsName a, DnsName b)
    {
        if (a.Labels.Count != b.Labels.Count)
        {
            return false;
        }

        for (var i = 0; i < a.Labels.Count; i++)
        {
            if (!DnsName.LabelEquals(a.Labels[i], b.Labels[i]))
            {
                return false;
            }
        }

        return true;
    }
}
