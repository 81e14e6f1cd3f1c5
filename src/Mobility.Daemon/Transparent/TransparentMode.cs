using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using System.Net;
using Mobility.Daemon.Forwarding;
using Mobility.Daemon.Internal;

namespace Mobility.Daemon.Transparent;

/// <summary>What <c>mob transparent status</c> and <c>mob status</c> show.</summary>
/// <param name="Enabled">The rules, routes and resolver entry are installed.</param>
/// <param name="Stub">The DNS stub's endpoint, or null when it is off or could not bind.</param>
/// <param name="Resolver">Where the stub is installed: "none", "systemd-resolved (link mobility0)" or a resolv.conf path.</param>
/// <param name="Mappings">Peers holding a virtual IPv4 address.</param>
/// <param name="Rules">The nftables table, when installed ("inet mobility").</param>
/// <param name="Opportunistic">Opportunistic mode is on: connections to ordinary addresses are intercepted too.</param>
/// <param name="OpportunisticMobile">Intercepted connections to ordinary addresses carried as mobile streams since the start.</param>
/// <param name="OpportunisticPlain">Those carried as plain TCP.</param>
/// <param name="OpportunisticOverBudget">Owner lookups that took longer than the budget (their connections went plain).</param>
public sealed record TransparentStatus(bool Enabled, string? Stub, string Resolver, int Mappings, string Ipv4Pool, string Ipv6Prefix, string? Rules,
    int? Ipv4Port, int? Ipv6Port, bool Opportunistic = false, long OpportunisticMobile = 0, long OpportunisticPlain = 0, long OpportunisticOverBudget = 0);

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
    private readonly MobilitydOptions _daemon;
    private readonly OwnerLookupBudget _owners;
    private bool _enabled;
    private bool _opportunistic;

    public TransparentMode(IOptions<MobilitydOptions> options, VirtualAddressMap map, DnsStub stub, DnsUpstream upstream, InterceptionListener listener,
        UdpInterceptor udp, SocketMark mark, ResolverIntegration resolver, VerifiedAddressOwners owners, TimeProvider time, ILogger<TransparentMode> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _daemon = options.Value;
        _options = options.Value.Transparent;
        _owners = new OwnerLookupBudget(owners, _options.OpportunisticBudget, time);
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
        _listener.Ipv4Port, _listener.Ipv6Port, _enabled && _opportunistic, _listener.OpportunisticCounts.Mobile, _listener.OpportunisticCounts.Plain,
        _owners.OverBudget);

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
    public Task<TransparentStatus> SwitchAsync(bool on, CancellationToken cancellationToken) => SwitchAsync(on, opportunistic: null, cancellationToken);

    /// <summary>
    /// Switches on or off; on, with opportunistic mode as <paramref name="opportunistic"/> says (null:
    /// <see cref="TransparentOptions.Opportunistic"/>). Already on with the other opportunistic setting: the table is
    /// installed again with or without its rules (one nft transaction). Returns the status after.
    /// </summary>
    public async Task<TransparentStatus> SwitchAsync(bool on, bool? opportunistic, CancellationToken cancellationToken)
    {
        var wanted = opportunistic ?? _options.Opportunistic;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (on == _enabled && (!on || wanted == _opportunistic))
            {
                return Status;
            }

            if (on && _enabled)
            {
                try
                {
                    await InstallRulesAsync(wanted, cancellationToken).ConfigureAwait(false);
                }
                catch (ExternalCommandException e)
                {
                    // nft applies a file as one transaction: the table installed before is still there.
                    throw new TransparentModeException($"Opportunistic mode could not be switched {(wanted ? "on" : "off")}: {e.Message}", e);
                }
            }
            else if (on)
            {
                await EnableAsync(wanted, cancellationToken).ConfigureAwait(false);
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

    private async Task EnableAsync(bool opportunistic, CancellationToken cancellationToken)
    {
        var pool = _map.Pool;
        try
        {
            AtomicFile.Write(_marker, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{pool}\n{_options.UdpMark}\n"));
            _listener.Start();
            _udp.Start();
            _mark.Enabled = true;
            await InstallRulesAsync(opportunistic, cancellationToken).ConfigureAwait(false);
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

    /// <summary>
    /// Installs the table (replacing the one there), with the rules of opportunistic mode when <paramref name="opportunistic"/>;
    /// the listener takes connections to ordinary addresses from then on (or resets them, off). Throws as nft does.
    /// </summary>
    private async Task InstallRulesAsync(bool opportunistic, CancellationToken cancellationToken)
    {
        var ipv4Port = _listener.Ipv4Port!.Value;
        var rules = opportunistic ? await OpportunisticRulesAsync(cancellationToken).ConfigureAwait(false) : null;
        var previous = _listener.Opportunistic;
        if (opportunistic)
        {
            // Before the rules send ordinary connections here.
            _listener.Opportunistic = _owners;
        }

        try
        {
            // The whole table in one transaction: TCP (and opportunistic) rules and UDP's chains, so switching
            // opportunistic mode never leaves UDP interception out.
            await ExternalCommand.RunAsync("nft", ["-f", "-"], InterceptionRules.Install(_map.Pool, _mark.Value, ipv4Port, _listener.Ipv6Port ?? ipv4Port, rules)
                + InterceptionRules.InstallUdp(_map.Pool, _mark.Value, _options.UdpMark, _udp.Ipv4Port!.Value, _udp.Ipv6Port), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            _listener.Opportunistic = previous;
            throw;
        }

        _listener.Opportunistic = opportunistic ? _owners : null;
        _opportunistic = opportunistic;
        Log.OpportunisticSwitched(_logger, opportunistic ? "on" : "off", rules is null || rules.ExcludedAddresses.Count == 0 ? "" : $" (left alone: {string.Join(", ", rules.ExcludedAddresses)})");
    }

    /// <summary>
    /// What opportunistic mode leaves alone: the GNS servers (their names resolved now) and the gRPC GNS address, the home
    /// relays (the daemon's connections to them carry no mark), and the options' prefixes and ports.
    /// </summary>
    private async Task<OpportunisticRules> OpportunisticRulesAsync(CancellationToken cancellationToken)
    {
        var addresses = new List<IPAddress>();
        if (!_daemon.EmbeddedGns && _daemon.GnsServerList is { } gns)
        {
            addresses.AddRange((await gns.ResolveAsync(null, cancellationToken).ConfigureAwait(false)).Select(e => e.Address));
        }

        if (Uri.TryCreate(_daemon.GnsGrpc, UriKind.Absolute, out var grpc) && IPAddress.TryParse(grpc.Host.Trim('[', ']'), out var grpcAddress))
        {
            addresses.Add(grpcAddress);
        }

        addresses.AddRange(_daemon.RelayTargets.Select(t => t.EndPoint.Address));
        return new OpportunisticRules([.. addresses.Select(a => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).Distinct()], _options.ExcludedPrefixes,
            _options.ExcludedPorts);
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
        _listener.Opportunistic = null;
        _opportunistic = false;
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

        [LoggerMessage(8902, LogLevel.Information, "Opportunistic mode {State}{Excluded}.")]
        public static partial void OpportunisticSwitched(ILogger logger, string state, string excluded);

        [LoggerMessage(8473, LogLevel.Debug, "Transparent mode clean-up: {Error} (nothing to remove).")]
        public static partial void CleanupSkipped(ILogger logger, string error);
    }
}
