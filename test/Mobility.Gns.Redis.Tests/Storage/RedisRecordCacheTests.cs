using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mobility.Gns.Redis.Storage;
using Mobility.Gns.Redis.Tests.Infrastructure;
using Mobility.Gns.Redis.Watch;
using Mobility.Gns.Service;
using Mobility.Gns.Watch;
using Mobility.Protocol.Identity;
using StackExchange.Redis;
using static Mobility.Gns.Tests.Storage.StoreTestSupport;

namespace Mobility.Gns.Redis.Tests.Storage;

/// <summary>The read cache alone: bounds, races with changes, going offline (no sockets).</summary>
public sealed class RedisRecordCacheTests : IDisposable
{
    private readonly List<HostKey> _keys = [];

    public void Dispose()
    {
        foreach (var key in _keys)
        {
            key.Dispose();
        }
    }

    private HostKey NewKey()
    {
        var key = HostKey.Generate();
        _keys.Add(key);
        return key;
    }

    private static RedisRecordCache LiveCache(int capacity)
    {
        var cache = new RedisRecordCache(capacity, TimeSpan.FromMinutes(1), TimeProvider.System);
        cache.GoLive();
        return cache;
    }

    [Fact]
    public void The_cache_never_holds_more_than_its_capacity()
    {
        var cache = LiveCache(4);
        for (var i = 0; i < 20; i++)
        {
            var key = NewKey();
            cache.TryFill(key.Guid, true, 1, Record(key, 1, "n" + i.ToString(CultureInfo.InvariantCulture), "192.0.2.1"), cache.Stamp(key.Guid),
                "n" + i.ToString(CultureInfo.InvariantCulture));
            Assert.True(cache.Count <= 4);
            Assert.True(cache.NameCount <= 4);
        }
    }

    [Fact]
    public void A_fill_that_raced_a_change_is_refused_even_when_the_GUID_was_not_cached()
    {
        var cache = LiveCache(16);
        var key = NewKey();
        var stamp = cache.Stamp(key.Guid);
        // The change arrives while the reader is still waiting for Redis; the GUID is not cached, so it is not added.
        cache.Apply(key.Guid, 2, Record(key, 2, null, "192.0.2.2"));
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), stamp);

        Assert.False(cache.TryGet(key.Guid, out _));
    }

    [Fact]
    public void A_change_replaces_an_older_cached_state_and_an_older_change_does_not()
    {
        var cache = LiveCache(16);
        var key = NewKey();
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), cache.Stamp(key.Guid));
        cache.Apply(key.Guid, 3, null);
        cache.Apply(key.Guid, 2, Record(key, 2, null, "192.0.2.2"));

        Assert.True(cache.TryGet(key.Guid, out var state));
        Assert.Equal(3UL, state.Version);
        Assert.Null(state.Record);
    }

    [Fact]
    public void Going_offline_drops_everything_and_refuses_fills_stamped_before_or_while_offline()
    {
        var cache = LiveCache(16);
        var key = NewKey();
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), cache.Stamp(key.Guid));
        var before = cache.Stamp(key.Guid);

        cache.GoOffline();
        Assert.Equal(0, cache.Count);
        Assert.False(cache.TryGet(key.Guid, out _));
        var during = cache.Stamp(key.Guid);
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), during);
        cache.GoLive();
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), before);
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), during);

        Assert.Equal(0, cache.Count);
        Assert.Equal(1, cache.Invalidations);
    }

    [Fact]
    public void An_entry_older_than_the_maximum_age_is_not_served()
    {
        var time = new ManualTime();
        var cache = new RedisRecordCache(16, TimeSpan.FromSeconds(60), time);
        cache.GoLive();
        var key = NewKey();
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), cache.Stamp(key.Guid));
        Assert.True(cache.TryGet(key.Guid, out _));

        time.Advance(TimeSpan.FromSeconds(61));
        Assert.False(cache.TryGet(key.Guid, out _));
    }

    /// <summary>A clock that moves only when told (timestamps in ticks of 1 µs).</summary>
    private sealed class ManualTime : TimeProvider
    {
        private long _now = 1;

        public override long TimestampFrequency => 1_000_000;

        public override long GetTimestamp() => _now;

        public void Advance(TimeSpan by) => _now += (long)(by.TotalMilliseconds * 1000);
    }
}

