using System.Collections.Immutable;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Mobility.Gns.Redis.Storage;
using Mobility.Gns.Watch;
using Mobility.Protocol;
using Mobility.Protocol.Identity;
using StackExchange.Redis;

namespace Mobility.Gns.Redis.Watch;

/// <summary>
/// An <see cref="IRecordChangeFeed"/> over Redis pub/sub, so that watchers connected to any GNS process
/// receive the changes stored by every other. A change is delivered to this process's subscribers at
/// once, then published; messages this process published are skipped when they come back. On a Redis
/// Cluster whose servers support it (7.0+), changes go over <see cref="RedisGnsOptions.ChangeChannels"/>
/// sharded channels (SPUBLISH/SSUBSCRIBE), the GUID choosing the channel, so a publish costs one shard
/// rather than a broadcast over the cluster bus; on a single server, one classic channel.
/// Pub/sub is at most once: a change published while a process is disconnected is not replayed to it,
/// which is why a watch starts from the current state (see WatchHub) and clients re-watch after a
/// reconnect.
/// <para>
/// Given the store's <see cref="RedisRecordCache"/>, the feed applies every change to it before any
/// subscriber sees the change (so a watcher that subscribes after a delivery never reads the older state
/// from the cache), and vouches for it: the cache serves only while the feed knows its subscriptions are
/// live. Live means this process's own probe, published on every channel, came back on every channel after
/// the last connection failure; a failure (ConnectionFailed) turns the cache off at once, and a probe that
/// is not back within <see cref="RedisGnsOptions.FeedProbeTimeout"/> (probes go out every
/// <see cref="RedisGnsOptions.FeedProbeInterval"/>) turns it off too, which covers a subscription lost
/// without any error.
/// </para>
/// </summary>
public sealed partial class RedisRecordChangeFeed : IRecordChangeFeed, IAsyncDisposable
{
    private readonly IConnectionMultiplexer _redis;
    private readonly RedisGnsOptions _options;
    private readonly ILogger<RedisRecordChangeFeed> _logger;
    private readonly Guid _origin = Guid.NewGuid();
    private readonly Action<RedisChannel, RedisValue> _onMessage;
    private readonly List<RedisChannel> _subscribed = [];
    private readonly SemaphoreSlim _startGate = new(1, 1);
    private readonly RedisRecordCache? _cache;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private readonly Lock _probeGate = new();
    private ImmutableArray<Action<RecordChange>> _handlers = [];
    private RedisChannel[] _channels = [];
    private Task _monitor = Task.CompletedTask;
    private long _generation;
    private ulong _probeNumber;
    private bool[] _probeSeen = [];
    private int _probeMissing;
    private TaskCompletionSource? _probeDone;
    private int _disposed;

    public RedisRecordChangeFeed(IConnectionMultiplexer redis, RedisGnsOptions options, ILogger<RedisRecordChangeFeed> logger)
        : this(redis, options, logger, cache: null, TimeProvider.System)
    {
    }

    /// <summary>A feed that keeps <paramref name="cache"/> (the store's) current and vouches for it while its subscriptions are live.</summary>
    internal RedisRecordChangeFeed(IConnectionMultiplexer redis, RedisGnsOptions options, ILogger<RedisRecordChangeFeed> logger,
        RedisRecordCache? cache, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(time);
        _redis = redis;
        _options = options;
        _logger = logger;
        _cache = cache;
        _time = time;
        _onMessage = OnMessage;
    }

    /// <summary>True when the feed uses sharded channels (cluster with sharded pub/sub).</summary>
    public bool Sharded { get; private set; }

    /// <summary>
    /// Subscribes to the change channels; idempotent. Changes are published only once this has run. With a
    /// cache, also waits (at most <see cref="RedisGnsOptions.FeedProbeTimeout"/>) for the first probe round,
    /// so that the cache is live when this returns on a healthy Redis, and starts the probe loop.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _startGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_channels.Length > 0)
            {
                return;
            }

            var servers = _redis.GetServers().Where(s => s.IsConnected && !s.IsReplica).ToArray();
            Sharded = servers.Length > 0 && servers.All(s => s.ServerType == ServerType.Cluster && s.Features.ShardedPubSub);
            var channels = Sharded
                ? Enumerable.Range(0, _options.ChangeChannels)
                    .Select(i => RedisChannel.Sharded(string.Create(CultureInfo.InvariantCulture, $"{_options.KeyPrefix}changes:{{{i}}}")))
                    .ToArray()
                : [RedisChannel.Literal(_options.KeyPrefix + "changes")];
            var subscriber = _redis.GetSubscriber();
            foreach (var channel in channels)
            {
                // Concurrent handling (not ChannelMessageQueue's ordered loop, which adds a queue hop per
                // message): every consumer is order-insensitive, because the cache and the watch buffers keep
                // the highest version of a GUID and probes are counted per channel.
                await subscriber.SubscribeAsync(channel, _onMessage).ConfigureAwait(false);
                _subscribed.Add(channel);
            }

