using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Peers;

/// <summary>A watched GUID has a newer record (<see cref="Record"/>), or none any more (null).</summary>
public sealed class PeerRecordChangedEventArgs(HostGuid guid, GnsRecord? record) : EventArgs
{
    public HostGuid Guid { get; } = guid;

    public GnsRecord? Record { get; } = record;
}

/// <summary>
/// The daemon's lookups of peers, kept current. Every GUID looked up through here (get_ip, the peer
/// locator of the mobile connections) is watched in the GNS for as long as the daemon remembers it, so
/// the GNS client's cache, which a watch push refreshes, never serves an answer older than the last
/// push: get_ip follows a move within one push instead of the record's TTL. A push of a newer record
/// also refreshes the <see cref="PeerBook"/> (hence the hosts file) and raises <see cref="Changed"/>.
/// <para>
/// Bounded: at most <see cref="Forwarding.ForwardingOptions.MaxWatchedPeers"/> GUIDs; beyond it the
/// least recently looked-up one is dropped, its watch stopped and its cached record invalidated (a later
/// lookup asks the GNS again and watches again). A watch that breaks is re-opened by the GNS client
/// with back-off; its first event after that, and every watched GUID after the host's own address
/// changed, is re-validated by a lookup past the cache, so no stale answer survives a GNS restart.
/// </para>
/// </summary>
public sealed partial class WatchedRecords : IAsyncDisposable
{
    /// <summary>Re-validating lookups (after an address change) run this many at a time (one GNS query each).</summary>
    internal const int RevalidateParallelism = 8;

    private readonly IGnsClient _gns;
    private readonly PeerBook _peers;
    private readonly TimeProvider _time;
    private readonly ILogger<WatchedRecords> _logger;
    private readonly int _max;
    private readonly Lock _gate = new();
    private readonly Dictionary<HostGuid, Watch> _watches = [];

    // Most recently looked up first; the last one is evicted at the cap.
    private readonly LinkedList<HostGuid> _recency = new();
    private readonly CancellationTokenSource _stopping = new();
    private Task _catchUp = Task.CompletedTask;
    private bool _catchUpAgain;
    private bool _disposed;

    public WatchedRecords(IGnsClient gns, PeerBook peers, IOptions<MobilitydOptions> options, TimeProvider time, ILogger<WatchedRecords> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _gns = gns;
        _peers = peers;
        _time = time;
        _logger = logger;
        _max = options.Value.Forwarding.MaxWatchedPeers;
    }

    /// <summary>
    /// A watched GUID has a newer record than any seen, or lost its record. Raised from a watch loop or
    /// a re-validating lookup, after the GNS client's cache and the peer book were updated; handlers must be quick.
    /// </summary>
    public event EventHandler<PeerRecordChangedEventArgs>? Changed;

