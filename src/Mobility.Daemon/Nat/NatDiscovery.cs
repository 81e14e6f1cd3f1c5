using System.Collections.Immutable;
using System.Net;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Addresses;
using Mobility.Net.Threading;

namespace Mobility.Daemon.Nat;

/// <summary>The last check's reports (one per family with a GNS endpoint), or why there is none.</summary>
public sealed record NatState(ImmutableArray<NatReport> Families, DateTimeOffset? CheckedAt, string? Error)
{
    public static NatState NotYet { get; } = new([], null, null);
}

/// <summary>
/// NAT discovery: learns the host's reflexive address per family and its NAT's mapping and filtering behaviour from the
/// GNS endpoints of <c>--gns</c> (<see cref="NatProber"/>, <see cref="NatClassifier"/>; docs/nat.md). Checks at start,
/// after every address change (the address monitor's events, debounced like the record publisher's), when asked
/// (<see cref="CheckNowAsync"/>, <c>mob netcheck</c>) and <see cref="NatOptions.RecheckInterval"/> after the last
/// check, never two at once: a request that comes while a check runs is served by the next one.
/// </summary>
public sealed partial class NatDiscovery : BackgroundService
{
    private readonly MobilitydOptions _options;
    private readonly AddressMonitor _addresses;
    private readonly TimeProvider _time;
    private readonly ILogger<NatDiscovery> _logger;
    private readonly NatProber _prober;
    private readonly Func<CancellationToken, Task<IReadOnlyList<IPEndPoint>>> _servers;
    private readonly AsyncAutoResetSignal _wake = new();
    private readonly Lock _gate = new();
    private List<TaskCompletionSource<NatState>> _waiters = [];
    private NatState _state = NatState.NotYet;

    public NatDiscovery(IOptions<MobilitydOptions> options, AddressMonitor addresses, TimeProvider time, ILogger<NatDiscovery> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _addresses = addresses;
        _time = time;
        _logger = logger;
        _prober = new NatProber(_options.Nat, time);
        _servers = ResolveServersAsync;
    }

    /// <summary>The last check's result.</summary>
    public NatState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <summary>Checks now (or right after the check that is running) and returns its result.</summary>
    public async Task<NatState> CheckNowAsync(CancellationToken cancellationToken)
    {
        if (Off() is { } off)
        {
            return new NatState([], null, off);
        }

        var done = new TaskCompletionSource<NatState>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            _waiters.Add(done);
        }

        _wake.Set();
        return await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (Off() is { } off)
        {
            lock (_gate)
            {
                _state = new NatState([], null, off);
            }

            return;
        }

        using var subscription = _addresses.Subscribe(_wake.Set);
        // The first check at once, then one per wake-up (debounced: a burst of address events or requests makes one) or per interval.
        var woken = true;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var settle = _options.AddressWatch.Debounce;
                if (woken && settle > TimeSpan.Zero)
                {
                    await Task.Delay(settle, _time, stoppingToken).ConfigureAwait(false);
                    _wake.TryReset();
                }

                List<TaskCompletionSource<NatState>> waiters;
                lock (_gate)
                {
                    (waiters, _waiters) = (_waiters, []);
                }

                var state = await CheckAsync(stoppingToken).ConfigureAwait(false);
                foreach (var waiter in waiters)
                {
                    waiter.TrySetResult(state);
                }

                woken = await _wake.WaitAsync(_options.Nat.RecheckInterval, _time, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            lock (_gate)
            {
                foreach (var waiter in _waiters)
                {
                    waiter.TrySetCanceled(stoppingToken);
                }
            }
        }
    }

    private async Task<NatState> CheckAsync(CancellationToken cancellationToken)
    {
        NatState state;
        try
        {
            var servers = await _servers(cancellationToken).ConfigureAwait(false);
            var probes = await _prober.ProbeAsync(servers, cancellationToken).ConfigureAwait(false);
            var at = _time.GetUtcNow();
            state = new NatState([.. probes.Select(p => NatClassifier.Classify(p, at))], at, servers.Count == 0 ? "no GNS address resolved" : null);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or FormatException)
        {
            state = new NatState([], _time.GetUtcNow(), e.Message);
            LogCheckFailed(_logger, e.Message);
        }

        NatState previous;
        lock (_gate)
        {
            previous = _state;
            _state = state;
        }

        foreach (var report in state.Families)
        {
            var before = previous.Families.FirstOrDefault(r => r.Family == report.Family);
            if (!NatClassifier.SameBehaviour(before, report))
            {
                // Only a new verdict is logged: the periodic check stays quiet while nothing changes.
                LogChecked(_logger, report.FamilyName, Describe(report));
            }
        }

        return state;
    }

    [LoggerMessage(4200, LogLevel.Information, "NAT check {Family}: {Result}")]
    private static partial void LogChecked(ILogger logger, string family, string result);

    /// <summary>One line: reflexive address, NAT or not, mapping, filtering, notes.</summary>
    public static string Describe(NatReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var nat = report.BehindNat switch { true => "behind NAT", false => "no NAT", null => "NAT unknown" };
        var line = $"reflexive {report.Reflexive?.ToString() ?? "-"} ({nat}, local {report.Local?.ToString() ?? "-"}, via {report.Server}), " +
                   $"mapping {NatClassifier.Name(report.Mapping)}, filtering {NatClassifier.Name(report.Filtering)}";
        return report.Detail.Length == 0 ? line : $"{line}; {report.Detail}";
    }

    /// <summary>Why discovery does not run, or null when it does.</summary>
    private string? Off()
    {
        if (!_options.Nat.Enabled)
        {
            return "off (Nat:Enabled is false)";
        }

        return _options.EmbeddedGns ? "off: the GNS is embedded in this daemon, so it sees no NAT" : null;
    }

    [LoggerMessage(4201, LogLevel.Warning, "NAT check failed: {Error}")]
    private static partial void LogCheckFailed(ILogger logger, string error);

    private async Task<IReadOnlyList<IPEndPoint>> ResolveServersAsync(CancellationToken cancellationToken)
        => _options.GnsServerList is { } list ? await list.ResolveAsync(null, cancellationToken).ConfigureAwait(false) : [];
}
