using System.Net;
using Mobility.Net.EndPoints;
using Mobility.Protocol.Identity;

namespace Mobility.Relay.Host;

/// <summary>The endpoints and files of the <c>mobility-relay</c> executable (configuration section <c>Relay</c>, beside <c>Relay:Limits</c>).</summary>
public sealed class RelayHostOptions
{
    public const string DefaultListen = "[::]:7395";

    /// <summary>The largest allow-list file read (about 24,000 GUIDs).</summary>
    public const int MaxAllowFileBytes = 1024 * 1024;

    internal const string ListenOption = "Relay:Listen (--listen)";
    internal const string TlsListenOption = "Relay:TlsListen (--tls-listen)";
    internal const string MetricsOption = "Relay:Metrics (--metrics)";
    internal const string AdvertiseOption = "Relay:Advertise (--advertise)";

    /// <summary>Plain TCP endpoint, <c>IP:PORT</c>; "off" turns it off (then <see cref="TlsListen"/> is needed).</summary>
    public string Listen { get; set; } = DefaultListen;

    /// <summary>TLS endpoint (for networks that let only HTTPS out), <c>IP:PORT</c>; off by default. Needs <see cref="TlsCert"/> and <see cref="TlsKey"/>.</summary>
    public string TlsListen { get; set; } = "";

    /// <summary>PEM certificate (chain) of the TLS endpoint.</summary>
    public string TlsCert { get; set; } = "";

    /// <summary>PEM private key of the TLS endpoint.</summary>
    public string TlsKey { get; set; } = "";

    /// <summary>File of admitted GUIDs, one per line (<c>#</c> starts a comment); empty admits every GUID that proves its key.</summary>
    public string Allow { get; set; } = "";

    /// <summary>Public endpoints hosts may name in their proofs besides the connection's local endpoint, comma-separated <c>IP:PORT</c>.</summary>
    public string Advertise { get; set; } = "";

    /// <summary>HTTP endpoint serving <c>GET /metrics</c>, <c>IP:PORT</c>; off by default.</summary>
    public string Metrics { get; set; } = "";

    public IPEndPoint? ListenEndPoint => EndPointSetting.Parse(Listen, ListenOption);

    public IPEndPoint? TlsEndPoint => EndPointSetting.Parse(TlsListen, TlsListenOption);

    public IPEndPoint? MetricsEndPoint => EndPointSetting.Parse(Metrics, MetricsOption);

    /// <summary>The advertised endpoints parsed (after <see cref="Validate"/>).</summary>
    public IReadOnlyList<IPEndPoint> AdvertisedEndPoints
        => [.. Advertise.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(e => EndPointParser.Parse(e))];

    /// <summary>Describes what is wrong, or null when the settings are usable.</summary>
    public string? Validate()
    {
        if (!EndPointSetting.TryParse(Listen, ListenOption, out var listen, out var error)
            || !EndPointSetting.TryParse(TlsListen, TlsListenOption, out var tls, out error)
            || !EndPointSetting.TryParse(Metrics, MetricsOption, out _, out error))
        {
            return error;
        }

        foreach (var part in Advertise.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!EndPointParser.TryParse(part, out _))
            {
                return $"{AdvertiseOption}: '{part}' is not IP:PORT.";
            }
        }

        if (listen is null && tls is null)
        {
            return $"The relay needs an endpoint: {ListenOption} or {TlsListenOption}.";
        }

        if ((tls is not null) != (TlsCert.Length > 0 && TlsKey.Length > 0))
        {
            return $"{TlsListenOption} needs both Relay:TlsCert (--tls-cert FILE) and Relay:TlsKey (--tls-key FILE), and they need it.";
        }

        return null;
    }

    /// <summary>
    /// The GUIDs of the allow-list file, or null when there is none. An unreadable file or a line that is
    /// not a GUID is an <see cref="InvalidDataException"/> naming the file and line.
    /// </summary>
    public IReadOnlySet<HostGuid>? ReadAllowList()
    {
        if (Allow.Length == 0)
        {
            return null;
        }

        var info = new FileInfo(Allow);
        if (!info.Exists)
        {
            throw new InvalidDataException($"Relay:Allow (--allow): {Allow} does not exist.");
        }

        if (info.Length > MaxAllowFileBytes)
        {
            throw new InvalidDataException($"Relay:Allow (--allow): {Allow} is larger than {MaxAllowFileBytes} bytes.");
        }

        var guids = new HashSet<HostGuid>();
        var number = 0;
        foreach (var line in File.ReadLines(Allow))
        {
            number++;
            var text = line.Split('#')[0].Trim();
            if (text.Length == 0)
            {
                continue;
            }

            if (!HostGuid.TryParse(text, out var guid))
            {
                throw new InvalidDataException($"Relay:Allow (--allow): {Allow} line {number} is not a GUID (40 hex digits): {Mobility.Net.Text.SafeText.OneLine(text)}");
            }

            guids.Add(guid);
        }

        return guids;
    }
}
