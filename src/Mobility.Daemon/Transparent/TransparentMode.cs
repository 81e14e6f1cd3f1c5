using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Internal;

namespace Mobility.Daemon.Transparent;

/// <summary>What <c>mob transparent status</c> and <c>mob status</c> show.</summary>
/// <param name="Enabled">The rules, routes and resolver entry are installed.</param>
/// <param name="Stub">The DNS stub's endpoint, or null when it is off or could not bind.</param>
/// <param name="Resolver">Where the stub is installed: "none", "systemd-resolved (link mobility0)" or a resolv.conf path.</param>
/// <param name="Mappings">Peers holding a virtual IPv4 address.</param>
/// <param name="Rules">The nftables table, when installed ("inet mobility").</param>
public sealed record TransparentStatus(bool Enabled, string? Stub, string Resolver, int Mappings, string Ipv4Pool, string Ipv6Prefix, string? Rules,
    int? Ipv4Port, int? Ipv6Port);

/// <summary>Switching transparent mode failed; the message says why, and nothing is left half installed.</summary>
public sealed class TransparentModeException : Exception
{
    public TransparentModeException(string message) : base(message) { }

    public TransparentModeException() : base("Transparent mode could not be switched.") { }

    public TransparentModeException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>
/// Switches transparent mode (docs/transparent.md): on binds the interception listener and the UDP
/// interception's sockets, marks the daemon's own sockets, installs the nftables table, the routes to the
/// virtual ranges and UDP's policy routing, then the stub in the resolver; off undoes it in reverse order, as does the daemon's stop. A file &lt;StateDir&gt;/<see cref="MarkerFile"/>
/// exists while it is on, so a start after a crash (SIGKILL) removes what the crashed daemon left first.
/// Needs CAP_NET_ADMIN (root); callers are checked by the API (the local access rule).
/// </summary>
public sealed partial class TransparentMode : IHostedService
{
    /// <summary>Holds the pool the routes were added for and the UDP mark of the policy routing (a line each), so that the right ones are removed after a crash.</summary>
    public const string MarkerFile = "transparent-on";

    private readonly TransparentOptions _options;
    private readonly string _marker;
    private readonly VirtualAddressMap _map;
    private readonly DnsStub _stub;
    private readonly DnsUpstream _upstream;
    private readonly InterceptionListener _listener;
    private readonly UdpInterceptor _udp;
    private readonly SocketMark _mark;
    private readonly ResolverIntegration _resolver;
    private readonly ILogger<TransparentMode> _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _enabled;

    public TransparentMode(IOptions<MobilitydOptions> options, VirtualAddressMap map, DnsStub stub, DnsUpstream upstream, InterceptionListener listener,
        UdpInterceptor udp, SocketMark mark, ResolverIntegration resolver, ILogger<TransparentMode> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value.Transparent;
        _marker = Path.Combine(Path.GetFullPath(options.Value.StateDir), MarkerFile);
        _map = map;
        _stub = stub;
        _upstream = upstream;
        _listener = listener;
        _udp = udp;
        _mark = mark;
        _resolver = resolver;
        _logger = logger;
    }

