using System.Net;
using System.Net.Sockets;

namespace Mobility.Protocol.Dns;

/// <summary>A resource record to write in an answer or authority section.</summary>
public abstract record DnsRecord(DnsName Owner, uint Ttl)
{
    public abstract DnsType Type { get; }

    /// <summary>Writes the RDATA (names in it may be compressed, which RFC 3597 allows for the types of RFC 1035).</summary>
    internal abstract void WriteData(DnsMessageWriter writer);
}

/// <summary>An A or AAAA record.</summary>
public sealed record DnsAddressRecord(DnsName Owner, uint Ttl, IPAddress Address) : DnsRecord(Owner, Ttl)
{
    public override DnsType Type => Address.AddressFamily == AddressFamily.InterNetworkV6 ? DnsType.AAAA : DnsType.A;

    internal override void WriteData(DnsMessageWriter writer)
    {
        Span<byte> bytes = stackalloc byte[16];
        Address.TryWriteBytes(bytes, out var written);
        writer.WriteBytes(bytes[..written]);
    }
}

/// <summary>A TXT record of character-strings, each at most 255 octets.</summary>
public sealed record DnsTxtRecord(DnsName Owner, uint Ttl, IReadOnlyList<byte[]> Strings) : DnsRecord(Owner, Ttl)
{
    public override DnsType Type => DnsType.TXT;

    internal override void WriteData(DnsMessageWriter writer)
    {
        foreach (var text in Strings)
        {
            if (text.Length > 255)
            {
                throw new ArgumentException("A TXT character-string is at most 255 octets.");
            }

            writer.WriteByte((byte)text.Length);
            writer.WriteBytes(text);
        }
    }
}

/// <summary>An NS record.</summary>
public sealed record DnsNsRecord(DnsName Owner, uint Ttl, DnsName NameServer) : DnsRecord(Owner, Ttl)
{
    public override DnsType Type => DnsType.NS;

    internal override void WriteData(DnsMessageWriter writer) => writer.WriteName(NameServer);
}

/// <summary>An SOA record (RFC 1035 3.3.13).</summary>
public sealed record DnsSoaRecord(DnsName Owner, uint Ttl, DnsName PrimaryServer, DnsName Mailbox, uint Serial, uint Refresh, uint Retry, uint Expire,
    uint Minimum) : DnsRecord(Owner, Ttl)
{
    public override DnsType Type => DnsType.SOA;

    internal override void WriteData(DnsMessageWriter writer)
    {
        writer.WriteName(PrimaryServer);
        writer.WriteName(Mailbox);
        writer.WriteUInt32(Serial);
        writer.WriteUInt32(Refresh);
        writer.WriteUInt32(Retry);
        writer.WriteUInt32(Expire);
        writer.WriteUInt32(Minimum);
    }
}

/// <summary>What a response says: flags, code, sections. Written by <see cref="DnsMessageWriter.WriteResponse"/>.</summary>
public sealed record DnsResponse(DnsQuery Query, DnsResponseCode Code, bool Authoritative, IReadOnlyList<DnsRecord> Answers, IReadOnlyList<DnsRecord> Authority)
{
    /// <summary>Our UDP payload size advertised in the OPT record of the response.</summary>
    public ushort AdvertisedUdpSize { get; init; } = 1232;
}
