using System.Buffers.Binary;

namespace Mobility.Protocol.Dns;

/// <summary>
/// Reads DNS queries from a complete message (a UDP datagram or the body of a TCP frame). Every read is
/// bounds-checked; names obey the label, length and compression limits of <see cref="DnsLimits"/>.
/// Anything else is a <see cref="DnsFormatException"/>.
/// </summary>
public static class DnsMessageReader
{
    private const ushort QrFlag = 0x8000;

    /// <summary>
    /// Parses a query. A message that is a response (QR set) or shorter than a header is refused as
    /// unanswerable; other malformations carry the id so that the caller can answer FORMERR. Opcodes
    /// other than QUERY are returned as read (the responder answers NOTIMP) with the question not parsed
    /// (<see cref="DnsQuery.Name"/> is the root).
    /// </summary>
    public static DnsQuery ReadQuery(ReadOnlySpan<byte> message)
    {
        if (message.Length < DnsLimits.HeaderSize)
        {
            throw new DnsFormatException($"A DNS message is at least {DnsLimits.HeaderSize} octets, not {message.Length}.");
        }

        if (message.Length > DnsLimits.MaxMessageSize)
        {
            throw new DnsFormatException($"A DNS message is at most {DnsLimits.MaxMessageSize} octets.");
        }

        var id = BinaryPrimitives.ReadUInt16BigEndian(message);
        var flags = BinaryPrimitives.ReadUInt16BigEndian(message[2..]);
        if ((flags & QrFlag) != 0)
        {
            throw new DnsFormatException("The message is a response, not a query.", id, answerable: false);
        }

        var opcode = (byte)((flags >> 11) & 0xF);
        var rd = (flags & 0x0100) != 0;
        var cd = (flags & 0x0010) != 0;
        if (opcode != 0)
        {
            return new DnsQuery(id, opcode, rd, cd, DnsName.Root, 0, 0, null);
        }

        var qdCount = BinaryPrimitives.ReadUInt16BigEndian(message[4..]);
        var anCount = BinaryPrimitives.ReadUInt16BigEndian(message[6..]);
        var nsCount = BinaryPrimitives.ReadUInt16BigEndian(message[8..]);
        var arCount = BinaryPrimitives.ReadUInt16BigEndian(message[10..]);
        if (qdCount != 1)
        {
            throw new DnsFormatException($"A query has exactly one question, not {qdCount}.", id);
        }

        if (anCount != 0 || nsCount != 0)
        {
            throw new DnsFormatException("A query carries no answer or authority records.", id);
        }

        if (arCount > DnsLimits.MaxAdditionalRecords)
        {
            throw new DnsFormatException($"At most {DnsLimits.MaxAdditionalRecords} additional records, not {arCount}.", id);
        }

        var offset = DnsLimits.HeaderSize;
        var name = ReadName(message, ref offset, id);
        var type = ReadUInt16(message, ref offset, id);
        var @class = ReadUInt16(message, ref offset, id);
        if (type == (ushort)DnsType.OPT)
        {
            throw new DnsFormatException("OPT is not a question type.", id);
        }

        EdnsInfo? edns = null;
        for (var i = 0; i < arCount; i++)
        {
            var owner = ReadName(message, ref offset, id);
            var rrType = ReadUInt16(message, ref offset, id);
            var rrClass = ReadUInt16(message, ref offset, id);
            var ttl = ReadUInt32(message, ref offset, id);
            var rdLength = ReadUInt16(message, ref offset, id);
            if (rdLength > message.Length - offset)
            {
                throw new DnsFormatException($"RDATA of {rdLength} octets runs past the end of the message.", id);
            }

            var rdata = message.Slice(offset, rdLength);
            offset += rdLength;
            if (rrType != (ushort)DnsType.OPT)
            {
                continue;
            }

            if (edns is not null)
            {
                throw new DnsFormatException("A message has at most one OPT record.", id);
            }

            if (owner.Labels.Count != 0)
            {
                throw new DnsFormatException("The OPT record's owner must be the root.", id);
            }

            CheckOptions(rdata, id);
            edns = new EdnsInfo(rrClass, (byte)(ttl >> 16), (ttl & 0x8000) != 0);
        }

        if (offset != message.Length)
        {
            throw new DnsFormatException($"{message.Length - offset} octets after the last record.", id);
        }

        return new DnsQuery(id, opcode, rd, cd, name, type, @class, edns);
    }

