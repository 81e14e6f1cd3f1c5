using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Protocol.Dns;
using Mobility.Gns.Storage;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Dns.Server;

/// <summary>How a query arrived: it decides the response size limit.</summary>
public enum DnsTransport
{
    Udp,
    Tcp,
}

/// <summary>
/// Answers one DNS query from the GNS store, without sockets: bytes in, bytes out. Names are
/// <c>&lt;guid&gt;.zone</c> or <c>&lt;name&gt;.zone</c> (one label below the apex); A and AAAA come from the
/// record's Host and Observed locators (relays are not the host's address), with the record's TTL; TXT
/// holds the GUID and the base64 public key. Unknown names are NXDOMAIN and known names without the
/// type NODATA, both with the SOA in the authority section (RFC 2308); names outside the zone are
/// REFUSED; zone transfers are refused.
/// </summary>
public sealed partial class DnsResponder
{
    private readonly IGnsStore _store;
    private readonly GnsDnsOptions _options;
    private readonly ILogger<DnsResponder> _logger;
    private readonly DnsName _zone;
    private readonly DnsSoaRecord _soa;
    private readonly DnsNsRecord[] _nameServers;

    public DnsResponder(IGnsStore store, IOptions<GnsDnsOptions> options, ILogger<DnsResponder> logger)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        _store = store;
        _options = options.Value;
        _logger = logger;
        _zone = _options.ZoneName;
        var servers = _options.NameServers.Count > 0
            ? _options.NameServers.Select(DnsName.Parse).ToArray()
            : [Prefix("ns1", _zone)];
        var mailbox = string.IsNullOrWhiteSpace(_options.HostMaster) ? Prefix("hostmaster", _zone) : DnsName.Parse(_options.HostMaster);
        _soa = new DnsSoaRecord(_zone, _options.ApexTtl, servers[0], mailbox, _options.SoaSerial,
            Refresh: 3600, Retry: 600, Expire: 86_400, Minimum: _options.NegativeTtl);
        _nameServers = servers.Select(s => new DnsNsRecord(_zone, _options.ApexTtl, s)).ToArray();
    }

    public DnsName Zone => _zone;

    /// <summary>
    /// Writes the response to <paramref name="query"/> into <paramref name="response"/> (at least
    /// <see cref="DnsLimits.MaxMessageSize"/> octets for TCP, <see cref="GnsDnsOptions.MaxUdpResponseSize"/>
    /// for UDP) and returns its length; 0 means the query is dropped (unanswerable garbage or a response).
    /// </summary>
    public async ValueTask<int> RespondAsync(ReadOnlyMemory<byte> query, Memory<byte> response, DnsTransport transport, CancellationToken cancellationToken)
    {
        if (!DnsExchange.TryReadStandardQuery(query.Span, response.Span, out var parsed, out var written, out var malformed))
        {
            if (malformed is not null)
            {
                Log.Malformed(_logger, malformed);
            }

            return written;
        }

        DnsResponse answer;
        try
        {
            answer = await AnswerAsync(parsed, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The store failed (Redis down, disk error): SERVFAIL lets resolvers try another server.
            Log.StoreFailed(_logger, parsed.Name.ToString(), e);
            answer = new DnsResponse(parsed, DnsResponseCode.ServFail, false, [], []);
        }

        return DnsExchange.WriteResponse(answer, response.Span, transport == DnsTransport.Tcp, _options.MaxUdpResponseSize);
    }

    /// <summary>The response to a well-formed standard query.</summary>
    public async ValueTask<DnsResponse> AnswerAsync(DnsQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (query.Edns is { Version: > 0 })
        {
            return new DnsResponse(query, DnsResponseCode.BadVers, false, [], []);
        }

        if (query.Class is not ((ushort)DnsClass.IN or (ushort)DnsClass.ANY) || !query.Name.IsAtOrBelow(_zone))
        {
            Log.Refused(_logger, query.Name.ToString());
            return new DnsResponse(query, DnsResponseCode.Refused, false, [], []);
        }

        var type = (DnsType)query.Type;
        if (type is DnsType.AXFR or DnsType.IXFR)
        {
            return new DnsResponse(query, DnsResponseCode.Refused, false, [], []);
        }

        var depth = query.Name.Labels.Count - _zone.Labels.Count;
        if (depth == 0)
        {
            return Apex(query, type);
        }

        var record = depth == 1 ? await LookupAsync(query.Name.Labels[0], cancellationToken).ConfigureAwait(false) : null;
        if (record is null)
        {
            return new DnsResponse(query, DnsResponseCode.NXDomain, true, [], [NegativeSoa()]);
        }

        var answers = new List<DnsRecord>();
        var ttl = record.TtlSeconds;
        if (type is DnsType.A or DnsType.ANY)
        {
            answers.AddRange(Addresses(record, AddressFamily.InterNetwork).Select(a => new DnsAddressRecord(query.Name, ttl, a)));
        }

        if (type is DnsType.AAAA or DnsType.ANY)
        {
            answers.AddRange(Addresses(record, AddressFamily.InterNetworkV6).Select(a => new DnsAddressRecord(query.Name, ttl, a)));
        }

        if (type is DnsType.TXT or DnsType.ANY)
        {
            answers.Add(new DnsTxtRecord(query.Name, ttl,
            [
                Encoding.ASCII.GetBytes("guid=" + record.Guid),
                Encoding.ASCII.GetBytes("key=" + Convert.ToBase64String(record.PublicKey.Span)),
            ]));
        }

        return answers.Count > 0
            ? new DnsResponse(query, DnsResponseCode.NoError, true, answers, [])
            : new DnsResponse(query, DnsResponseCode.NoError, true, [], [NegativeSoa()]);
    }

    private DnsResponse Apex(DnsQuery query, DnsType type)
    {
        var answers = new List<DnsRecord>();
        if (type is DnsType.SOA or DnsType.ANY)
        {
            answers.Add(_soa);
        }

        if (type is DnsType.NS or DnsType.ANY)
        {
            answers.AddRange(_nameServers);
        }

        return answers.Count > 0
            ? new DnsResponse(query, DnsResponseCode.NoError, true, answers, [])
            : new DnsResponse(query, DnsResponseCode.NoError, true, [], [NegativeSoa()]);
    }

    /// <summary>A label that is a GUID (40 hex digits) is looked up by GUID, any other valid host name by name.</summary>
    private async ValueTask<GnsRecord?> LookupAsync(byte[] label, CancellationToken cancellationToken)
    {
        if (label.Length > HostName.MaxLength && label.Length != HostGuid.TextLength)
        {
            return null;
        }

        foreach (var b in label)
        {
            if (b >= 0x80)
            {
                return null;
            }
        }

        var text = Encoding.ASCII.GetString(label);
        if (text.Length == HostGuid.TextLength && HostGuid.TryParse(text, out var guid))
        {
            return await _store.GetAsync(guid, cancellationToken).ConfigureAwait(false);
        }

        return HostName.IsValid(text) ? await _store.GetByNameAsync(text, cancellationToken).ConfigureAwait(false) : null;
    }

    /// <summary>The SOA for the authority section of a negative answer: its TTL is the negative-caching TTL (RFC 2308 5).</summary>
    private DnsSoaRecord NegativeSoa() => _soa with { Ttl = Math.Min(_soa.Ttl, _soa.Minimum) };

    private static IEnumerable<IPAddress> Addresses(GnsRecord record, AddressFamily family)
        => record.Locators
            .Where(l => l.Kind is LocatorKind.Host or LocatorKind.Observed && l.Address.AddressFamily == family)
            .Select(l => l.Address)
            .Distinct();

    private static DnsName Prefix(string label, DnsName zone) => new([Encoding.ASCII.GetBytes(label), .. zone.Labels]);

    /// <summary>Log events of the DNS front end (ids 1700-1749). Everything a client can cause is Debug.</summary>
    private static partial class Log
    {
        [LoggerMessage(1700, LogLevel.Debug, "Malformed DNS query: {Reason}")]
        public static partial void Malformed(ILogger logger, string reason);

        [LoggerMessage(1701, LogLevel.Debug, "Refused a DNS query for {Name} (outside the zone or not class IN)")]
        public static partial void Refused(ILogger logger, string name);

        [LoggerMessage(1702, LogLevel.Debug, "The store failed while answering {Name}; answered SERVFAIL")]
        public static partial void StoreFailed(ILogger logger, string name, Exception exception);
    }
}
