using Mobility.Gns;
using Mobility.Net.EndPoints;

namespace Mobility.Gns.Host;

/// <summary>
/// The TCP endpoints of the <c>gns</c> executable, bound from section <c>Gns</c> like
/// <see cref="GnsServerOptions"/> (a host that embeds the GNS brings its own endpoints instead).
/// </summary>
public sealed class GnsHostOptions
{
    public const string DefaultUdp = GnsServerOptions.DefaultUdp;
    public const string DefaultHttp = "127.0.0.1:7380";
    public const string DefaultGrpc = "127.0.0.1:7381";

    /// <summary>HTTP/1.1 endpoint (HTTP/JSON), <c>IP:PORT</c>; port 0 picks a free port.</summary>
    public string Http { get; set; } = DefaultHttp;

    /// <summary>
    /// HTTP/2 cleartext (h2c, prior knowledge) endpoint for gRPC clients, <c>IP:PORT</c>; empty turns it
    /// off. Kestrel cannot offer HTTP/2 without TLS on an endpoint that also speaks HTTP/1.1, hence two ports.
    /// </summary>
    public string Grpc { get; set; } = DefaultGrpc;

    /// <summary>DNS front end endpoint (UDP and TCP), <c>IP:PORT</c>; empty (the default) turns it off. Needs <see cref="Zone"/>.</summary>
    public string Dns { get; set; } = "";

    /// <summary>The DNS zone served, e.g. <c>gns.example</c>: <c>&lt;guid&gt;.zone</c> and <c>&lt;name&gt;.zone</c>.</summary>
    public string Zone { get; set; } = "";

    /// <summary>
    /// TLS endpoint of the datagram protocol (docs/protocol.md, "GNS over TLS"), <c>IP:PORT</c>, for hosts on networks
    /// that let only HTTPS out (port 443); empty (the default) turns it off. Needs <see cref="TlsCert"/> and <see cref="TlsKey"/>.
    /// </summary>
    public string TlsListen { get; set; } = "";

    /// <summary>PEM certificate (chain) of the TLS endpoint; clients pin the SHA-256 of its DER encoding.</summary>
    public string TlsCert { get; set; } = "";

    /// <summary>PEM private key of the TLS endpoint.</summary>
    public string TlsKey { get; set; } = "";

    internal const string TlsListenOption = "Gns:TlsListen (--tls-listen)";
    internal const string HttpOption = "Gns:Http (--http)";
    internal const string GrpcOption = "Gns:Grpc (--grpc)";
    internal const string DnsOption = "Gns:Dns (--dns)";

    /// <summary>The HTTP endpoint parsed (after <see cref="Validate"/>).</summary>
    public System.Net.IPEndPoint HttpEndPoint => EndPointSetting.Parse(Http, HttpOption, emptyIsOff: false)!;

    /// <summary>The gRPC endpoint parsed, or null when off (after <see cref="Validate"/>).</summary>
    public System.Net.IPEndPoint? GrpcEndPoint => EndPointSetting.Parse(Grpc, GrpcOption);

    /// <summary>The DNS endpoint parsed, or null when off (after <see cref="Validate"/>).</summary>
    public System.Net.IPEndPoint? DnsEndPoint => EndPointSetting.Parse(Dns, DnsOption);

    /// <summary>The TLS endpoint parsed, or null when off (after <see cref="Validate"/>).</summary>
    public System.Net.IPEndPoint? TlsEndPoint => EndPointSetting.Parse(TlsListen, TlsListenOption);

    /// <summary>Describes what is wrong, or null when the endpoints parse.</summary>
    public string? Validate()
    {
        if (!EndPointSetting.TryParse(Dns, DnsOption, out var dns, out var error)
            || !EndPointSetting.TryParse(Http, HttpOption, out var http, out error, emptyIsOff: false)
            || !EndPointSetting.TryParse(Grpc, GrpcOption, out _, out error)
            || !EndPointSetting.TryParse(TlsListen, TlsListenOption, out var tls, out error))
        {
            return error;
        }

        if (http is null)
        {
            return $"{HttpOption} must be IP:PORT; the HTTP endpoint cannot be turned off.";
        }

        if ((dns is null) != string.IsNullOrWhiteSpace(Zone))
        {
            return "The DNS front end needs both Gns:Dns (--dns IP:PORT) and Gns:Zone (--zone ZONE).";
        }

        if ((tls is not null) != (TlsCert.Length > 0 && TlsKey.Length > 0))
        {
            return $"{TlsListenOption} needs both Gns:TlsCert (--tls-cert FILE) and Gns:TlsKey (--tls-key FILE), and they need it.";
        }

        return null;
    }
}
