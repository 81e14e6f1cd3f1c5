using System.Buffers.Binary;
using System.Text;
using Mobility.Protocol.Dns;

namespace Mobility.Gns.Dns.Tests;

internal static class Records
{
    public static Locator At(string address, ushort port = 4000, LocatorKind kind = LocatorKind.Host) => new(IPAddress.Parse(address), port, kind);

    public static GnsRecord Make(HostKey key, ulong version, string? name, uint ttl, params Locator[] locators)
        => GnsRecord.Create(key, version, locators, ttl, name);
}

/// <summary>Builds query messages byte by byte, including broken ones.</summary>
internal static class Query
{
    public static byte[] Build(string name, DnsType type, ushort id = 0x1234, bool edns = false, ushort udpSize = 1232, bool dnssecOk = false,
        byte ednsVersion = 0, ushort qdCount = 1, ushort flags = 0x0100, DnsClass @class = DnsClass.IN)
    {
        var bytes = new List<byte>();
        AddUInt16(bytes, id);
        AddUInt16(bytes, flags);
        AddUInt16(bytes, qdCount);
        AddUInt16(bytes, 0);
        AddUInt16(bytes, 0);
        AddUInt16(bytes, edns ? (ushort)1 : (ushort)0);
        bytes.AddRange(Name(name));
        AddUInt16(bytes, (ushort)type);
        AddUInt16(bytes, (ushort)@class);
        if (edns)
        {
            bytes.Add(0);
            AddUInt16(bytes, (ushort)DnsType.OPT);
            AddUInt16(bytes, udpSize);
            bytes.Add(0);
            bytes.Add(ednsVersion);
            AddUInt16(bytes, dnssecOk ? (ushort)0x8000 : (ushort)0);
            AddUInt16(bytes, 0);
        }

        return [.. bytes];
    }

    public static byte[] Name(string name)
    {
        var bytes = new List<byte>();
        foreach (var label in name.TrimEnd('.').Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            bytes.Add((byte)label.Length);
            bytes.AddRange(Encoding.ASCII.GetBytes(label));
        }

        bytes.Add(0);
        return [.. bytes];
    }

    public static void AddUInt16(List<byte> bytes, ushort value)
    {
        bytes.Add((byte)(value >> 8));
        bytes.Add((byte)value);
    }
}

/// <summary>A minimal response reader for checking what the server wrote (names through DnsMessageReader.ReadName).</summary>
internal sealed record ParsedResponse(ushort Id, ushort Flags, int Code, DnsName Question, List<ParsedRecord> Answers, List<ParsedRecord> Authority,
    List<ParsedRecord> Additional, int Length)
{
    public bool Truncated => (Flags & 0x0200) != 0;

    public bool Authoritative => (Flags & 0x0400) != 0;

    public static ParsedResponse Parse(ReadOnlySpan<byte> message)
    {
        var id = BinaryPrimitives.ReadUInt16BigEndian(message);
        var flags = BinaryPrimitives.ReadUInt16BigEndian(message[2..]);
        Assert.True((flags & 0x8000) != 0, "QR must be set in a response.");
        var counts = new int[4];
        for (var i = 0; i < 4; i++)
        {
            counts[i] = BinaryPrimitives.ReadUInt16BigEndian(message[(4 + (2 * i))..]);
        }

        var offset = DnsLimits.HeaderSize;
        var question = DnsName.Root;
        if (counts[0] == 1)
        {
            question = DnsMessageReader.ReadName(message, ref offset);
            offset += 4;
        }

        var sections = new List<ParsedRecord>[3];
        for (var s = 0; s < 3; s++)
        {
            sections[s] = [];
            for (var i = 0; i < counts[s + 1]; i++)
            {
                var nameOffset = offset;
                var owner = DnsMessageReader.ReadName(message, ref offset);
                var type = BinaryPrimitives.ReadUInt16BigEndian(message[offset..]);
                var @class = BinaryPrimitives.ReadUInt16BigEndian(message[(offset + 2)..]);
                var ttl = BinaryPrimitives.ReadUInt32BigEndian(message[(offset + 4)..]);
                var length = BinaryPrimitives.ReadUInt16BigEndian(message[(offset + 8)..]);
                offset += 10;
                sections[s].Add(new ParsedRecord(owner, nameOffset, (DnsType)type, @class, ttl, message.Slice(offset, length).ToArray(), offset));
                offset += length;
            }
        }

        Assert.Equal(message.Length, offset);
        var code = flags & 0xF;
        if (sections[2].FirstOrDefault(r => r.Type == DnsType.OPT) is { } opt)
        {
            code |= (int)(opt.Ttl >> 24) << 4;
        }

        return new ParsedResponse(id, flags, code, question, sections[0], sections[1], sections[2], message.Length);
    }
}

internal sealed record ParsedRecord(DnsName Owner, int NameOffset, DnsType Type, ushort Class, uint Ttl, byte[] Data, int DataOffset);
