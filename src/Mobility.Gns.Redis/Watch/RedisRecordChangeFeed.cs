using System.Collections.Immutable;
using System.Globalization;
using Microsoft.Extensions.Logging;
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
/// </summary>
public sealed partial class RedisRecordChangeFeed : IRecordChangeFeed, IAsyncDisposable
{
    private readonly IConnectionMultiplexer _redis;
    private readonly RedisGnsOptions _options;
    private readonly ILogger<RedisRecordChangeFeed> _logger;
    private readonly Guid _origin = Guid.NewGuid();
    private readonly List<ChannelMessageQueue> _queues = [];
    private readonly SemaphoreSlim _startGate = new(1, 1);
    private ImmutableArray<Action<RecordChange>> _handlers = [];
    private RedisChannel[] _channels = [];
    private int _disposed;

    public RedisRecordChangeFeed(IConnectionMultiplexer redis, RedisGnsOptions options, ILogger<RedisRecordChangeFeed> logger)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        _redis = redis;
        _options = options;
        _logger = logger;
    }

    /// <summary>True when the feed uses sharded channels (cluster with sharded pub/sub).</summary>
    public bool Sharded { get; private set; }

    /// <summary>Subscribes to the change channels; idempotent. Changes are published only once this has run.</summary>
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
                var queue = await subscriber.SubscribeAsync(channel).ConfigureAwait(false);
                queue.OnMessage(OnMessage);
                _queues.Add(queue);
            }

            _channels = channels;
            Log.Started(_logger, channels.Length, Sharded);
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

        foreach (var queue in _queues)
        {
            try
            {
                await queue.UnsubscribeAsync().ConfigureAwait(false);
            }
            catch (RedisException e)
            {
                Log.UnsubscribeFailed(_logger, e);
            }
        }

        _startGate.Dispose();
    }

    private void OnMessage(ChannelMessage message)
    {
        byte[]? bytes = message.Message;
        RecordChange change;
        try
        {
            if (bytes is null)
            {
                throw new MalformedMessageException("An empty change message.");
            }

            (var origin, change) = ChangeMessage.Decode(bytes);
            if (origin == _origin)
            {
                return;
            }
        }
        catch (MalformedMessageException e)
        {
            Log.MalformedMessage(_logger, message.Channel.ToString(), e.Message);
            return;
        }

        Deliver(change);
    }

    private void Deliver(RecordChange change)
    {
        foreach (var handler in _handlers)
        {
            handler(change);
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

    /// <summary>Log events of <see cref="RedisRecordChangeFeed"/> (ids 1650-1669).</summary>
    private static partial class Log
    {
        [LoggerMessage(1650, LogLevel.Information, "Redis change feed subscribed to {Count} channel(s), sharded: {Sharded}")]
        public static partial void Started(ILogger logger, int count, bool sharded);

        [LoggerMessage(1651, LogLevel.Warning, "Dropped a malformed change message on {Channel}: {Reason}")]
        public static partial void MalformedMessage(ILogger logger, string channel, string reason);

        [LoggerMessage(1652, LogLevel.Debug, "Unsubscribing from a change channel failed")]
        public static partial void UnsubscribeFailed(ILogger logger, Exception exception);
    }
}
