using System.Buffers;
using System.Buffers.Binary;

namespace Mobility.Protocol.Dns;

/// <summary>
/// Writes DNS responses into a caller's buffer, compressing names against every name already written
/// (RFC 1035 4.1.4; pointers only to offsets below 0x4000). When the response does not fit the size
/// limit (512 octets without EDNS, the negotiated size over UDP), it is written again with the TC bit
/// and no records, so that the client retries over TCP (RFC 2181 9, RFC 7766).
/// </summary>
public sealed class DnsMessageWriter
{
    private const int MaxPointerOffset = 0x3FFF;
    private readonly byte[] _buffer;
    private readonly int _limit;
    private readonly Dictionary<string, int> _names = new(StringComparer.Ordinal);
    private int _position;
    private bool _overflow;

    private DnsMessageWriter(byte[] buffer, int limit)
    {
        _buffer = buffer;
        _limit = limit;
    }

    /// <summary>
    /// Writes <paramref name="response"/> into <paramref name="destination"/>, at most <paramref name="maxSize"/>
    /// octets; returns the length. Sets TC (and drops every record) when the full response is larger.
    /// </summary>
    public static int WriteResponse(DnsResponse response, Span<byte> destination, int maxSize)
    {
        ArgumentNullException.ThrowIfNull(response);
        maxSize = Math.Min(maxSize, Math.Min(destination.Length, DnsLimits.MaxMessageSize));
        if (maxSize < DnsLimits.HeaderSize)
        {
            throw new ArgumentOutOfRangeException(nameof(maxSize), "Room for at least a header is needed.");
        }

        var scratch = ArrayPool<byte>.Shared.Rent(DnsLimits.MaxMessageSize);
        try
        {
            var full = new DnsMessageWriter(scratch, DnsLimits.MaxMessageSize);
            if (full.TryWrite(response, truncated: false) && full._position <= maxSize)
            {
                scratch.AsSpan(0, full._position).CopyTo(destination);
                return full._position;
            }

            var truncated = new DnsMessageWriter(scratch, maxSize);
            if (!truncated.TryWrite(response, truncated: true))
            {
                // Not even the question fits: header only, still with TC.
                truncated = new DnsMessageWriter(scratch, maxSize);
                truncated.WriteHeader(response, truncated: true, questions: 0, answers: 0, authority: 0, additional: 0);
            }

            scratch.AsSpan(0, truncated._position).CopyTo(destination);
            return truncated._position;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>
    /// The answer to a message <see cref="DnsMessageReader.ReadQuery"/> refused: FORMERR when its id was read and it may
    /// be answered, else nothing (0: drop it).
    /// </summary>
    public static int WriteFormatError(DnsFormatException error, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(error);
        return error is { Answerable: true, Id: { } id } ? WriteHeaderOnly(id, 0, false, DnsResponseCode.FormErr, destination) : 0;
    }

    /// <summary>NOTIMP to a query of another opcode than QUERY (its question is not parsed, so not echoed).</summary>
    public static int WriteNotImplemented(DnsQuery query, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(query);
        return WriteHeaderOnly(query.Id, query.Opcode, query.RecursionDesired, DnsResponseCode.NotImp, destination);
    }

    /// <summary>A header-only response with <paramref name="code"/> (FORMERR, NOTIMP) to a query whose question is not echoed.</summary>
    public static int WriteHeaderOnly(ushort id, byte opcode, bool recursionDesired, DnsResponseCode code, Span<byte> destination)
    {
        if (destination.Length < DnsLimits.HeaderSize)
        {
            throw new ArgumentException("Room for a header is needed.", nameof(destination));
        }

        destination[..DnsLimits.HeaderSize].Clear();
        BinaryPrimitives.WriteUInt16BigEndian(destination, id);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], Flags(opcode, authoritative: false, truncated: false, recursionDesired, (ushort)code));
        return DnsLimits.HeaderSize;
    }

    internal void WriteByte(byte value)
    {
        if (Ensure(1))
        {
            _buffer[_position++] = value;
        }
    }

