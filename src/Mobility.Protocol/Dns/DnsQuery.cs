namespace Mobility.Protocol.Dns;

/// <summary>The EDNS(0) OPT pseudo-record of a query (RFC 6891).</summary>
/// <param name="UdpPayloadSize">The largest UDP response the requester accepts, as advertised (may be below 512: then 512 applies).</param>
/// <param name="Version">EDNS version; only 0 exists, anything else is answered BADVERS.</param>
/// <param name="DnssecOk">The DO bit (RFC 3225), echoed in the response.</param>
public readonly record struct EdnsInfo(ushort UdpPayloadSize, byte Version, bool DnssecOk);

/// <summary>A parsed standard query: header fields, its one question, and its EDNS record if any.</summary>
public sealed record DnsQuery(ushort Id, byte Opcode, bool RecursionDesired, bool CheckingDisabled, DnsName Name, ushort Type, ushort Class, EdnsInfo? Edns);
