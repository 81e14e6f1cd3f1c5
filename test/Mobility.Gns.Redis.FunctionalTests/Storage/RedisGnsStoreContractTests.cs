namespace Mobility.Gns.Redis.FunctionalTests.Storage;

/// <summary>The behaviour every IGnsStore must have, against one real redis-server.</summary>
[Collection(RedisServerCollection.Name)]
public sealed class RedisGnsStoreContractTests(RedisServerFixture redis) : RedisContractTestsBase(redis.Configuration);

/// <summary>The same behaviour against a 3-master Redis Cluster, where records, names and addresses live in different slots.</summary>
[Collection(RedisClusterCollection.Name)]
public sealed class RedisClusterGnsStoreContractTests(RedisClusterFixture cluster) : RedisContractTestsBase(cluster.Configuration);

/// <summary>The same behaviour with the in-process read cache on (kept live by a started change feed).</summary>
[Collection(RedisServerCollection.Name)]
public sealed class CachedRedisGnsStoreContractTests(RedisServerFixture redis) : RedisContractTestsBase(redis.Configuration, cached: true);

/// <summary>The cached store against the cluster.</summary>
[Collection(RedisClusterCollection.Name)]
public sealed class CachedRedisClusterGnsStoreContractTests(RedisClusterFixture cluster) : RedisContractTestsBase(cluster.Configuration, cached: true);

public abstract class RedisContractTestsBase(string configuration, bool cached = false) : GnsStoreContractTests
{
    private readonly RecordingLogger<RedisGnsStore> _log = new();
    private ConnectionMultiplexer? _redis;
    private RedisRecordChangeFeed? _feed;

    protected override IGnsStore CreateStore()
    {
        _redis = Infrastructure.Redis.ConnectAsync(configuration).GetAwaiter().GetResult();
        var options = Infrastructure.Redis.Options(configuration);
        if (!cached)
        {
            return Infrastructure.Redis.OpenAsync(_redis, options, _log).GetAwaiter().GetResult();
        }

        var cache = new RedisRecordCache(options.CacheCapacity, options.CacheMaxAge, TimeProvider.System);
        var store = RedisGnsStore.OpenAsync(_redis, options, _log, cache).WithTimeout().GetAwaiter().GetResult();
        _feed = new RedisRecordChangeFeed(_redis, options, NullLogger<RedisRecordChangeFeed>.Instance, cache, TimeProvider.System);
        _feed.StartAsync().WithTimeout().GetAwaiter().GetResult();
        Assert.True(cache.IsLive);
        return store;
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (_feed is not null)
        {
            await _feed.DisposeAsync().AsTask().WithTimeout();
        }

        if (_redis is not null)
        {
            await _redis.DisposeAsync().AsTask().WithTimeout();
        }

        _log.AssertNoErrors();
    }
}
