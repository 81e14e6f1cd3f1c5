using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Protocol.Dns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// Answers one DNS query for the stub, without sockets: bytes in, bytes out. In its zones,
/// <c>&lt;name&gt;.mob</c> (a name registered in the GNS) and <c>&lt;guid&gt;.guid</c> (a GUID with a record)
/// answer A and AAAA with the peer's virtual addresses (<see cref="VirtualAddressMap"/>), other types NODATA;
/// unknown names and names deeper than one label NXDOMAIN; both negative answers carry the zone's SOA
/// (RFC 2308). Names outside the zones are passed to the upstream resolver as they came
/// (<see cref="DnsUpstream"/>), or REFUSED when there is none. Malformed queries get FORMERR when their id
/// could be read, else nothing; other opcodes NOTIMP.
/// </summary>
public sealed partial class DnsStubResponder
{
    public static readonly DnsName MobZone = DnsName.Parse("mob");
    public static readonly DnsName GuidZone = DnsName.Parse("guid");

    /// <summary>Our EDNS UDP size: 1232, the size DNS flag day 2020 settled on (no fragmentation on any usual path).</summary>
    public const int MaxUdpResponseSize = 1232;

    private readonly VirtualAddressMap _map;
    private readonly IPeerDirectory _peers;
    private readonly DnsUpstream _upstream;
    private readonly ILogger<DnsStubResponder> _logger;
    private readonly uint _ttl;

    public DnsStubResponder(VirtualAddressMap map, IPeerDirectory peers, DnsUpstream upstream, IOptions<MobilitydOptions> options, ILogger<DnsStubResponder> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _map = map;
        _peers = peers;
        _upstream = upstream;
        _logger = logger;
        _ttl = options.Value.Transparent.AnswerTtlSeconds;
    }

    /// <summary>
    /// Writes the response to <paramref name="query"/> into <paramref name="response"/> (room for
    /// <see cref="DnsLimits.MaxMessageSize"/> octets) and returns its length; 0 drops the query.
    /// </summary>
    public async ValueTask<int> RespondAsync(ReadOnlyMemory<byte> query, Memory<byte> response, bool overTcp, CancellationToken cancellationToken)
    {
        if (!DnsExchange.TryReadStandardQuery(query.Span, response.Span, out var parsed, out var written, out var malformed))
        {
            if (malformed is not null)
            {
                Log.Malformed(_logger, malformed);
            }

            return written;
        }

        var zone = parsed.Name.IsAtOrBelow(MobZone) ? MobZone : parsed.Name.IsAtOrBelow(GuidZone) ? GuidZone : null;
        if (zone is null)
        {
            var forwarded = await _upstream.ForwardAsync(query, response, overTcp, cancellationToken).ConfigureAwait(false);
            return forwarded switch
            {
                > 0 => forwarded,
                0 => Write(new DnsResponse(parsed, DnsResponseCode.ServFail, false, [], []), response, overTcp),
                _ => Write(new DnsResponse(parsed, DnsResponseCode.Refused, false, [], []), response, overTcp),
            };
        }

        DnsResponse answer;
        try
        {
            answer = await AnswerAsync(parsed, zone, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (PeerDirectoryErrors.IsLookupFailure(e) || e is VirtualAddressesFullException)
        {
            Log.LookupFailed(_logger, parsed.Name.ToString(), e.Message);
            answer = new DnsResponse(parsed, DnsResponseCode.ServFail, false, [], []);
        }

        return Write(answer, response, overTcp);
    }

    private static int Write(DnsResponse answer, Memory<byte> response, bool overTcp)
        => DnsExchange.WriteResponse(answer, response.Span, overTcp, MaxUdpResponseSize);

    private async Task<DnsResponse> AnswerAsync(DnsQuery query, DnsName zone, CancellationToken cancellationToken)
    {
        if (query.Edns is { Version: > 0 })
        {
            return new DnsResponse(query, DnsResponseCode.BadVers, false, [], []);
        }

        var type = (DnsType)query.Type;
        if (query.Class is not ((ushort)DnsClass.IN or (ushort)DnsClass.ANY) || type is DnsType.AXFR or DnsType.IXFR)
        {
            return new DnsResponse(query, DnsResponseCode.Refused, false, [], []);
        }

        var depth = query.Name.Labels.Count - zone.Labels.Count;
        if (depth == 0)
        {
            return Negative(query, zone, DnsResponseCode.NoError);
        }

        var guid = depth == 1 ? await FindAsync(query.Name.Labels[0], zone, cancellationToken).ConfigureAwait(false) : null;
        if (guid is not { } peer)
        {
            return Negative(query, zone, DnsResponseCode.NXDomain);
        }

        if (type is not (DnsType.A or DnsType.AAAA or DnsType.ANY))
        {
            return Negative(query, zone, DnsResponseCode.NoError);
        }

        var addresses = _map.Resolve(peer);
        var answers = new List<DnsRecord>(2);
        if (type is DnsType.A or DnsType.ANY)
        {
            answers.Add(new DnsAddressRecord(query.Name, _ttl, addresses.Ipv4));
        }

        if (type is DnsType.AAAA or DnsType.ANY)
        {
            answers.Add(new DnsAddressRecord(query.Name, _ttl, addresses.Ipv6));
        }

        Log.Answered(_logger, query.Name.ToString(), peer.ToString());
        return new DnsResponse(query, DnsResponseCode.NoError, true, answers, []);
    }

    /// <summary>In .guid a label of 40 hex digits with a record; in .mob a valid host name registered in the GNS.</summary>
    private async Task<HostGuid?> FindAsync(byte[] label, DnsName zone, CancellationToken cancellationToken)
    {
        if (label.Length > HostGuid.TextLength || label.Any(b => b >= 0x80))
        {
            return null;
        }

        var text = Encoding.ASCII.GetString(label);
        if (zone == GuidZone)
        {
            return HostGuid.TryParse(text, out var guid) && await _peers.IsRegisteredAsync(guid, cancellationToken).ConfigureAwait(false) ? guid : null;
        }

        return HostName.Normalize(text, out _) is { } name ? await _peers.FindNameAsync(name, cancellationToken).ConfigureAwait(false) : null;
    }

    /// <summary>NXDOMAIN or NODATA with the zone's SOA, whose TTL and minimum are the answer TTL (RFC 2308 5).</summary>
    private DnsResponse Negative(DnsQuery query, DnsName zone, DnsResponseCode code)
    {
        var soa = new DnsSoaRecord(zone, _ttl, DnsName.Parse("localhost"), DnsName.Parse("hostmaster.localhost"), Serial: 1,
            Refresh: 3600, Retry: 600, Expire: 86_400, Minimum: _ttl);
        return new DnsResponse(query, code, true, [], [soa]);
    }

    private static partial class Log
    {
        [LoggerMessage(8420, LogLevel.Debug, "DNS stub: malformed query: {Reason}.")]
        public static partial void Malformed(ILogger logger, string reason);

        [LoggerMessage(8421, LogLevel.Debug, "DNS stub: {Name} is {Guid}.")]
        public static partial void Answered(ILogger logger, string name, string guid);

        [LoggerMessage(8422, LogLevel.Debug, "DNS stub: could not answer {Name}: {Error}; answered SERVFAIL.")]
        public static partial void LookupFailed(ILogger logger, string name, string error);
    }
}
