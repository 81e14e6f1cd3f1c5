using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Net.EndPoints;

namespace Mobility.Gns.Dns.Server;

/// <summary>
/// The DNS front end: one UDP socket served by <see cref="GnsDnsOptions.UdpReceiveLoops"/> loops, and a
/// TCP listener on the same port for truncated answers (RFC 7766), each connection a loop of
/// length-prefixed queries with an idle timeout. Both sockets are bound in <see cref="StartAsync"/>, so
/// a port in use fails the host start and <see cref="UdpEndPoint"/>/<see cref="TcpEndPoint"/> are known
/// once it has started. DNS over TCP is this small framing on the same port as UDP, which is why it is
/// served here rather than by Kestrel.
/// </summary>
public sealed partial class GnsDnsServer : BackgroundService
{
    /// <summary>Attempts at finding a port free for both UDP and TCP when the configured port is 0.</summary>
    private const int BindAttempts = 16;

    private readonly DnsResponder _responder;
    private readonly GnsDnsOptions _options;
    private readonly ILogger<GnsDnsServer> _logger;
    private Socket? _udp;
    private Socket? _tcp;

    public GnsDnsServer(DnsResponder responder, IOptions<GnsDnsOptions> options, ILogger<GnsDnsServer> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _responder = responder;
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>The bound UDP endpoint, once started.</summary>
    public IPEndPoint? UdpEndPoint => _udp?.LocalEndPoint as IPEndPoint;

    /// <summary>The bound TCP endpoint (same port as UDP), once started; null when TCP is off.</summary>
    public IPEndPoint? TcpEndPoint => _tcp?.LocalEndPoint as IPEndPoint;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        Bind(_options.ParsedEndpoint);
        Log.Listening(_logger, UdpEndPoint!.ToString(), TcpEndPoint?.ToString() ?? "off", _responder.Zone.ToString());
        return base.StartAsync(cancellationToken);
    }

    public override void Dispose()
    {
        _udp?.Dispose();
        _tcp?.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var loops = new List<Task>();
        for (var i = 0; i < _options.UdpReceiveLoops; i++)
        {
            loops.Add(RunUdpLoopAsync(_udp!, stoppingToken));
        }

        if (_tcp is not null)
        {
            loops.Add(RunTcpAcceptLoopAsync(_tcp, stoppingToken));
        }

        try
        {
            await Task.WhenAll(loops).ConfigureAwait(false);
        }
        finally
        {
            _udp?.Dispose();
            _tcp?.Dispose();
        }
    }

    private void Bind(IPEndPoint endpoint)
    {
        var owner = $"DNS front end, {_options.EndpointOptionName}";
        for (var attempt = 0; ; attempt++)
        {
            var udp = ListenSockets.BindUdp(endpoint, owner);
            try
            {
                _tcp = _options.MaxTcpConnections > 0
                    ? ListenSockets.ListenTcp(new IPEndPoint(endpoint.Address, ((IPEndPoint)udp.LocalEndPoint!).Port), owner, _options.MaxTcpConnections)
                    : null;
                _udp = udp;
                return;
            }
            catch (ListenerBindException) when (endpoint.Port == 0 && attempt < BindAttempts)
            {
                // The port picked for UDP is taken for TCP: try another.
                udp.Dispose();
            }
            catch
            {
                udp.Dispose();
                throw;
            }
        }
    }

    /// <summary>Log events of <see cref="GnsDnsServer"/> (ids 1750-1799). Anything a client can cause is Debug.</summary>
    private static partial class Log
    {
        [LoggerMessage(1750, LogLevel.Information, "DNS front end listening on udp={Udp} tcp={Tcp} for zone {Zone}")]
        public static partial void Listening(ILogger logger, string udp, string tcp, string zone);

        [LoggerMessage(1751, LogLevel.Debug, "Dropped a UDP query of {Length} octets (over the limit) from {Source}")]
        public static partial void OversizedUdp(ILogger logger, int length, string source);

        [LoggerMessage(1752, LogLevel.Debug, "UDP receive or send failed")]
        public static partial void UdpError(ILogger logger, Exception exception);

        [LoggerMessage(1753, LogLevel.Debug, "Closed a DNS TCP connection from {Source}: {Reason}")]
        public static partial void TcpClosed(ILogger logger, string source, string reason);

        [LoggerMessage(1754, LogLevel.Debug, "Refused a DNS TCP connection from {Source}: {Open} connections open")]
        public static partial void TcpRefused(ILogger logger, string source, int open);

        [LoggerMessage(1755, LogLevel.Error, "The DNS TCP listener failed; TCP answers stop")]
        public static partial void AcceptFailed(ILogger logger, Exception exception);
    }
}