    internal void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        if (Ensure(bytes.Length))
        {
            bytes.CopyTo(_buffer.AsSpan(_position));
            _position += bytes.Length;
        }
    }

    internal void WriteUInt16(ushort value)
    {
        if (Ensure(2))
        {
            BinaryPrimitives.WriteUInt16BigEndian(_buffer.AsSpan(_position), value);
            _position += 2;
        }
    }

    internal void WriteUInt32(uint value)
    {
        if (Ensure(4))
        {
            BinaryPrimitives.WriteUInt32BigEndian(_buffer.AsSpan(_position), value);
            _position += 4;
        }
    }

    /// <summary>Writes a name, ending in a pointer to the longest suffix already written (ASCII case ignored).</summary>
    internal void WriteName(DnsName name)
    {
        var labels = name.Labels;
        for (var i = 0; i < labels.Count; i++)
        {
            var key = SuffixKey(labels, i);
            if (_names.TryGetValue(key, out var pointer))
            {
                WriteUInt16((ushort)(0xC000 | pointer));
                return;
            }

            if (_position <= MaxPointerOffset)
            {
                _names[key] = _position;
            }

            WriteByte((byte)labels[i].Length);
            WriteBytes(labels[i]);
        }

        WriteByte(0);
    }

    private bool TryWrite(DnsResponse response, bool truncated)
    {
        var edns = response.Query.Edns is not null;
        var answers = truncated ? [] : response.Answers;
        var authority = truncated ? [] : response.Authority;
        WriteHeader(response, truncated, 1, answers.Count, authority.Count, edns ? 1 : 0);
        WriteName(response.Query.Name);
        WriteUInt16(response.Query.Type);
        WriteUInt16(response.Query.Class);
        foreach (var record in answers)
        {
            WriteRecord(record);
        }

        foreach (var record in authority)
        {
            WriteRecord(record);
        }

        if (response.Query.Edns is { } query)
        {
            // OPT: root owner, our UDP size as class, extended rcode / version 0 / DO echoed as TTL, no options.
            WriteByte(0);
            WriteUInt16((ushort)DnsType.OPT);
            WriteUInt16(Math.Max((ushort)DnsLimits.ClassicUdpSize, response.AdvertisedUdpSize));
            WriteUInt32(((uint)((ushort)response.Code >> 4) << 24) | (query.DnssecOk ? 0x8000u : 0));
            WriteUInt16(0);
        }

        return !_overflow;
    }

    private void WriteHeader(DnsResponse response, bool truncated, int questions, int answers, int authority, int additional)
    {
        _position = 0;
        _overflow = false;
        _names.Clear();
        var query = response.Query;
        WriteUInt16(query.Id);
        WriteUInt16(Flags(query.Opcode, response.Authoritative, truncated, query.RecursionDesired, (ushort)((ushort)response.Code & 0xF), query.CheckingDisabled));
        WriteUInt16((ushort)questions);
        WriteUInt16((ushort)answers);
        WriteUInt16((ushort)authority);
        WriteUInt16((ushort)additional);
    }

    private void WriteRecord(DnsRecord record)
    {
        WriteName(record.Owner);
        WriteUInt16((ushort)record.Type);
        WriteUInt16((ushort)DnsClass.IN);

        // TTLs are 31-bit (RFC 2181 8): a larger value would be read as 0.
        WriteUInt32(Math.Min(record.Ttl, int.MaxValue));
        var lengthAt = _position;
        WriteUInt16(0);
        record.WriteData(this);
        if (!_overflow)
        {
            BinaryPrimitives.WriteUInt16BigEndian(_buffer.AsSpan(lengthAt), (ushort)(_position - lengthAt - 2));
        }
    }

    private static ushort Flags(byte opcode, bool authoritative, bool truncated, bool recursionDesired, ushort code, bool checkingDisabled = false)
        => (ushort)(0x8000 | ((opcode & 0xF) << 11) | (authoritative ? 0x0400 : 0) | (truncated ? 0x0200 : 0)
                    | (recursionDesired ? 0x0100 : 0) | (checkingDisabled ? 0x0010 : 0) | (code & 0xF));

    /// <summary>False (and the writer marked overflowed, writing nothing more) when <paramref name="count"/> octets do not fit.</summary>
    private bool Ensure(int count)
    {
        if (_overflow || count > _limit - _position)
        {
            _overflow = true;
            return false;
        }

        return true;
    }

    /// <summary>The lowercase labels from <paramref name="start"/> on, each prefixed by its length, so that no two suffixes share a key.</summary>
    private static string SuffixKey(IReadOnlyList<byte[]> labels, int start)
    {
        var length = 0;
        for (var i = start; i < labels.Count; i++)
        {
            length += labels[i].Length + 1;
        }

        return string.Create(length, (labels, start), static (span, state) =>
        {
            var p = 0;
            for (var i = state.start; i < state.labels.Count; i++)
            {
                var label = state.labels[i];
                span[p++] = (char)label.Length;
                foreach (var b in label)
                {
                    span[p++] = (char)DnsName.ToLower(b);
                }
            }
        });
    }
}
