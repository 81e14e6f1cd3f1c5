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
    private bool _disposed;

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
        lock (_gate)
        {
            _disposed = true;
            watches = [.. _watches.Values];
            _watches.Clear();
        }

        foreach (var (cts, loop) in watches)
        {
            await cts.CancelAsync().ConfigureAwait(false);
            await loop.ConfigureAwait(false);
            cts.Dispose();
        }
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
                    if (change.Record is { } record && record.Guid == guid)
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
    }
}
