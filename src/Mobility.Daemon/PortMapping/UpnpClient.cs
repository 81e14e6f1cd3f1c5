using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Mobility.Protocol;
using Mobility.Protocol.PortMapping;

namespace Mobility.Daemon.PortMapping;

/// <summary>
/// UPnP IGD port mapping (docs/nat.md, "Port mapping"; the messages are <see cref="UpnpMessage"/>'s), the way Tailscale's
/// portmapper does it: an SSDP M-SEARCH to the default gateway's port 1900 and to 239.255.255.250:1900, of which only
/// answers from the gateway's address count; the device description from the answer's LOCATION, fetched only when that
/// URL is http to the gateway's own address (the SSRF guard, also applied to the control URL), without redirects or
/// proxies, at most <see cref="UpnpMessage.MaxDescriptionLength"/> bytes within <see cref="HttpTimeout"/>; then SOAP to the
/// WANIPConnection (or WANPPPConnection) control URL: GetExternalIPAddress, AddAnyPortMapping (IGD v2) or AddPortMapping,
/// DeletePortMapping for a lifetime of zero. The service found is kept per gateway and forgotten after any failure.
/// </summary>
public sealed partial class UpnpClient : IDisposable
{
    /// <summary>How long one HTTP exchange with the gateway (description or SOAP) may take, answer read included.</summary>
    public static readonly TimeSpan HttpTimeout = TimeSpan.FromSeconds(3);

    /// <summary>The description a mapping carries in the gateway's table (what <c>upnpc -l</c> shows).</summary>
    public const string MappingDescription = "mobilityd";

    private readonly TimeSpan _probeTimeout;
    private readonly int _attempts;
    private readonly ILogger _logger;
    private readonly HttpClient _http;
    private readonly ConcurrentDictionary<IPAddress, UpnpService> _services = new();

