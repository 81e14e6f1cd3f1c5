using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using Mobility.Transport;

namespace Mobility.Daemon.Forwarding;

/// <summary>
/// Finds peers' transport endpoints in the GNS: <see cref="LocateAsync"/> looks the record up (fresh,
/// not from the cache: it is asked when a path was lost) and returns its Host locators; the first
/// lookup of a GUID starts a watch whose pushes raise <see cref="EndpointsChanged"/>. Watches are
/// bounded by <see cref="ForwardingOptions.MaxWatchedPeers"/> (the oldest stops first).
/// </summary>
public sealed partial class GnsPeerLocator : IPeerLocator, IAsyncDisposable
{
    private readonly IGnsClient _gns;
    private readonly TimeProvider _time;
    private readonly ILogger<GnsPeerLocator> _logger;
    private readonly int _maxWatched;
    private readonly Lock _gate = new();
    private readonly Dictionary<HostGuid, (CancellationTokenSource Cts, Task Loop)> _watches = [];
    private readonly Queue<HostGuid> _order = new();
    private readonly Dictionary<HostGuid, ulong> _versions = [];
    private readonly CancellationTokenSource _stopping = new();
    private Task _catchUp = Task.CompletedTask;
    private bool _catchUpAgain;
    private bool _disposed;

    /// <summary>Catch-up lookups after an address change run this many at a time (one GNS query each).</summary>
    internal const int CatchUpParallelism = 8;

    public GnsPeerLocator(IGnsClient gns, IOptions<MobilitydOptions> options, TimeProvider time, ILogger<GnsPeerLocator> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _gns = gns;
        _time = time;
        _logger = logger;
        _maxWatched = options.Value.Forwarding.MaxWatchedPeers;
    }

    public event EventHandler<PeerEndpointsChangedEventArgs>? EndpointsChanged;

    public async ValueTask<IReadOnlyList<IPEndPoint>> LocateAsync(HostGuid guid, CancellationToken cancellationToken)
    {
        _gns.Invalidate(guid);
        var record = await _gns.LookupAsync(guid, cancellationToken).ConfigureAwait(false);
        Watch(guid);
        return record is null ? [] : Endpoints(record);
    }

    /// <summary>
    /// The host's addresses changed (the forwarder's move loop calls this right after telling the
    /// connections): the GNS watch ran over a connection from the old address, which is dead
    /// without anyone noticing, so the GNS client re-opens it at once from the new one (the GNS then
    /// re-delivers the current records), and every watched peer is looked up once, so a change
    /// published while the watch was down is not missed. Only records newer than the last one seen
    /// raise <see cref="EndpointsChanged"/>. Returns at once; the lookups run in the background.
    /// </summary>
    public void NotifyLocalAddressChanged()
    {
        _gns.NotifyLocalAddressChanged();
        lock (_gate)
        {
            if (_disposed || _watches.Count == 0)
            {
                return;
            }

            if (!_catchUp.IsCompleted)
            {
                _catchUpAgain = true;
                return;
            }

            _catchUp = CatchUpAsync(_stopping.Token);
        }
    }

    private async Task CatchUpAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        while (true)
        {
            HostGuid[] watched;
            lock (_gate)
            {
                _catchUpAgain = false;
                watched = [.. _watches.Keys];
            }

            try
            {
                await Parallel.ForEachAsync(watched, new ParallelOptions { MaxDegreeOfParallelism = CatchUpParallelism, CancellationToken = cancellationToken },
                    async (guid, ct) =>
                    {
                        try
                        {
                            _gns.Invalidate(guid);
                            if (await _gns.LookupAsync(guid, ct).ConfigureAwait(false) is { } record && record.Guid == guid && IsNewer(record))
                            {
                                Log.CaughtUp(_logger, guid.ToString(), record.Version);
                                EndpointsChanged?.Invoke(this, new PeerEndpointsChangedEventArgs(guid, Endpoints(record)));
                            }
                        }
                        catch (GnsException e)
                        {
                            Log.CatchUpFailed(_logger, guid.ToString(), e.Message);
                        }
                    }).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            lock (_gate)
            {
                if (!_catchUpAgain || _disposed)
                {
                    return;
                }
            }
        }
    }