    /// <summary>
    /// Reads a possibly compressed name at <paramref name="offset"/> and moves past it. A pointer must
    /// point into the message after the header and strictly before the label sequence that holds it,
    /// so following pointers always moves backwards and ends; their number is capped as well.
    /// </summary>
    public static DnsName ReadName(ReadOnlySpan<byte> message, ref int offset, ushort id = 0)
    {
        var labels = new List<byte[]>();
        var position = offset;
        var segmentStart = offset;
        var jumped = false;
        var pointers = 0;
        var length = 1;
        while (true)
        {
            if (position >= message.Length)
            {
                throw new DnsFormatException("A name runs past the end of the message.", id);
            }

            var b = message[position];
            switch (b & 0xC0)
            {
                case 0xC0:
                    if (position + 1 >= message.Length)
                    {
                        throw new DnsFormatException("A compression pointer is cut short.", id);
                    }

                    var target = ((b & 0x3F) << 8) | message[position + 1];
                    if (target < DnsLimits.HeaderSize || target >= segmentStart)
                    {
                        throw new DnsFormatException($"A compression pointer to {target} does not point backwards into the message.", id);
                    }

                    if (++pointers > DnsLimits.MaxCompressionPointers)
                    {
                        throw new DnsFormatException("Too many compression pointers in one name.", id);
                    }

                    if (!jumped)
                    {
                        offset = position + 2;
                        jumped = true;
                    }

                    position = target;
                    segmentStart = target;
                    continue;
                case 0x00:
                    break;
                default:
                    throw new DnsFormatException($"Label type 0x{b & 0xC0:x2} is not supported.", id);
            }

            if (b == 0)
            {
                if (!jumped)
                {
                    offset = position + 1;
                }

                return labels.Count == 0 ? DnsName.Root : new DnsName(labels);
            }

            if (position + 1 + b > message.Length)
            {
                throw new DnsFormatException("A label runs past the end of the message.", id);
            }

            length += b + 1;
            if (length > DnsLimits.MaxNameLength)
            {
                throw new DnsFormatException($"A name is longer than {DnsLimits.MaxNameLength} octets.", id);
            }

            labels.Add(message.Slice(position + 1, b).ToArray());
            position += 1 + b;
        }
    }

    /// <summary>EDNS options are (code, length, data) triples that must exactly fill the RDATA.</summary>
    private static void CheckOptions(ReadOnlySpan<byte> rdata, ushort id)
    {
        var offset = 0;
        while (offset < rdata.Length)
        {
            if (rdata.Length - offset < 4)
            {
                throw new DnsFormatException("An EDNS option header is cut short.", id);
            }

            var length = BinaryPrimitives.ReadUInt16BigEndian(rdata[(offset + 2)..]);
            offset += 4;
            if (length > rdata.Length - offset)
            {
                throw new DnsFormatException("An EDNS option runs past its record.", id);
            }

            offset += length;
        }
    }

    private static ushort ReadUInt16(ReadOnlySpan<byte> message, ref int offset, ushort id)
        => BinaryPrimitives.ReadUInt16BigEndian(Take(message, ref offset, sizeof(ushort), id));

    private static uint ReadUInt32(ReadOnlySpan<byte> message, ref int offset, ushort id)
        => BinaryPrimitives.ReadUInt32BigEndian(Take(message, ref offset, sizeof(uint), id));

    /// <summary>The next <paramref name="count"/> octets of a record, checked against the end of the message.</summary>
    private static ReadOnlySpan<byte> Take(ReadOnlySpan<byte> message, ref int offset, int count, ushort id)
    {
        if (message.Length - offset < count)
        {
            throw new DnsFormatException("The message ends inside a record.", id);
        }

        var field = message.Slice(offset, count);
        offset += count;
        return field;
    }
}