    public UpnpClient(TimeSpan probeTimeout, int attempts, ILogger logger)
    {
        _probeTimeout = probeTimeout;
        _attempts = attempts;
        _logger = logger;
        _http = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            UseCookies = false,
            ConnectTimeout = HttpTimeout,
            MaxResponseHeadersLength = 16,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
            MaxResponseContentBufferSize = UpnpMessage.MaxDescriptionLength,
        };
    }

    /// <summary>Maps (or, with lifetime zero, deletes) one port at the IGD of <paramref name="request"/>'s gateway address.</summary>
    public async Task<GatewayMapping> MapAsync(MappingRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var gateway = request.Gateway.Address;
        try
        {
            var service = await ServiceAsync(gateway, cancellationToken).ConfigureAwait(false);
            var local = LocalAddress(gateway);
            var externalPort = request.External is { } held ? (ushort)held.Port : request.InternalPort;
            if (request.Lifetime == TimeSpan.Zero)
            {
                var deleted = await SoapAsync(service, "DeletePortMapping", UpnpMessage.WriteDeletePortMapping(service.ServiceType, request.Transport, externalPort),
                    cancellationToken).ConfigureAwait(false);
                ThrowOnFault(deleted, "DeletePortMapping", request.Gateway);
                return new GatewayMapping(PortMappingProtocol.Upnp, request.External ?? new IPEndPoint(IPAddress.Any, externalPort), TimeSpan.Zero, 0);
            }

            var addressReply = await SoapAsync(service, "GetExternalIPAddress", UpnpMessage.WriteGetExternalIPAddress(service.ServiceType), cancellationToken)
                .ConfigureAwait(false);
            ThrowOnFault(addressReply, "GetExternalIPAddress", request.Gateway);
            var external = UpnpMessage.ParseIPv4(addressReply.Values.GetValueOrDefault("NewExternalIPAddress"))
                ?? throw new PortMappingException($"UPnP GetExternalIPAddress of {gateway}: no IPv4 address in the answer");
            var lease = (uint)Math.Min(request.Lifetime.TotalSeconds, uint.MaxValue);
            var (port, granted) = await AddAsync(service, request, local, externalPort, lease, cancellationToken).ConfigureAwait(false);
            LogMapped(_logger, service.ServiceType, request.Transport == MappedTransport.Tcp ? "tcp" : "udp", request.InternalPort, port, granted);
            return new GatewayMapping(PortMappingProtocol.Upnp, new IPEndPoint(external, port), TimeSpan.FromSeconds(granted), 0);
        }
        catch (Exception e) when (e is PortMappingException or HttpRequestException or SocketException or IOException
                                      || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // Whatever went wrong, find the gateway's service again next time (it may have restarted on another port).
            _services.TryRemove(gateway, out _);
            throw e as PortMappingException ?? new PortMappingException($"UPnP at {gateway}: {(e is OperationCanceledException ? "no answer in time" : e.Message)}");
        }
    }

    /// <summary>
    /// AddAnyPortMapping first on IGD v2 for a new mapping (the gateway picks another port when ours is taken), AddPortMapping
    /// otherwise and for renewals (the same external port again); a gateway that takes only permanent leases (725) is asked
    /// again with lease 0. Returns the external port and the lease granted (0: permanent; the port mapper renews anyway).
    /// </summary>
    private async Task<(ushort Port, uint Lease)> AddAsync(UpnpService service, MappingRequest request, IPAddress local, ushort externalPort, uint lease,
        CancellationToken cancellationToken)
    {
        if (service.IsVersion2 && request.External is null)
        {
            var any = await SoapAsync(service, "AddAnyPortMapping",
                UpnpMessage.WriteAddPortMapping(service.ServiceType, true, request.Transport, externalPort, request.InternalPort, local, lease, MappingDescription),
                cancellationToken).ConfigureAwait(false);
            if (!any.IsFault)
            {
                return ushort.TryParse(any.Values.GetValueOrDefault("NewReservedPort"), NumberStyles.None, CultureInfo.InvariantCulture, out var reserved) && reserved != 0
                    ? (reserved, lease)
                    : throw new PortMappingException($"UPnP AddAnyPortMapping of {request.Gateway.Address}: no NewReservedPort in the answer");
            }

            LogFault(_logger, "AddAnyPortMapping", any.FaultCode!.Value, any.FaultDescription ?? "");
        }

        var added = await SoapAsync(service, "AddPortMapping",
            UpnpMessage.WriteAddPortMapping(service.ServiceType, false, request.Transport, externalPort, request.InternalPort, local, lease, MappingDescription),
            cancellationToken).ConfigureAwait(false);
        if (added.FaultCode == UpnpMessage.OnlyPermanentLeasesSupported && lease != 0)
        {
            lease = 0;
            added = await SoapAsync(service, "AddPortMapping",
                UpnpMessage.WriteAddPortMapping(service.ServiceType, false, request.Transport, externalPort, request.InternalPort, local, 0, MappingDescription),
                cancellationToken).ConfigureAwait(false);
        }

        ThrowOnFault(added, "AddPortMapping", request.Gateway);
        return (externalPort, lease);
    }

    private static void ThrowOnFault(SoapResult result, string action, IPEndPoint gateway)
    {
        if (result.IsFault)
        {
            throw new PortMappingException($"UPnP {action} refused by {gateway.Address}: error {result.FaultCode} {result.FaultDescription}".TrimEnd());
        }
    }

    /// <summary>The gateway's WAN connection service: the one found before, or SSDP then the device description.</summary>
    private async Task<UpnpService> ServiceAsync(IPAddress gateway, CancellationToken cancellationToken)
    {
        if (_services.TryGetValue(gateway, out var known))
        {
            return known;
        }

        var location = await DiscoverAsync(gateway, cancellationToken).ConfigureAwait(false)
            ?? throw new PortMappingException($"no UPnP IGD answer from {gateway}");
        var description = await FetchAsync(HttpMethod.Get, location, null, UpnpMessage.MaxDescriptionLength, cancellationToken).ConfigureAwait(false);
        if (description.Status != HttpStatusCode.OK)
        {
            throw new PortMappingException($"UPnP device description at {location}: HTTP {(int)description.Status}");
        }

        var service = Parse(() => UpnpMessage.ParseDescription(description.Body, location), location);
        if (!UpnpMessage.IsAtGateway(service.ControlUrl, gateway))
        {
            LogIgnored(_logger, "the control URL " + service.ControlUrl, gateway.ToString(), "not http to the gateway's own address");
            throw new PortMappingException($"UPnP control URL of {gateway} is not at the gateway: refused");
        }

        LogFound(_logger, gateway.ToString(), service.ServiceType, service.ControlUrl.ToString());
        _services[gateway] = service;
        return service;
    }

    /// <summary>
    /// Sends the M-SEARCH to the gateway (unicast) and to the SSDP group, <c>Nat:Attempts</c> times with the probe timeout
    /// doubling; returns the first LOCATION of an answer from the gateway's address that points at the gateway, or null.
    /// </summary>
    private async Task<Uri?> DiscoverAsync(IPAddress gateway, CancellationToken cancellationToken)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Any, 0));
        socket.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.MulticastTimeToLive, 2);
        var search = UpnpMessage.WriteSearch();
        var buffer = new byte[UpnpMessage.MaxSsdpLength + 1];
        for (var attempt = 0; attempt < _attempts; attempt++)
        {
            await socket.SendToAsync(search, SocketFlags.None, new IPEndPoint(gateway, UpnpMessage.SsdpPort), cancellationToken).ConfigureAwait(false);
            try
            {
                await socket.SendToAsync(search, SocketFlags.None, new IPEndPoint(UpnpMessage.SsdpMulticast, UpnpMessage.SsdpPort), cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException)
            {
                // No route for multicast: the unicast search is enough.
            }

            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(_probeTimeout.Multiply(1 << attempt));
            try
            {
                while (true)
                {
                    var received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), wait.Token).ConfigureAwait(false);
                    if (received.RemoteEndPoint is not IPEndPoint from || !from.Address.Equals(gateway))
                    {
                        continue;
                    }

                    SsdpResponse answer;
                    try
                    {
                        answer = UpnpMessage.ParseSsdpResponse(buffer.AsSpan(0, received.ReceivedBytes));
                    }
                    catch (MalformedMessageException e)
                    {
                        LogIgnored(_logger, "an SSDP answer", gateway.ToString(), e.Message);
                        continue;
                    }

                    if (UpnpMessage.IsAtGateway(answer.Location, gateway))
                    {
                        return answer.Location;
                    }

                    LogIgnored(_logger, "the LOCATION " + answer.Location, gateway.ToString(), "not http to the gateway's own address");
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset)
            {
                // ICMP port unreachable from the gateway: nothing listens on 1900 (asking again would repeat it).
                return null;
            }
        }

        return null;
    }

    private async Task<SoapResult> SoapAsync(UpnpService service, string action, (byte[] Body, string SoapAction) request, CancellationToken cancellationToken)
    {
        var answer = await FetchAsync(HttpMethod.Post, service.ControlUrl, request, UpnpMessage.MaxSoapLength, cancellationToken).ConfigureAwait(false);
        if (answer.Status is not (HttpStatusCode.OK or HttpStatusCode.InternalServerError))
        {
            throw new PortMappingException($"UPnP {action} at {service.ControlUrl}: HTTP {(int)answer.Status}");
        }

        return Parse(() => UpnpMessage.ParseSoapResponse(answer.Body, action), service.ControlUrl);
    }

    /// <summary>One HTTP exchange within <see cref="HttpTimeout"/>; the body is read up to <paramref name="limit"/> bytes, more is refused.</summary>
    private async Task<(HttpStatusCode Status, byte[] Body)> FetchAsync(HttpMethod method, Uri url, (byte[] Body, string SoapAction)? soap, int limit,
        CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(HttpTimeout);
        using var message = new HttpRequestMessage(method, url);
        if (soap is { } request)
        {
            message.Content = new ByteArrayContent(request.Body);
            message.Content.Headers.ContentType = new MediaTypeHeaderValue("text/xml") { CharSet = "utf-8" };
            message.Headers.TryAddWithoutValidation("SOAPAction", request.SoapAction);
        }

        using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
        if (response.Content.Headers.ContentLength > limit)
        {
            throw new PortMappingException($"UPnP answer from {url}: {response.Content.Headers.ContentLength} bytes (at most {limit})");
        }

        var stream = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
        var body = new byte[limit + 1];
        var length = 0;
        await using (stream.ConfigureAwait(false))
        {
            int n;
            while (length < body.Length && (n = await stream.ReadAsync(body.AsMemory(length), timeout.Token).ConfigureAwait(false)) > 0)
            {
                length += n;
            }
        }

        return length > limit
            ? throw new PortMappingException($"UPnP answer from {url}: more than {limit} bytes")
            : (response.StatusCode, body[..length]);
    }

    private T Parse<T>(Func<T> parse, Uri from)
    {
        try
        {
            return parse();
        }
        catch (MalformedMessageException e)
        {
            LogIgnored(_logger, "an answer", from.ToString(), e.Message);
            throw new PortMappingException($"UPnP answer from {from}: {e.Message}");
        }
    }

    /// <summary>The local address the kernel would use towards the gateway: the mapping's internal client.</summary>
    private static IPAddress LocalAddress(IPAddress gateway)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Connect(new IPEndPoint(gateway, UpnpMessage.SsdpPort));
        return ((IPEndPoint)socket.LocalEndPoint!).Address;
    }

    public void Dispose() => _http.Dispose();

    [LoggerMessage(4310, LogLevel.Information, "UPnP: gateway {Gateway} offers {ServiceType} at {ControlUrl}.")]
    private static partial void LogFound(ILogger logger, string gateway, string serviceType, string controlUrl);

    [LoggerMessage(4313, LogLevel.Debug, "UPnP: {Action} failed with error {Code} {Description}; trying AddPortMapping.")]
    private static partial void LogFault(ILogger logger, string action, int code, string description);

    [LoggerMessage(4314, LogLevel.Debug, "UPnP ({ServiceType}): {Transport} port {Port} mapped to external port {External}, lease {Lease} s.")]
    private static partial void LogMapped(ILogger logger, string serviceType, string transport, ushort port, ushort external, uint lease);

    [LoggerMessage(4311, LogLevel.Debug, "UPnP: ignored {What} from {From}: {Why}.")]
    private static partial void LogIgnored(ILogger logger, string what, string from, string why);
}