    public TransparentStatus Status => new(_enabled, _stub.LocalEndPoint?.ToString(), _resolver.Installed, _map.Count, _map.Pool.ToString(),
        $"{VirtualAddressPool.Ipv6Prefix}/{VirtualAddressPool.Ipv6PrefixLength}", _enabled ? $"{InterceptionRules.Family} {InterceptionRules.Table}" : null,
        _listener.Ipv4Port, _listener.Ipv6Port);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (File.Exists(_marker))
        {
            Log.Recovering(_logger, _marker);
            var lines = File.ReadAllLines(_marker);
            var udpMark = lines.Length > 1 && uint.TryParse(lines[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture,
                out var written) ? written : _options.UdpMark;
            await RemoveAsync(lines.FirstOrDefault()?.Trim() ?? _map.Pool.ToString(), udpMark, cancellationToken).ConfigureAwait(false);
        }

        if (_options.Enabled)
        {
            await SwitchAsync(true, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await SwitchAsync(false, cancellationToken).ConfigureAwait(false);

    /// <summary>Switches on or off (nothing to do when it already is); returns the status after.</summary>
    public async Task<TransparentStatus> SwitchAsync(bool on, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (on == _enabled)
            {
                return Status;
            }

            if (on)
            {
                await EnableAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await RemoveAsync(_map.Pool.ToString(), _options.UdpMark, cancellationToken).ConfigureAwait(false);
                Log.Switched(_logger, "off");
            }

            _enabled = on;
            return Status;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task EnableAsync(CancellationToken cancellationToken)
    {
        var pool = _map.Pool;
        try
        {
            AtomicFile.Write(_marker, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{pool}\n{_options.UdpMark}\n"));
            _listener.Start();
            _udp.Start();
            _mark.Enabled = true;
            var ipv4Port = _listener.Ipv4Port!.Value;
            await ExternalCommand.RunAsync("nft", ["-f", "-"], InterceptionRules.Install(pool, _mark.Value, ipv4Port, _listener.Ipv6Port ?? ipv4Port)
                + InterceptionRules.InstallUdp(pool, _mark.Value, _options.UdpMark, _udp.Ipv4Port!.Value, _udp.Ipv6Port), cancellationToken).ConfigureAwait(false);
            var routes = InterceptionRules.AddRoutes(pool);
            await ExternalCommand.RunAsync("ip", routes[0], cancellationToken: cancellationToken).ConfigureAwait(false);
            if (_listener.Ipv6Port is not null)
            {
                // Only where the host has IPv6 (the listener bound ::1); without it, IPv6 connections fail as before.
                await ExternalCommand.RunAsync("ip", routes[1], cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            // UDP's policy routing: IPv4, then IPv6 where the UDP listener bound ::1.
            foreach (var route in InterceptionRules.UdpRoutes(_options.UdpMark).Take(_udp.Ipv6Port is null ? 2 : 4))
            {
                await ExternalCommand.RunAsync("ip", route, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            if (_stub.LocalEndPoint is { } stub)
            {
                await _resolver.InstallAsync(stub, cancellationToken).ConfigureAwait(false);
            }

            Log.Switched(_logger, "on");
        }
        catch (Exception e) when (e is ExternalCommandException or IOException or UnauthorizedAccessException or System.Net.Sockets.SocketException
                                      or PlatformNotSupportedException)
        {
            await RemoveAsync(pool.ToString(), _options.UdpMark, CancellationToken.None).ConfigureAwait(false);
            throw new TransparentModeException($"Transparent mode could not be switched on: {e.Message}", e);
        }
    }

    /// <summary>Removes everything, each part even when another fails (failures are logged); then the marker.</summary>
    private async Task RemoveAsync(string pool, uint udpMark, CancellationToken cancellationToken)
    {
        await Try(() => _resolver.RemoveAsync(cancellationToken)).ConfigureAwait(false);
        foreach (var route in InterceptionRules.DeleteRoutes(pool).Concat(InterceptionRules.UdpRoutes(udpMark, remove: true)))
        {
            await Try(() => ExternalCommand.RunAsync("ip", route, cancellationToken: cancellationToken), quiet: true).ConfigureAwait(false);
        }

        await Try(() => ExternalCommand.RunAsync("nft", ["-f", "-"], InterceptionRules.Remove(), cancellationToken)).ConfigureAwait(false);
        _mark.Enabled = false;
        await _listener.StopAsync().ConfigureAwait(false);
        await _udp.StopAsync().ConfigureAwait(false);
        _upstream.Reload();
        await Try(() =>
        {
            File.Delete(_marker);
            return Task.CompletedTask;
        }).ConfigureAwait(false);
    }

    private async Task Try(Func<Task> step, bool quiet = false)
    {
        try
        {
            await step().ConfigureAwait(false);
        }
        catch (Exception e) when (e is ExternalCommandException or IOException or UnauthorizedAccessException)
        {
            if (quiet)
            {
                Log.CleanupSkipped(_logger, e.Message);
            }
            else
            {
                Log.CleanupFailed(_logger, e.Message);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(8470, LogLevel.Information, "Transparent mode {State}.")]
        public static partial void Switched(ILogger logger, string state);

        [LoggerMessage(8471, LogLevel.Warning, "Transparent mode was on when the daemon last stopped without cleaning up ({Marker}): removing its rules, routes and resolver entry first.")]
        public static partial void Recovering(ILogger logger, string marker);

        [LoggerMessage(8472, LogLevel.Warning, "Transparent mode clean-up: {Error}.")]
        public static partial void CleanupFailed(ILogger logger, string error);

        [LoggerMessage(8473, LogLevel.Debug, "Transparent mode clean-up: {Error} (nothing to remove).")]
        public static partial void CleanupSkipped(ILogger logger, string error);
    }
}
