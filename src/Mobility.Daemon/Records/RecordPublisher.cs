using System.Collections.Immutable;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.Identity;
using Mobility.Daemon.Internal;
using Mobility.Gns.Client;
using Mobility.Net.Threading;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Records;

/// <summary>What the GNS holds of this host, as far as the daemon knows.</summary>
public sealed record PublishState(
    bool GnsReachable,
    ulong Version,
    DateTimeOffset? PublishedAt,
    IPEndPoint? Observed,
    string? Error,
    long PublishedGeneration,
    ImmutableArray<Locator> Locators)
{
    public static PublishState Initial { get; } = new(false, 0, null, null, null, 0, []);
}

/// <summary>
/// Keeps the host's GNS record current: registers on start, publishes a new signed record a
/// debounce after every address change, re-publishes when <see cref="RecordOptions.RefreshFraction"/>
/// of the TTL has passed, and retries with capped exponential back-off and jitter while the GNS
/// refuses or does not answer. Versions strictly increase across restarts:
/// max(last + 1, unix time in microseconds), the last one kept in &lt;StateDir&gt;/record-version.
/// The reflexive address the GNS reports is published as an Observed locator when it is not one of
/// the host's own (and not loopback, which only says the GNS runs on this host). One is kept per
/// address family, each with the host's addresses of that family it was seen from: when those change
/// (a move, or the host left the family) it is dropped before the next record, so no record lists an
/// address the host just lost, and the next reply of the GNS supplies the new one.
/// </summary>
public sealed partial class RecordPublisher : BackgroundService
{
    public const string VersionFileName = "record-version";

    private readonly Forwarding.MobileForwarder? _transport;
    private readonly PortMapping.PortMapper? _portMapper;
    private readonly MobilitydOptions _options;
    private readonly DaemonIdentity _identity;
    private readonly AddressMonitor _addresses;
    private readonly IGnsClient _gns;
    private readonly TimeProvider _time;
    private readonly ILogger<RecordPublisher> _logger;
    // Woken inline: the address monitor's (or any setter's) thread signs and sends the update at once, instead of queueing the
    // publisher behind everything else an address change wakes (10-50 ms on two loaded cores in the netlab's moves).
    private readonly AsyncAutoResetSignal _dirty = new(wakeInline: true);
    private readonly Lock _gate = new();
    private readonly List<(long Generation, TaskCompletionSource Done)> _waiters = [];
    private readonly string _versionPath;
    private PublishState _state = PublishState.Initial;
    private ulong _lastVersion;

    // The reflexive address per family and the host's addresses of that family it was seen from; only the publish loop touches it.
    private ImmutableDictionary<AddressFamily, (IPAddress Address, ImmutableArray<IPAddress> From)> _observed =
        ImmutableDictionary<AddressFamily, (IPAddress, ImmutableArray<IPAddress>)>.Empty;

    public RecordPublisher(IOptions<MobilitydOptions> options, DaemonIdentity identity, AddressMonitor addresses, IGnsClient gns,
        TimeProvider time, ILogger<RecordPublisher> logger, Forwarding.MobileForwarder? transport = null, PortMapping.PortMapper? portMapper = null)
    {
        _transport = transport;
        _portMapper = portMapper;
        if (portMapper is not null)
        {
            // A mapping granted, moved or lost at the home gateway changes the Observed locators: publish again.
            portMapper.Changed += Republish;
        }

        if (transport is not null)
        {
            // A new home relay (or none) changes the Relay locator: publish again.
            transport.RelayChanged += (_, _) => Republish();
        }

        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _identity = identity;
        _addresses = addresses;
        _gns = gns;
        _time = time;
        _logger = logger;
        _versionPath = Path.Combine(_options.StateDir, VersionFileName);
        _lastVersion = ReadLastVersion(_versionPath);
    }

    /// <summary>Raised after every publish attempt (handlers must be quick).</summary>
    public event Action? Changed;

    public PublishState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <summary>Asks for a publish now (after the debounce).</summary>
    public void Republish() => _dirty.Set();