            _channels = channels;
            _probeSeen = new bool[channels.Length];
            RedisGnsLog.Started(_logger, channels.Length, Sharded);
            if (_cache is not null)
            {
                _redis.ConnectionFailed += OnConnectionFailed;
                _redis.ConnectionRestored += OnConnectionRestored;
                await CheckLiveAsync(_stop.Token).ConfigureAwait(false);
                _monitor = MonitorAsync(_stop.Token);
            }
        }
        finally
        {
            _startGate.Release();
        }
    }

    public async ValueTask PublishAsync(RecordChange change, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Deliver(change);
        var channels = _channels;
        if (channels.Length == 0)
        {
            throw new InvalidOperationException("The Redis change feed is not started; call StartAsync (the hosted service does).");
        }

        var channel = channels[(int)((uint)change.Guid.GetHashCode() % (uint)channels.Length)];
        await _redis.GetSubscriber().PublishAsync(channel, ChangeMessage.Encode(_origin, change)).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public IDisposable Subscribe(Action<RecordChange> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ImmutableInterlocked.Update(ref _handlers, static (list, h) => list.Add(h), handler);
        return new Subscription(this, handler);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_cache is not null)
        {
            _redis.ConnectionFailed -= OnConnectionFailed;
            _redis.ConnectionRestored -= OnConnectionRestored;
            await _stop.CancelAsync().ConfigureAwait(false);
            await _monitor.ConfigureAwait(false);
            _cache.GoOffline();
        }

        var subscriber = _redis.GetSubscriber();
        foreach (var channel in _subscribed)
        {
            try
            {
                await subscriber.UnsubscribeAsync(channel, _onMessage).ConfigureAwait(false);
            }
            catch (RedisException e)
            {
                RedisGnsLog.UnsubscribeFailed(_logger, e);
            }
        }

        _startGate.Dispose();
        _stop.Dispose();
        _wake.Dispose();
    }

    private void OnMessage(RedisChannel channel, RedisValue message)
    {
        byte[]? bytes = message;
        RecordChange change;
        try
        {
            if (bytes is null)
            {
                throw new MalformedMessageException("An empty change message.");
            }

            (var origin, var decoded, var probe) = ChangeMessage.Decode(bytes);
            if (origin == _origin)
            {
                if (decoded is null)
                {
                    OnOwnProbe(channel, probe);
                }

                return;
            }

            if (decoded is null)
            {
                // Another process's probe.
                return;
            }

            change = decoded;
        }
        catch (MalformedMessageException e)
        {
            RedisGnsLog.MalformedMessage(_logger, channel.ToString(), e.Message);
            return;
        }

        Deliver(change);
    }

    private void Deliver(RecordChange change)
    {
        // The cache first: a watcher registered after the handlers below ran must not read the older state.
        _cache?.Apply(change.Guid, change.Version, change.Record);
        foreach (var handler in _handlers)
        {
            handler(change);
        }
    }

    /// <summary>Probes every <see cref="RedisGnsOptions.FeedProbeInterval"/>, and at once after a connection comes back.</summary>
    private async Task MonitorAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                // Woken early by a restored connection; otherwise the interval.
                await _wake.WaitAsync(_options.FeedProbeInterval, cancellationToken).ConfigureAwait(false);
                await CheckLiveAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>One probe round: the cache goes live if every probe came back and no connection failed meanwhile, off otherwise.</summary>
    private async Task CheckLiveAsync(CancellationToken cancellationToken)
    {
        var generation = Volatile.Read(ref _generation);
        var (answered, reason) = await ProbeAsync(cancellationToken).ConfigureAwait(false);
        if (answered && generation == Volatile.Read(ref _generation))
        {
            if (!_cache!.IsLive)
            {
                _cache.GoLive();
                RedisGnsLog.CacheLive(_logger);
            }
        }
        else if (_cache!.IsLive)
        {
            _cache.GoOffline();
            RedisGnsLog.FeedUnverified(_logger, answered ? "a connection failed during the probe" : reason);
        }
    }

    /// <summary>Publishes a numbered probe on every channel and waits until all come back.</summary>
    private async Task<(bool Answered, string Reason)> ProbeAsync(CancellationToken cancellationToken)
    {
        var channels = _channels;
        TaskCompletionSource done;
        ulong number;
        lock (_probeGate)
        {
            number = ++_probeNumber;
            Array.Clear(_probeSeen);
            _probeMissing = channels.Length;
            done = _probeDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        var subscriber = _redis.GetSubscriber();
        var payload = ChangeMessage.EncodeProbe(_origin, number);
        try
        {
            await Task.WhenAll(channels.Select(c => subscriber.PublishAsync(c, payload)))
                .WaitAsync(_options.FeedProbeTimeout, _time, cancellationToken).ConfigureAwait(false);
            await done.Task.WaitAsync(_options.FeedProbeTimeout, _time, cancellationToken).ConfigureAwait(false);
            return (true, "");
        }
        catch (TimeoutException)
        {
            return (false, $"a probe did not come back within {_options.FeedProbeTimeout}");
        }
        catch (RedisException e)
        {
            return (false, "a probe could not be published: " + e.Message);
        }
    }

    private void OnOwnProbe(RedisChannel channel, ulong number)
    {
        lock (_probeGate)
        {
            var index = Array.IndexOf(_channels, channel);
            if (number != _probeNumber || index < 0 || _probeSeen[index])
            {
                return;
            }

            _probeSeen[index] = true;
            if (--_probeMissing == 0)
            {
                _probeDone?.TrySetResult();
            }
        }
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e)
    {
        // Whatever was published while the connection is down is lost to this process: drop the cache now,
        // and let a probe round after the reconnect turn it back on.
        Interlocked.Increment(ref _generation);
        if (_cache!.IsLive)
        {
            _cache.GoOffline();
            RedisGnsLog.FeedUnverified(_logger, $"connection to {e.EndPoint} failed ({e.ConnectionType}, {e.FailureType})");
        }
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        if (Volatile.Read(ref _disposed) == 0)
        {
            _wake.Release();
        }
    }

    private sealed class Subscription(RedisRecordChangeFeed feed, Action<RecordChange> handler) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                ImmutableInterlocked.Update(ref feed._handlers, static (list, h) => list.Remove(h), handler);
            }
        }
    }
}
