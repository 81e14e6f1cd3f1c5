using System.Diagnostics.CodeAnalysis;

namespace Mobility.Protocol.Dns;

/// <summary>
/// What every DNS responder here (the GNS's DNS front end, mobilityd's stub) does around its own answer, bytes in
/// and bytes out: read the query, answering FORMERR (or nothing) when it is malformed and NOTIMP when its opcode is
/// not QUERY; then write the response within the size its transport allows, advertising our UDP size.
/// </summary>
public static class DnsExchange
{
    /// <summary>
    /// Reads <paramref name="message"/> as a standard query. False when it is not one: <paramref name="written"/> is
    /// then the length of the answer already written into <paramref name="response"/> (FORMERR or NOTIMP; 0 drops the
    /// message), and <paramref name="malformed"/> says what is wrong with a malformed one (null for another opcode).
    /// </summary>
    public static bool TryReadStandardQuery(ReadOnlySpan<byte> message, Span<byte> response, [NotNullWhen(true)] out DnsQuery? query,
        out int written, out string? malformed)
    {
        malformed = null;
        try
        {
            query = DnsMessageReader.ReadQuery(message);
        }
        catch (DnsFormatException e)
        {
            query = null;
            malformed = e.Message;
            written = DnsMessageWriter.WriteFormatError(e, response);
            return false;
        }

        if (query.Opcode != 0)
        {
            written = DnsMessageWriter.WriteNotImplemented(query, response);
            query = null;
            return false;
        }

        written = 0;
        return true;
    }

    /// <summary>
    /// The largest response to <paramref name="query"/>: 65,535 over TCP; over UDP 512 without EDNS, with EDNS the
    /// size it advertises within [512, <paramref name="maxUdpResponseSize"/>] (RFC 1035 4.2.1, RFC 6891 6.2.5).
    /// </summary>
    public static int MaxResponseSize(DnsQuery query, bool overTcp, int maxUdpResponseSize)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxUdpResponseSize, DnsLimits.ClassicUdpSize);
        if (overTcp)
        {
            return DnsLimits.MaxMessageSize;
        }

        return query.Edns is { } edns
            ? Math.Clamp((int)edns.UdpPayloadSize, DnsLimits.ClassicUdpSize, maxUdpResponseSize)
            : DnsLimits.ClassicUdpSize;
    }

    /// <summary>
    /// Writes <paramref name="response"/> within <see cref="MaxResponseSize"/> (truncated with TC when larger),
    /// advertising <paramref name="maxUdpResponseSize"/> as our UDP payload size; returns its length.
    /// </summary>
    public static int WriteResponse(DnsResponse response, Span<byte> destination, bool overTcp, int maxUdpResponseSize)
    {
        ArgumentNullException.ThrowIfNull(response);
        var limit = MaxResponseSize(response.Query, overTcp, maxUdpResponseSize);
        return DnsMessageWriter.WriteResponse(response with { AdvertisedUdpSize = checked((ushort)maxUdpResponseSize) }, destination, limit);
    }
}