    /// <summary>Waits until address change <paramref name="generation"/> (or a later one) is stored in the GNS; false on timeout.</summary>
    public async Task<bool> WaitPublishedAsync(long generation, TimeSpan timeout, CancellationToken cancellationToken)
    {
        TaskCompletionSource done;
        lock (_gate)
        {
            if (_state.PublishedGeneration >= generation)
            {
                return true;
            }

            done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((generation, done));
        }

        try
        {
            await done.Task.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
        finally
        {
            lock (_gate)
            {
                _waiters.RemoveAll(w => w.Done == done);
            }
        }
    }

    /// <summary>The next version: above the last one and, normally, the current time in microseconds.</summary>
    internal ulong NextVersion()
    {
        var micros = (ulong)Math.Max(0, (_time.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks / 10);
        _lastVersion = Math.Max(_lastVersion + 1, micros);
        return _lastVersion;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // First: this thread signs and sends the update before the transport's hand-over and before any background loop is
        // woken (each wake-up may let the scheduler switch away from this thread: 16-27 ms in a simultaneous move).
        using var subscription = _addresses.Subscribe(_dirty.Set, AddressChangeOrder.Publish);
        _dirty.Set();
        var refreshEvery = TimeSpan.FromSeconds(_options.Record.TtlSeconds * _options.Record.RefreshFraction);
        var retry = TimeSpan.Zero;
        var nextDue = Timeout.InfiniteTimeSpan;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                // The debounce holds only an update with no address (the first half of a break-before-make move, whose
                // second half usually follows within milliseconds); a change that leaves an address goes out at once.
                if (await _dirty.WaitAsync(nextDue, _time, stoppingToken).ConfigureAwait(false) && _options.AddressWatch.Debounce > TimeSpan.Zero
                    && _addresses.Current.Addresses.IsEmpty)
                {
                    await Task.Delay(_options.AddressWatch.Debounce, _time, stoppingToken).ConfigureAwait(false);
                    _dirty.TryReset();
                }

                if (await PublishAsync(stoppingToken).ConfigureAwait(false))
                {
                    retry = TimeSpan.Zero;
                    nextDue = refreshEvery;
                }
                else
                {
                    retry = retry == TimeSpan.Zero ? _options.Record.RetryDelay : TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, _options.Record.MaxRetryDelay.Ticks));
                    nextDue = retry * (0.75 + (Random.Shared.NextDouble() * 0.5));
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task<bool> PublishAsync(CancellationToken cancellationToken)
    {
        var snapshot = _addresses.Current;
        _observed = CurrentObserved(_observed, snapshot);
        var locators = Locators(snapshot, _observed);
        var record = GnsRecord.Create(_identity.Key, NextVersion(), locators, _options.Record.TtlSeconds,
            string.IsNullOrWhiteSpace(_options.Name) ? null : _options.Name, _time.GetUtcNow());
        try
        {
            Log.Publishing(_logger, record.Version, string.Join(' ', record.Locators));
            var result = await _gns.RegisterAsync(record, cancellationToken).ConfigureAwait(false);
            WriteLastVersion(record.Version);
            var newObserved = result.Observed is { } o ? new IPEndPoint(Locator.Normalize(o.Address), o.Port) : null;
            Log.Published(_logger, record.Version, string.Join(' ', record.Locators), newObserved?.ToString() ?? "-");
            Complete(new PublishState(true, result.Version, _time.GetUtcNow(), newObserved, null, snapshot.Generation, record.Locators));
            if (newObserved is not null)
            {
                var family = newObserved.Address.AddressFamily;
                _observed = _observed.SetItem(family, (newObserved.Address, OfFamily(snapshot, family)));
            }

            if (!Locators(snapshot, _observed).SequenceEqual(locators))
            {
                // The reflexive address changed what we publish: publish again with it.
                _dirty.Set();
            }

            return true;
        }
        catch (GnsException e) when (e.Code == GnsErrorCode.StaleVersion)
        {
            await LearnStoredVersionAsync(cancellationToken).ConfigureAwait(false);
            Fail($"stale version {record.Version}: {e.Message}");
            return false;
        }
        catch (GnsException e)
        {
            Fail(e.Message);
            return false;
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.PublishFailedUnexpectedly(_logger, e);
            Fail(e.Message);
            return false;
        }
    }

    private ImmutableArray<Locator> Locators(AddressSnapshot snapshot, ImmutableDictionary<AddressFamily, (IPAddress Address, ImmutableArray<IPAddress> From)> observed)
    {
        var port = (ushort)_options.TransportPort;
        var list = snapshot.Addresses.Select(a => new Locator(a, port, LocatorKind.Host)).ToList();
        // The endpoint the home gateway mapped to the transport (PCP / NAT-PMP): where peers outside reach us directly.
        var mapped = _portMapper?.State.Transport?.External;
        if (mapped is not null && !snapshot.Addresses.Contains(mapped.Address))
        {
            list.Add(new Locator(mapped.Address, (ushort)mapped.Port, LocatorKind.Observed));
        }

        foreach (var family in (ReadOnlySpan<AddressFamily>)[AddressFamily.InterNetwork, AddressFamily.InterNetworkV6])
        {
            // The GNS's view with our transport port is a guess (right behind port-preserving NATs); the mapping, when
            // there is one for that address, is what the gateway promised.
            if (_options.Record.PublishObserved && observed.TryGetValue(family, out var seen) && !IPAddress.IsLoopback(seen.Address)
                && !seen.Address.Equals(mapped?.Address)
                && !seen.Address.Equals(IPAddress.Any) && !seen.Address.Equals(IPAddress.IPv6Any)
                && !snapshot.Addresses.Contains(seen.Address) && list.Count < GnsRecord.MaxLocators)
            {
                // The port is our transport port: it holds behind port-preserving NAT only (docs/mobilityd.md).
                list.Add(new Locator(seen.Address, port, LocatorKind.Observed));
            }
        }

        // Only the families the transport listener serves (0.0.0.0 takes no IPv6 connection): a peer
        // must never be sent to a locator nothing listens on.
        list = [.. list.Where(l => _transport?.Serves(l.Address) ?? true)];

        // The home relay this host is registered at (--relay): peers that cannot reach it directly dial it there.
        if (_transport?.CurrentRelay is { } relay && list.Count < GnsRecord.MaxLocators)
        {
            list.Add(new Locator(relay.Address, (ushort)relay.Port, LocatorKind.Relay));
        }

        return [.. list];
    }

    /// <summary>The observed addresses still valid for <paramref name="snapshot"/>: those whose family's host addresses are the ones they were seen from.</summary>
    internal static ImmutableDictionary<AddressFamily, (IPAddress Address, ImmutableArray<IPAddress> From)> CurrentObserved(
        ImmutableDictionary<AddressFamily, (IPAddress Address, ImmutableArray<IPAddress> From)> observed, AddressSnapshot snapshot)
    {
        foreach (var (family, seen) in observed)
        {
            if (!seen.From.SequenceEqual(OfFamily(snapshot, family)))
            {
                observed = observed.Remove(family);
            }
        }

        return observed;
    }

    private static ImmutableArray<IPAddress> OfFamily(AddressSnapshot snapshot, AddressFamily family) =>
        [.. snapshot.Addresses.Where(a => a.AddressFamily == family)];

    private async Task LearnStoredVersionAsync(CancellationToken cancellationToken)
    {
        try
        {
            _gns.Invalidate(_identity.Guid);
            if (await _gns.LookupAsync(_identity.Guid, cancellationToken).ConfigureAwait(false) is { } stored && stored.Version > _lastVersion)
            {
                _lastVersion = stored.Version;
            }
        }
        catch (GnsException e)
        {
            Log.PublishFailed(_logger, $"could not learn the stored version: {e.Message}");
        }
    }

    private void Fail(string error)
    {
        Log.PublishFailed(_logger, error);
        lock (_gate)
        {
            _state = _state with { GnsReachable = false, Error = error };
        }

        Changed?.Invoke();
    }

    private void Complete(PublishState state)
    {
        List<TaskCompletionSource> done = [];
        lock (_gate)
        {
            _state = state;
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Generation <= state.PublishedGeneration)
                {
                    done.Add(_waiters[i].Done);
                    _waiters.RemoveAt(i);
                }
            }
        }

        foreach (var d in done)
        {
            d.TrySetResult();
        }

        Changed?.Invoke();
    }

    private static ulong ReadLastVersion(string path)
    {
        try
        {
            return File.Exists(path) && ulong.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private void WriteLastVersion(ulong version)
    {
        try
        {
            AtomicFile.Write(_versionPath, version.ToString(CultureInfo.InvariantCulture) + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.VersionFileFailed(_logger, _versionPath, e.Message);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(4001, LogLevel.Information, "Published record version {Version}: {Locators} (GNS saw us as {Observed}).")]
        public static partial void Published(ILogger logger, ulong version, string locators, string observed);

        [LoggerMessage(4002, LogLevel.Warning, "Could not publish the record: {Error}. Retrying.")]
        public static partial void PublishFailed(ILogger logger, string error);

        [LoggerMessage(4003, LogLevel.Error, "Publishing the record failed unexpectedly.")]
        public static partial void PublishFailedUnexpectedly(ILogger logger, Exception exception);

        [LoggerMessage(4005, LogLevel.Debug, "Publishing record version {Version}: {Locators}.")]
        public static partial void Publishing(ILogger logger, ulong version, string locators);

        [LoggerMessage(4004, LogLevel.Warning, "Could not write {Path}: {Error}.")]
        public static partial void VersionFileFailed(ILogger logger, string path, string error);
    }
}