/// <summary>
/// Two GNS processes (each its own connection, store, cache and feed) on one Redis: what one accepts the
/// other serves once the feed delivered it, and a feed that loses contact drops the cache.
/// </summary>
public abstract class RedisRecordCacheFunctionalTestsBase(string configuration) : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _disposables = [];
    private readonly List<HostKey> _keys = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var disposable in Enumerable.Reverse(_disposables))
        {
            await disposable.DisposeAsync().AsTask().WaitAsync(TestTimeout);
        }

        foreach (var key in _keys)
        {
            key.Dispose();
        }
    }

    private HostKey NewKey()
    {
        var key = HostKey.Generate();
        _keys.Add(key);
        return key;
    }

    private sealed record Gns(ConnectionMultiplexer Redis, RedisGnsStore Store, RedisRecordChangeFeed Feed, RedisRecordCache Cache, GnsService Service);

    private RedisGnsOptions Options(int capacity = 1024)
    {
        var options = Infrastructure.Redis.Options(configuration);
        options.CacheCapacity = capacity;
        options.FeedProbeInterval = TimeSpan.FromMilliseconds(100);
        options.FeedProbeTimeout = TimeSpan.FromSeconds(1);
        return options;
    }

    private async Task<Gns> StartAsync(RedisGnsOptions options)
    {
        var redis = await Infrastructure.Redis.ConnectAsync(configuration);
        _disposables.Add(redis);
        var cache = new RedisRecordCache(options.CacheCapacity, options.CacheMaxAge, TimeProvider.System);
        var store = await RedisGnsStore.OpenAsync(redis, options, NullLogger<RedisGnsStore>.Instance, cache).WaitAsync(TestTimeout);
        var feed = new RedisRecordChangeFeed(redis, options, NullLogger<RedisRecordChangeFeed>.Instance, cache, TimeProvider.System);
        _disposables.Add(feed);
        await feed.StartAsync().WaitAsync(TestTimeout);
        Assert.True(cache.IsLive);
        var service = new GnsService(store, feed, Microsoft.Extensions.Options.Options.Create(new GnsServerOptions()), TimeProvider.System,
            NullLogger<GnsService>.Instance);
        return new Gns(redis, store, feed, cache, service);
    }

    /// <summary>Completes when <paramref name="feed"/> has delivered (guid, version) to its subscribers.</summary>
    private static async Task DeliveredAsync(RedisRecordChangeFeed feed, HostGuid guid, ulong version, Func<Task> act)
    {
        var seen = Channel.CreateUnbounded<RecordChange>();
        using var subscription = feed.Subscribe(c => seen.Writer.TryWrite(c));
        await act();
        while (true)
        {
            var change = await seen.Reader.ReadAsync().AsTask().WaitAsync(TestTimeout);
            if (change.Guid == guid && change.Version == version)
            {
                return;
            }
        }
    }

    private static async Task EventuallyAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Timed out waiting until " + what);
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task An_update_accepted_by_one_process_is_served_by_the_other_as_soon_as_the_feed_delivered_it()
    {
        var options = Options();
        var a = await StartAsync(options);
        var b = await StartAsync(options);
        var key = NewKey();
        Assert.True((await a.Service.PutAsync(Record(key, 1, "alpha", "192.0.2.1"), false).WithTimeout()).IsSuccess);

        // B reads it once from Redis, then from its cache.
        Assert.Equal(1UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);
        Assert.Equal(1UL, (await b.Store.GetByNameAsync("alpha").WithTimeout())!.Version);
        Assert.True(b.Cache.TryGet(key.Guid, out var cached));
        Assert.Equal(1UL, cached.Version);

        // A moves the GUID to a new version and a new name: once B's feed delivered it, B serves it.
        await DeliveredAsync(b.Feed, key.Guid, 2, async () =>
            Assert.True((await a.Service.PutAsync(Record(key, 2, "beta", "198.51.100.2"), false).WithTimeout()).IsSuccess));
        Assert.Equal(2UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);
        Assert.Equal(2UL, await b.Store.GetVersionAsync(key.Guid).WithTimeout());
        Assert.Null(await b.Store.GetByNameAsync("alpha").WithTimeout());
        Assert.Equal(2UL, (await b.Store.GetByNameAsync("beta").WithTimeout())!.Version);

        // A removal too.
        await DeliveredAsync(b.Feed, key.Guid, 3, async () =>
            Assert.True((await a.Service.RemoveAsync(Mobility.Protocol.Records.GnsRemoval.Create(key, 3)).WithTimeout()).IsSuccess));
        Assert.Null(await b.Store.GetAsync(key.Guid).WithTimeout());
        Assert.Equal(3UL, await b.Store.GetVersionAsync(key.Guid).WithTimeout());
        Assert.Null(await b.Store.GetByNameAsync("beta").WithTimeout());
    }

    [Fact]
    public async Task The_cache_stays_within_its_capacity_and_every_lookup_is_right()
    {
        var options = Options(capacity: 8);
        var a = await StartAsync(options);
        var b = await StartAsync(options);
        var keys = Enumerable.Range(0, 40).Select(_ => NewKey()).ToArray();
        foreach (var key in keys)
        {
            Assert.True((await a.Service.PutAsync(Record(key, 5, null, "192.0.2.9"), false).WithTimeout()).IsSuccess);
        }

        for (var round = 0; round < 3; round++)
        {
            foreach (var key in keys)
            {
                Assert.Equal(5UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);
                Assert.True(b.Cache.Count <= 8);
            }
        }
    }

    [Fact]
    public async Task A_change_committed_but_never_published_is_served_once_the_entry_is_older_than_the_maximum_age()
    {
        var options = Options();
        options.CacheMaxAge = TimeSpan.FromSeconds(2);
        var a = await StartAsync(options);
        var b = await StartAsync(options);
        var key = NewKey();
        await DeliveredAsync(b.Feed, key.Guid, 1, async () =>
            Assert.True((await a.Service.PutAsync(Record(key, 1, null, "192.0.2.1"), false).WithTimeout()).IsSuccess));
        var filled = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(1UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);

        // A's store commits version 2 and A dies before publishing it (the store alone never publishes):
        // B serves its cached version 1 until the entry is older than the maximum age, then reads Redis.
        Assert.Equal(Mobility.Gns.Storage.StoreStatus.Stored, (await a.Store.PutAsync(Record(key, 2, null, "192.0.2.2"), false).WithTimeout()).Status);
        var stale = (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version;
        if (filled.Elapsed < options.CacheMaxAge)
        {
            Assert.Equal(1UL, stale);
        }

        await Task.Delay(options.CacheMaxAge + TimeSpan.FromMilliseconds(200));
        Assert.Equal(2UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);
    }

    [Fact]
    public async Task A_killed_subscription_drops_the_cache_and_the_feed_turns_it_back_on_once_verified()
    {
        var options = Options();
        var a = await StartAsync(options);
        var b = await StartAsync(options);
        var key = NewKey();
        // Delivered first, so that B's read below cannot race the change (a raced fill is refused: a harmless miss).
        await DeliveredAsync(b.Feed, key.Guid, 1, async () =>
            Assert.True((await a.Service.PutAsync(Record(key, 1, null, "192.0.2.1"), false).WithTimeout()).IsSuccess));
        Assert.NotNull(await b.Store.GetAsync(key.Guid).WithTimeout());
        Assert.True(b.Cache.Count > 0);

        await using var admin = await Infrastructure.Redis.ConnectAsync(configuration);
        foreach (var server in admin.GetServers().Where(s => !s.IsReplica))
        {
            await server.ExecuteAsync("CLIENT", "KILL", "TYPE", "pubsub").WaitAsync(TestTimeout);
        }

        await EventuallyAsync(() => b.Cache.Invalidations >= 1, "B's cache was dropped");
        await EventuallyAsync(() => b.Cache.IsLive, "B's feed was verified again after the reconnect");

        await DeliveredAsync(b.Feed, key.Guid, 2, async () =>
            Assert.True((await a.Service.PutAsync(Record(key, 2, null, "192.0.2.2"), false).WithTimeout()).IsSuccess));
        Assert.Equal(2UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);
    }

    [Fact]
    public async Task A_subscription_lost_without_an_error_is_noticed_by_the_probe_and_nothing_stale_is_served()
    {
        var options = Options();
        var a = await StartAsync(options);
        var b = await StartAsync(options);
        var key = NewKey();
        // Delivered first, so that B's read below cannot race the change (a raced fill is refused: a harmless miss).
        await DeliveredAsync(b.Feed, key.Guid, 1, async () =>
            Assert.True((await a.Service.PutAsync(Record(key, 1, null, "192.0.2.1"), false).WithTimeout()).IsSuccess));
        Assert.Equal(1UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);
        Assert.True(b.Cache.TryGet(key.Guid, out _));

        // B stops hearing the channels behind its feed's back: no connection fails, no error is raised.
        var subscriber = b.Redis.GetSubscriber();
        for (var i = 0; i < (b.Feed.Sharded ? options.ChangeChannels : 1); i++)
        {
            var channel = b.Feed.Sharded
                ? RedisChannel.Sharded(string.Create(CultureInfo.InvariantCulture, $"{options.KeyPrefix}changes:{{{i}}}"))
                : RedisChannel.Literal(options.KeyPrefix + "changes");
            await subscriber.UnsubscribeAsync(channel).WaitAsync(TestTimeout);
        }

        await EventuallyAsync(() => !b.Cache.IsLive, "B's probe went unanswered");
        Assert.True((await a.Service.PutAsync(Record(key, 2, null, "192.0.2.2"), false).WithTimeout()).IsSuccess);

        // B never heard of version 2, and still answers it: with the cache off, reads go to Redis.
        Assert.Equal(2UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);
        await Task.Delay(options.FeedProbeInterval * 5);
        Assert.False(b.Cache.IsLive);
        Assert.Equal(2UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);
    }
}

[Collection(RedisServerCollection.Name)]
public sealed class RedisRecordCacheFunctionalTests(RedisServerFixture redis) : RedisRecordCacheFunctionalTestsBase(redis.Configuration);

[Collection(RedisClusterCollection.Name)]
public sealed class ClusterRedisRecordCacheFunctionalTests(RedisClusterFixture cluster) : RedisRecordCacheFunctionalTestsBase(cluster.Configuration);