    /// <summary>GUIDs watched now.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _watches.Count;
            }
        }
    }

    public bool IsWatched(HostGuid guid)
    {
        lock (_gate)
        {
            return _watches.ContainsKey(guid);
        }
    }

    /// <summary>
    /// The GUID's record (from the GNS client's cache, which the watch keeps current, unless
    /// <paramref name="fresh"/>), or null; the GUID is watched from now on. Throws <see cref="GnsException"/>.
    /// </summary>
    public async Task<GnsRecord?> LookupAsync(HostGuid guid, bool fresh = false, CancellationToken cancellationToken = default)
    {
        if (fresh)
        {
            _gns.Invalidate(guid);
        }

        var record = await _gns.LookupAsync(guid, cancellationToken).ConfigureAwait(false);
        Track(guid, record);
        return record;
    }

    /// <summary>
    /// Whether the GNS client's cached record of <paramref name="guid"/> is kept current by a live watch: the GUID is
    /// watched and its watch delivered the GUID's state since it last (re)opened, since it last failed and since the
    /// host's addresses last changed (then each watched GUID is current again once re-validated). Nothing tells this
    /// end at once that a watch stream died silently: until the client notices and re-opens it, a record may be stale
    /// for that long (bounded by the record's TTL in the cache), which is why a connect started from it falls back
    /// to a fresh lookup (<see cref="Mobility.Transport.IPeerLocator.LocateForConnectAsync"/>).
    /// </summary>
    public bool IsCurrent(HostGuid guid)
    {
        lock (_gate)
        {
            return _watches.TryGetValue(guid, out var watch) && watch.Current;
        }
    }

    /// <summary>
    /// The record a new connection to <paramref name="guid"/> starts from: the cached one when <see cref="IsCurrent"/>
    /// (no round trip while the cache holds it), else asked past the cache as <see cref="LookupAsync"/> with fresh does.
    /// <c>Cached</c> says which. The GUID is watched from now on. Throws <see cref="GnsException"/>.
    /// </summary>
    public async Task<(GnsRecord? Record, bool Cached)> LookupForConnectAsync(HostGuid guid, CancellationToken cancellationToken = default)
    {
        var current = IsCurrent(guid);
        var record = await LookupAsync(guid, fresh: !current, cancellationToken).ConfigureAwait(false);
        return (record, current);
    }

    /// <summary>The record bound to <paramref name="name"/>, or null; its GUID is watched from now on. Throws <see cref="GnsException"/>.</summary>
    public async Task<GnsRecord?> LookupNameAsync(string name, CancellationToken cancellationToken = default)
    {
        var record = await _gns.LookupNameAsync(name, cancellationToken).ConfigureAwait(false);
        if (record is not null)
        {
            Track(record.Guid, record);
        }

        return record;
    }

    /// <summary>
    /// The host's addresses are changing: no cached record is current (<see cref="IsCurrent"/>) until its watch,
    /// re-opened from the new address, delivers it again. Called before the transport hears of the change, so that a
    /// call back or a connect it starts looks the peer up instead of trusting a watch that ran from a gone address;
    /// <see cref="NotifyLocalAddressChanged"/> follows.
    /// </summary>
    public void DistrustCached()
    {
        lock (_gate)
        {
            DistrustCachedLocked();
        }
    }

    private void DistrustCachedLocked()
    {
        foreach (var watch in _watches.Values)
        {
            watch.Current = false;
        }
    }

    /// <summary>
    /// The host's addresses changed: the GNS client re-opens its watches from the new address at once,
    /// and every watched GUID is looked up once past the cache, so a change published while the watches
    /// were cut off is not missed. Returns at once; the lookups run in the background.
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

            // The watches ran from an address that may be gone: no cached record is current until re-validated.
            DistrustCachedLocked();

            if (!_catchUp.IsCompleted)
            {
                _catchUpAgain = true;
                return;
            }

            _catchUp = CatchUpAsync(_stopping.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Watch[] watches;
        Task catchUp;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            watches = [.. _watches.Values];
            _watches.Clear();
            _recency.Clear();
            catchUp = _catchUp;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await catchUp.ConfigureAwait(false);
        foreach (var watch in watches)
        {
            await watch.Cts.CancelAsync().ConfigureAwait(false);
            await watch.Loop.ConfigureAwait(false);
            watch.Cts.Dispose();
        }

        _stopping.Dispose();
    }

    /// <summary>Marks <paramref name="guid"/> most recently used, watching it if it is not yet (evicting the least recent at the cap).</summary>
    private void Track(HostGuid guid, GnsRecord? record)
    {
        Watch? evicted = null;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            if (_watches.TryGetValue(guid, out var watch))
            {
                _recency.Remove(watch.Node);
                _recency.AddFirst(watch.Node);
            }
            else
            {
                if (_watches.Count >= _max && _recency.Last is { } last)
                {
                    _recency.RemoveLast();
                    _watches.Remove(last.Value, out evicted);
                }

                watch = new Watch(_recency.AddFirst(guid), new CancellationTokenSource());
                _watches[guid] = watch;
                watch.Loop = WatchLoopAsync(guid, watch.Cts.Token);
            }

            if (record is not null && record.Version > watch.Version)
            {
                watch.Version = record.Version;
            }
        }

        if (evicted is not null)
        {
            // Not watched any more, so not cached any more: a later lookup asks the GNS.
            _gns.Invalidate(evicted.Node.Value);
            evicted.Cts.Cancel();
            _ = evicted.Loop.ContinueWith(static (_, c) => ((CancellationTokenSource)c!).Dispose(), evicted.Cts, CancellationToken.None,
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
                    if (change.Guid != guid)
                    {
                        continue;
                    }

                    if (change.Reconnected)
                    {
                        // Changes while the stream was down are not replayed: ask the GNS past the cache.
                        await RevalidateAsync(guid, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        Apply(guid, change.Record, authoritative: false);
                        SetCurrent(guid, change.Record);
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NotSupportedException or InvalidOperationException)
            {
                // This GNS client cannot watch (no gRPC address): answers then live for the record's TTL.
                Log.WatchFailed(_logger, guid.ToString(), $"{e.Message} (not retried)");
                return;
            }
            catch (Exception e) when (e is GnsException or IOException or Grpc.Core.RpcException)
            {
                Log.WatchFailed(_logger, guid.ToString(), e.Message);
            }

            SetCurrent(guid, null, current: false);

            // The watch ended or failed outside the client's own reconnection: start again after a capped back-off with jitter.
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

    /// <summary>Looks <paramref name="guid"/> up past the cache and applies the answer (the lookup refills the cache).</summary>
    private async Task RevalidateAsync(HostGuid guid, CancellationToken cancellationToken)
    {
        try
        {
            _gns.Invalidate(guid);
            var record = await _gns.LookupAsync(guid, cancellationToken).ConfigureAwait(false);
            if (!IsWatched(guid))
            {
                // Evicted while the lookup ran, which refilled the cache after the eviction emptied it:
                // nothing keeps that entry current now, so it goes (an eviction after this check empties it itself).
                _gns.Invalidate(guid);
                return;
            }

            Log.Revalidated(_logger, guid.ToString(), record is null ? "no record" : $"version {record.Version}");
            Apply(guid, record, authoritative: true);
            SetCurrent(guid, record);
        }
        catch (GnsException e)
        {
            // Nothing is cached now: the next lookup asks the GNS.
            Log.Revalidated(_logger, guid.ToString(), $"failed ({e.Message})");
        }
    }

    /// <summary>
    /// A record (or none) the GNS holds now for a watched GUID: only news is passed on. A push is news
    /// when its version is newer than any seen; an <paramref name="authoritative"/> answer (a lookup
    /// past the cache) when it differs, because a GNS that lost its store may hold a lower version now.
    /// </summary>
    private void Apply(HostGuid guid, GnsRecord? record, bool authoritative)
    {
        bool known;
        lock (_gate)
        {
            if (!_watches.TryGetValue(guid, out var watch))
            {
                return;
            }

            if (record is not null)
            {
                if (record.Guid != guid || (authoritative ? record.Version == watch.Version : record.Version <= watch.Version))
                {
                    return;
                }

                watch.Version = record.Version;
                known = true;
            }
            else
            {
                known = watch.Version != 0;
                watch.Version = 0;
            }
        }

        if (record is not null)
        {
            _peers.Refreshed(record, _time.GetUtcNow());
        }
        else
        {
            // A removal carries no version the cache could compare: whatever it holds is gone.
            _gns.Invalidate(guid);
            _peers.Unpublished(guid, _time.GetUtcNow());
            if (!known)
            {
                return;
            }
        }

        Changed?.Invoke(this, new PeerRecordChangedEventArgs(guid, record));
    }

    /// <summary>
    /// The watch (or a re-validation) just told this end the GUID's state: the cache holds <paramref name="record"/>,
    /// so it is current when there is one (a GUID without a record has nothing cached: the next connect asks the GNS).
    /// </summary>
    private void SetCurrent(HostGuid guid, GnsRecord? record, bool current = true)
    {
        lock (_gate)
        {
            if (_watches.TryGetValue(guid, out var watch))
            {
                watch.Current = current && record is not null;
            }
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
                await Parallel.ForEachAsync(watched,
                    new ParallelOptions { MaxDegreeOfParallelism = RevalidateParallelism, CancellationToken = cancellationToken },
                    async (guid, ct) => await RevalidateAsync(guid, ct).ConfigureAwait(false)).ConfigureAwait(false);
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

    private sealed class Watch(LinkedListNode<HostGuid> node, CancellationTokenSource cts)
    {
        public LinkedListNode<HostGuid> Node { get; } = node;

        public CancellationTokenSource Cts { get; } = cts;

        public Task Loop { get; set; } = Task.CompletedTask;

        /// <summary>The newest record version seen (0: none). Guarded by the owner's gate.</summary>
        public ulong Version { get; set; }

        /// <summary>The watch delivered the GUID's record since it last opened, failed or the host moved (<see cref="IsCurrent"/>). Guarded by the owner's gate.</summary>
        public bool Current { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(8101, LogLevel.Debug, "Watch of {Guid} failed: {Error}; retrying.")]
        public static partial void WatchFailed(ILogger logger, string guid, string error);

        [LoggerMessage(8102, LogLevel.Debug, "Re-validated {Guid} by a lookup past the cache: {Outcome}.")]
        public static partial void Revalidated(ILogger logger, string guid, string outcome);
    }
}
