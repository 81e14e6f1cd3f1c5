using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Gns.Service;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;

namespace Mobility.Gns.Watch;

/// <summary>
/// Delivers record changes to watchers. Listens to the <see cref="IRecordChangeFeed"/> (so changes
/// stored by other GNS processes arrive too, once the feed is shared), gives each new watcher the
/// current state of its GUIDs, then every later change through its bounded, coalescing buffer.
/// When the application stops, every open watch ends (its stream completes normally) so that the
/// server does not wait for its shutdown timeout; watchers reconnect to another or the restarted GNS.
/// </summary>
public sealed partial class WatchHub : IDisposable
{
    private readonly GnsService _service;
    private readonly GnsServerOptions _options;
    private readonly ILogger<WatchHub> _logger;
    private readonly IDisposable _feedSubscription;
    private readonly CancellationTokenRegistration _stopping;
    private readonly Lock _gate = new();
    private readonly Dictionary<HostGuid, List<WatchSubscription>> _watchers = [];
    private int _count;
    private bool _closed;

    /// <param name="lifetime">When given, <see cref="Close"/> runs when the application starts stopping.</param>
    public WatchHub(IRecordChangeFeed feed, GnsService service, IOptions<GnsServerOptions> options, ILogger<WatchHub> logger,
        IHostApplicationLifetime? lifetime = null)
    {
        ArgumentNullException.ThrowIfNull(feed);
        ArgumentNullException.ThrowIfNull(options);
        _service = service;
        _options = options.Value;
        _logger = logger;
        _feedSubscription = feed.Subscribe(OnChange);
        _stopping = lifetime?.ApplicationStopping.Register(static hub => ((WatchHub)hub!).Close(), this) ?? default;
    }

    /// <summary>Open watches.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>
    /// Starts watching <paramref name="guids"/> (duplicates ignored). The subscription already holds
    /// the current state of each GUID when this completes. Refused when there are more GUIDs than
    /// <see cref="GnsServerOptions.MaxWatchGuids"/> or the server has <see cref="GnsServerOptions.MaxWatches"/> open,
    /// and with Unavailable once the hub is closed.
    /// </summary>
    public async ValueTask<GnsResult<WatchSubscription>> SubscribeAsync(IEnumerable<HostGuid> guids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(guids);
        var set = new HashSet<HostGuid>();
        foreach (var guid in guids)
        {
            if (set.Add(guid) && set.Count > _options.MaxWatchGuids)
            {
                Log.WatchRefused(_logger, "too many GUIDs");
                return GnsResult<WatchSubscription>.Failure(GnsErrorCode.TooLarge, $"A watch names at most {_options.MaxWatchGuids} GUIDs.");
            }
        }

        if (set.Count == 0)
        {
            return GnsResult<WatchSubscription>.Failure(GnsErrorCode.Malformed, "A watch names at least one GUID.");
        }

        if (Interlocked.Increment(ref _count) > _options.MaxWatches)
        {
            Interlocked.Decrement(ref _count);
            Log.WatchRefused(_logger, "too many watches");
            return GnsResult<WatchSubscription>.Failure(GnsErrorCode.RateLimited, "This server has too many watches open; retry later.");
        }

        var subscription = new WatchSubscription(set, Unregister);
        lock (_gate)
        {
            if (_closed)
            {
                Interlocked.Decrement(ref _count);
                Log.WatchRefused(_logger, "stopping");
                return GnsResult<WatchSubscription>.Failure(GnsErrorCode.Unavailable, "This server is stopping; watch another or retry later.");
            }

            foreach (var guid in set)
            {
                if (!_watchers.TryGetValue(guid, out var list))
                {
                    list = [];
                    _watchers.Add(guid, list);
                }

                list.Add(subscription);
            }
        }

        // Registered first, read second: a change stored in between reaches the subscription through
        // the feed, and the version check keeps whichever state is newer.
        try
        {
            foreach (var guid in set)
            {
                subscription.Offer(await _service.CurrentStateAsync(guid, cancellationToken).ConfigureAwait(false));
            }
        }
        catch
        {
            subscription.Dispose();
            throw;
        }

        Log.WatchStarted(_logger, set.Count);
        return GnsResult<WatchSubscription>.Success(subscription);
    }

    /// <summary>Ends every open watch (each reader sees the end of its changes) and refuses new ones. Idempotent.</summary>
    public void Close()
    {
        WatchSubscription[] open;
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            open = [.. _watchers.Values.SelectMany(static list => list).Distinct()];
        }

        // Outside the lock: disposing unregisters, which takes it.
        foreach (var subscription in open)
        {
            subscription.Dispose();
        }

        Log.Closed(_logger, open.Length);
    }

    public void Dispose()
    {
        _stopping.Dispose();
        _feedSubscription.Dispose();
        Close();
    }

    private void OnChange(RecordChange change)
    {
        lock (_gate)
        {
            if (_watchers.TryGetValue(change.Guid, out var list))
            {
                foreach (var subscription in list)
                {
                    subscription.Offer(change);
                }
            }
        }
    }

    private void Unregister(WatchSubscription subscription)
    {
        lock (_gate)
        {
            foreach (var guid in subscription.Guids)
            {
                if (_watchers.TryGetValue(guid, out var list))
                {
                    list.Remove(subscription);
                    if (list.Count == 0)
                    {
                        _watchers.Remove(guid);
                    }
                }
            }
        }

        Interlocked.Decrement(ref _count);
        Log.WatchEnded(_logger);
    }

    private static partial class Log
    {
        [LoggerMessage(1101, LogLevel.Debug, "Watch of {Count} GUIDs started")]
        public static partial void WatchStarted(ILogger logger, int count);

        [LoggerMessage(1102, LogLevel.Debug, "Watch ended")]
        public static partial void WatchEnded(ILogger logger);

        [LoggerMessage(1103, LogLevel.Debug, "Watch refused: {Reason}")]
        public static partial void WatchRefused(ILogger logger, string reason);

        [LoggerMessage(1104, LogLevel.Information, "Stopping: ended {Count} open watches")]
        public static partial void Closed(ILogger logger, int count);
    }
}
