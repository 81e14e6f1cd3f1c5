using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Mobility.Gns.Service;

namespace Mobility.Gns.Redis.FunctionalTests.Storage;

/// <summary>
/// Two GNS processes (each its own connection, store, cache and feed) on one Redis: what one accepts the
/// other serves once the feed delivered it, and a feed that loses contact drops the cache.
/// </summary>
public abstract class RedisRecordCacheFunctionalTestsBase(string configuration) : RedisScenarioTestsBase(configuration)
{
    private sealed record Gns(ConnectionMultiplexer Redis, RedisGnsStore Store, RedisRecordChangeFeed Feed, RedisRecordCache Cache, GnsService Service)
    {
        /// <summary>This process's service accepts version <paramref name="version"/> of <paramref name="key"/>'s record.</summary>
        public async Task PutAsync(HostKey key, ulong version, string? name, string address)
            => Assert.True((await Service.PutAsync(Record(key, version, name, address), false).WithTimeout()).IsSuccess);
    }

    /// <summary><paramref name="from"/> accepts the record; completes once <paramref name="to"/>'s feed has delivered it.</summary>
    private static Task PutDeliveredAsync(Gns from, Gns to, HostKey key, ulong version, string? name, string address)
        => DeliveredAsync(to.Feed, key.Guid, version, () => from.PutAsync(key, version, name, address));

    private RedisGnsOptions Options(int capacity = 1024)
    {
        var options = Infrastructure.Redis.Options(Configuration);
        options.CacheCapacity = capacity;
        options.FeedProbeInterval = TimeSpan.FromMilliseconds(100);
        options.FeedProbeTimeout = TimeSpan.FromSeconds(1);
        return options;
    }

    /// <summary>One GNS process; its cache ages entries on <paramref name="cacheTime"/> (virtual time where a test passes the maximum age).</summary>
    private async Task<Gns> StartAsync(RedisGnsOptions options, TimeProvider? cacheTime = null)
    {
        var redis = await ConnectAsync();
        var cache = new RedisRecordCache(options.CacheCapacity, options.CacheMaxAge, cacheTime ?? TimeProvider.System);
        var store = await RedisGnsStore.OpenAsync(redis, options, NullLogger<RedisGnsStore>.Instance, cache).WithTimeout();
        var feed = Owned(new RedisRecordChangeFeed(redis, options, NullLogger<RedisRecordChangeFeed>.Instance, cache, TimeProvider.System));
        await feed.StartAsync().WithTimeout();
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
            var change = await seen.Reader.ReadAsync().AsTask().WithTimeout();
            if (change.Guid == guid && change.Version == version)
            {
                return;
            }
        }
    }

    [Fact]
    public async Task An_update_accepted_by_one_process_is_served_by_the_other_as_soon_as_the_feed_delivered_it()
    {
        var options = Options();
        var a = await StartAsync(options);
        var b = await StartAsync(options);
        var key = NewKey();
        await a.PutAsync(key, 1, "alpha", "192.0.2.1");

        // B reads it once from Redis, then from its cache.
        Assert.Equal(1UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);
        Assert.Equal(1UL, (await b.Store.GetByNameAsync("alpha").WithTimeout())!.Version);
        Assert.True(b.Cache.TryGet(key.Guid, out var cached));
        Assert.Equal(1UL, cached.Version);

        // A moves the GUID to a new version and a new name: once B's feed delivered it, B serves it.
        await PutDeliveredAsync(a, b, key, 2, "beta", "198.51.100.2");
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
            await a.PutAsync(key, 5, null, "192.0.2.9");
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
        // A probe answered late on a loaded machine would drop B's cache, and with it the stale entry this test needs.
        options.FeedProbeTimeout = TestTimeout.Default;
        var a = await StartAsync(options);
        var clock = new FakeTimeProvider();
        var b = await StartAsync(options, clock);
        var key = NewKey();
        await PutDeliveredAsync(a, b, key, 1, null, "192.0.2.1");
        Assert.Equal(1UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);

        // A's store commits version 2 and A dies before publishing it (the store alone never publishes):
        // B serves its cached version 1 until the entry is older than the maximum age, then reads Redis.
        Assert.Equal(Mobility.Gns.Storage.StoreStatus.Stored, (await a.Store.PutAsync(Record(key, 2, null, "192.0.2.2"), false).WithTimeout()).Status);
        clock.Advance(options.CacheMaxAge - TimeSpan.FromSeconds(1));
        Assert.Equal(1UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);

        clock.Advance(TimeSpan.FromSeconds(2));
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
        await PutDeliveredAsync(a, b, key, 1, null, "192.0.2.1");
        Assert.NotNull(await b.Store.GetAsync(key.Guid).WithTimeout());
        Assert.True(b.Cache.Count > 0);

        await using var admin = await Infrastructure.Redis.ConnectAsync(Configuration);
        foreach (var server in admin.GetServers().Where(s => !s.IsReplica))
        {
            await server.ExecuteAsync("CLIENT", "KILL", "TYPE", "pubsub").WithTimeout();
        }

        await TestTimeout.Eventually(() => b.Cache.Invalidations >= 1, "B's cache was dropped");
        await TestTimeout.Eventually(() => b.Cache.IsLive, "B's feed was verified again after the reconnect");

        await PutDeliveredAsync(a, b, key, 2, null, "192.0.2.2");
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
        await PutDeliveredAsync(a, b, key, 1, null, "192.0.2.1");
        Assert.Equal(1UL, (await b.Store.GetAsync(key.Guid).WithTimeout())!.Version);
        Assert.True(b.Cache.TryGet(key.Guid, out _));

        // B stops hearing the channels behind its feed's back: no connection fails, no error is raised.
        var subscriber = b.Redis.GetSubscriber();
        for (var i = 0; i < (b.Feed.Sharded ? options.ChangeChannels : 1); i++)
        {
            var channel = b.Feed.Sharded
                ? RedisChannel.Sharded(string.Create(CultureInfo.InvariantCulture, $"{options.KeyPrefix}changes:{{{i}}}"))
                : RedisChannel.Literal(options.KeyPrefix + "changes");
            await subscriber.UnsubscribeAsync(channel).WithTimeout();
        }

        await TestTimeout.Eventually(() => !b.Cache.IsLive, "B's probe went unanswered");
        await a.PutAsync(key, 2, null, "192.0.2.2");

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
