using System.Net;
using Microsoft.Extensions.Options;
using Mobility.Protocol.Dns;
using Mobility.Net.EndPoints;

namespace Mobility.Gns.Dns.Server;

/// <summary>
/// Settings of the DNS front end, bound from configuration section <c>Gns:Dns</c> and validated when the
/// host starts. The server answers for <c>&lt;guid&gt;.Zone</c> and <c>&lt;name&gt;.Zone</c>.
/// </summary>
public sealed class GnsDnsOptions
{
    public const string SectionName = "Gns:Dns";

    /// <summary>UDP and TCP endpoint, <c>IP:PORT</c> or <c>[IPv6]:PORT</c>; port 0 picks one free for both. 127.0.0.1:5353 by default (53 needs privileges).</summary>
    public string Endpoint { get; set; } = "127.0.0.1:5353";

    /// <summary>The zone served, e.g. <c>gns.example.org</c>. Required.</summary>
    public string Zone { get; set; } = "";

    /// <summary>Name servers listed in the apex NS records and the SOA; default <c>ns1.&lt;zone&gt;</c>.</summary>
    public IList<string> NameServers { get; } = [];

    /// <summary>The SOA mailbox in DNS form (<c>hostmaster.example.org</c>); default <c>hostmaster.&lt;zone&gt;</c>.</summary>
    public string HostMaster { get; set; } = "";

    /// <summary>
    /// The SOA serial. The zone changes on every update and is never transferred (AXFR/IXFR are refused),
    /// so the serial carries no meaning for secondaries; operators may set it to mark deployments.
    /// </summary>
    public uint SoaSerial { get; set; } = 1;

    /// <summary>
    /// TTL of the apex SOA/NS records and of negative answers (RFC 2308: the SOA minimum). 5 s: a host
    /// that registers right after a failed lookup must be found quickly, the same reason records have
    /// short TTLs.
    /// </summary>
    public uint NegativeTtl { get; set; } = 5;

    /// <summary>TTL of the apex SOA and NS records. 3600 s: they change only with the deployment.</summary>
    public uint ApexTtl { get; set; } = 3600;

    /// <summary>
    /// Largest UDP response, and what the OPT record advertises. 1232 is the DNS Flag Day 2020 value: it
    /// fits the IPv6 minimum MTU without fragmentation; larger answers are truncated and fetched over TCP.
    /// </summary>
    public int MaxUdpResponseSize { get; set; } = 1232;

    /// <summary>
    /// Largest query accepted. A query is a header, one name (at most 255 octets) and an OPT record with a
    /// few options (a cookie, padding to a 128-octet block): 1232 is generous; anything bigger is dropped.
    /// </summary>
    public int MaxQuerySize { get; set; } = 1232;

    /// <summary>Concurrent UDP receive loops; each waits for the store while the others keep receiving. 4 covers a store round trip.</summary>
    public int UdpReceiveLoops { get; set; } = 4;

    /// <summary>Open TCP connections; beyond it new ones are closed at once. 256 bounds memory (each holds a query and a response buffer).</summary>
    public int MaxTcpConnections { get; set; } = 256;

    /// <summary>A TCP connection idle this long (no complete query) is closed (RFC 7766 6.2.3 suggests seconds). 10 s.</summary>
    public TimeSpan TcpIdleTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The endpoint parsed.</summary>
    public IPEndPoint ParsedEndpoint => EndPointSetting.Parse(Endpoint, EndpointOptionName, emptyIsOff: false)
        ?? throw new FormatException($"{EndpointOptionName} is \"off\": the DNS front end is not added without an endpoint.");

    /// <summary>The option <see cref="Endpoint"/> came from, named in its errors (<c>gns serve --dns</c> sets Gns:Dns).</summary>
    public string EndpointOptionName { get; set; } = "Gns:Dns:Endpoint";

    internal DnsName ZoneName => DnsName.Parse(Zone);
}

/// <summary>Checks <see cref="GnsDnsOptions"/> when the host starts (ValidateOnStart).</summary>
public sealed class GnsDnsOptionsValidator : IValidateOptions<GnsDnsOptions>
{
    public ValidateOptionsResult Validate(string? name, GnsDnsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (!EndPointSetting.TryParse(options.Endpoint, options.EndpointOptionName, out var endpoint, out var endpointError, emptyIsOff: false))
        {
            failures.Add(endpointError);
        }
        else if (endpoint is null)
        {
            failures.Add($"{options.EndpointOptionName} must be IP:PORT, not \"off\".");
        }

        CheckName(failures, "Gns:Dns:Zone", options.Zone, required: true);
        CheckName(failures, "Gns:Dns:HostMaster", options.HostMaster, required: false);
        foreach (var server in options.NameServers)
        {
            CheckName(failures, "Gns:Dns:NameServers", server, required: true);
        }

        if (options.MaxUdpResponseSize is < DnsLimits.ClassicUdpSize or > DnsLimits.MaxMessageSize)
        {
            failures.Add($"Gns:Dns:MaxUdpResponseSize must be between {DnsLimits.ClassicUdpSize} and {DnsLimits.MaxMessageSize}.");
        }

        if (options.MaxQuerySize is < DnsLimits.ClassicUdpSize or > DnsLimits.MaxMessageSize)
        {
            failures.Add($"Gns:Dns:MaxQuerySize must be between {DnsLimits.ClassicUdpSize} and {DnsLimits.MaxMessageSize}.");
        }

        if (options.UdpReceiveLoops is < 1 or > 256)
        {
            failures.Add("Gns:Dns:UdpReceiveLoops must be between 1 and 256.");
        }

        if (options.MaxTcpConnections is < 0 or > 100_000)
        {
            failures.Add("Gns:Dns:MaxTcpConnections must be between 0 (TCP off) and 100000.");
        }

        if (options.TcpIdleTimeout <= TimeSpan.Zero || options.TcpIdleTimeout > TimeSpan.FromMinutes(10))
        {
            failures.Add("Gns:Dns:TcpIdleTimeout must be positive and at most 10 minutes.");
        }

        if (options.NegativeTtl > int.MaxValue || options.ApexTtl > int.MaxValue)
        {
            failures.Add("Gns:Dns TTLs must be at most 2^31-1 seconds.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void CheckName(List<string> failures, string setting, string? value, bool required)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            if (required)
            {
                failures.Add($"{setting} is required.");
            }

            return;
        }

        try
        {
            if (DnsName.Parse(value).Labels.Count == 0)
            {
                failures.Add($"{setting} must not be the root.");
            }
        }
        catch (FormatException e)
        {
            failures.Add($"{setting}: {e.Message}");
        }
    }
}