    /// <summary>Records <paramref name="record"/>'s version; true when it is newer than any seen for its GUID.</summary>
    private bool IsNewer(GnsRecord record)
    {
        lock (_gate)
        {
            if (_versions.TryGetValue(record.Guid, out var seen) && seen >= record.Version)
            {
                return false;
            }

            _versions[record.Guid] = record.Version;
            return true;
        }
    }

    /// <summary>The transport endpoints of a record: its Host locators, then Observed ones (port-preserving NAT).</summary>
    public static IReadOnlyList<IPEndPoint> Endpoints(GnsRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return [.. record.Locators.Where(l => l.Kind == LocatorKind.Host).Concat(record.Locators.Where(l => l.Kind == LocatorKind.Observed))
            .Select(l => new IPEndPoint(l.Address, l.Port))];
    }

    public async ValueTask DisposeAsync()
    {
        (CancellationTokenSource Cts, Task Loop)[] watches;
        Task catchUp;
        lock (_gate)
        {
            _disposed = true;
            watches = [.. _watches.Values];
            _watches.Clear();
            catchUp = _catchUp;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await catchUp.ConfigureAwait(false);

        foreach (var (cts, loop) in watches)
        {
            await cts.CancelAsync().ConfigureAwait(false);
            await loop.ConfigureAwait(false);
            cts.Dispose();
        }

        _stopping.Dispose();
    }

    private void Watch(HostGuid guid)
    {
        (CancellationTokenSource Cts, Task Loop)? evicted = null;
        lock (_gate)
        {
            if (_disposed || _watches.ContainsKey(guid))
            {
                return;
            }

            if (_watches.Count >= _maxWatched && _order.TryDequeue(out var oldest) && _watches.Remove(oldest, out var old))
            {
                evicted = old;
                _versions.Remove(oldest);
            }

            var cts = new CancellationTokenSource();
            _watches[guid] = (cts, WatchLoopAsync(guid, cts.Token));
            _order.Enqueue(guid);
        }

        if (evicted is { } e)
        {
            e.Cts.Cancel();
            _ = e.Loop.ContinueWith(static (_, c) => ((CancellationTokenSource)c!).Dispose(), e.Cts, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task WatchLoopAsync(HostGuid guid, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var delay = TimeSpan.FromMilliseconds(100);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (var change in _gns.WatchAsync([guid], cancellationToken).ConfigureAwait(false))
                {
                    delay = TimeSpan.FromMilliseconds(100);
                    // A re-opened watch re-delivers the current record: only a newer one is news.
                    if (change.Record is { } record && record.Guid == guid && IsNewer(record))
                    {
                        EndpointsChanged?.Invoke(this, new PeerEndpointsChangedEventArgs(guid, Endpoints(record)));
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NotSupportedException or InvalidOperationException)
            {
                // This GNS client cannot watch (no gRPC address): lookups after a lost path still work.
                Log.WatchFailed(_logger, guid.ToString(), $"{e.Message} (not retried)");
                return;
            }
            catch (Exception e) when (e is GnsException or IOException or Grpc.Core.RpcException)
            {
                Log.WatchFailed(_logger, guid.ToString(), e.Message);
            }

            // The watch ended or failed: start again after a capped back-off with jitter.
            try
            {
                await Task.Delay(delay * (0.75 + (Random.Shared.NextDouble() * 0.5)), _time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(8101, LogLevel.Debug, "Watch of {Guid} failed: {Error}; retrying.")]
        public static partial void WatchFailed(ILogger logger, string guid, string error);

        [LoggerMessage(8102, LogLevel.Debug, "After the address change, {Guid} has a newer record (version {Version}).")]
        public static partial void CaughtUp(ILogger logger, string guid, ulong version);

        [LoggerMessage(8103, LogLevel.Debug, "After the address change, looking up {Guid} failed: {Error}.")]
        public static partial void CatchUpFailed(ILogger logger, string guid, string error);
    }
}
