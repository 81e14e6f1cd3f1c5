namespace Mobility.Protocol.Dns;

/// <summary>Resource record types this server reads or writes (RFC 1035, 3596, 6891).</summary>
public enum DnsType : ushort
{
    A = 1,
    NS = 2,
    SOA = 6,
    TXT = 16,
    AAAA = 28,
    OPT = 41,
    IXFR = 251,
    AXFR = 252,
    ANY = 255,
}

/// <summary>Classes (RFC 1035).</summary>
public enum DnsClass : ushort
{
    IN = 1,
    ANY = 255,
}

/// <summary>Response codes; values above 15 need the extended bits of an OPT record (RFC 6891).</summary>
public enum DnsResponseCode : ushort
{
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NXDomain = 3,
    NotImp = 4,
    Refused = 5,
    BadVers = 16,
}

/// <summary>The wire limits the reader enforces and the writer respects. Each says where it comes from.</summary>
public static class DnsLimits
{
    /// <summary>The fixed header (RFC 1035 4.1.1).</summary>
    public const int HeaderSize = 12;

    /// <summary>A label is at most 63 octets (RFC 1035 2.3.4): the two top bits of its length mark pointers.</summary>
    public const int MaxLabelLength = 63;

    /// <summary>A name is at most 255 octets on the wire, length octets and the root included (RFC 1035 2.3.4).</summary>
    public const int MaxNameLength = 255;

    /// <summary>
    /// Compression pointers followed while reading one name. Pointers must also point strictly before
    /// the previous one, so a loop is impossible anyway; 16 is far more than a real name needs (a name
    /// of 127 one-octet labels would need one pointer) and stops a chain early.
    /// </summary>
    public const int MaxCompressionPointers = 16;

    /// <summary>A DNS message over UDP without EDNS, and the smallest size EDNS may advertise (RFC 1035, RFC 6891 6.2.5).</summary>
    public const int ClassicUdpSize = 512;

    /// <summary>The largest message (TCP frames have a 16-bit length; RFC 1035 4.2.2).</summary>
    public const int MaxMessageSize = 65_535;

    /// <summary>
    /// Additional records accepted in a query: an OPT record and, for example, a TSIG. More is not a
    /// query any resolver sends and only costs parsing.
    /// </summary>
    public const int MaxAdditionalRecords = 4;
}
