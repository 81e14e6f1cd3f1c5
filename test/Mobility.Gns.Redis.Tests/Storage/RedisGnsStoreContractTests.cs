using Microsoft.Extensions.Logging;
using Mobility.Gns.Redis.Storage;
using Mobility.Gns.Redis.Tests.Infrastructure;
using Mobility.Gns.Storage;
using Mobility.Gns.Tests.Storage;
using StackExchange.Redis;

namespace Mobility.Gns.Redis.Tests.Storage;

/// <summary>The behaviour every IGnsStore must have, against one real redis-server.</summary>
[Collection(RedisServerCollection.Name)]
public sealed class RedisGnsStoreContractTests(RedisServerFixture redis) : RedisContractTestsBase(redis.Configuration);

/// <summary>The same behaviour against a 3-master Redis Cluster, where records, names and addresses live in different slots.</summary>
[Collection(RedisClusterCollection.Name)]
public sealed class RedisClusterGnsStoreContractTests(RedisClusterFixture cluster) : RedisContractTestsBase(cluster.Configuration);

public abstract class RedisContractTestsBase(string configuration) : GnsStoreContractTests
{
    private readonly CapturingLogger<RedisGnsStore> _log = new();
    private ConnectionMultiplexer? _redis;

    protected override IGnsStore CreateStore()
    {
        _redis = Infrastructure.Redis.ConnectAsync(configuration).GetAwaiter().GetResult();
        return Infrastructure.Redis.OpenAsync(_redis, Infrastructure.Redis.Options(configuration), _log).GetAwaiter().GetResult();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (_redis is not null)
        {
            await _redis.DisposeAsync().AsTask().WaitAsync(Infrastructure.Redis.Timeout);
        }

        Assert.DoesNotContain(_log.Entries, e => e.Level >= LogLevel.Error);
    }
}
