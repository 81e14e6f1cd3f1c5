using Mobility.Gns.Claims;

namespace Mobility.Gns.Redis.FunctionalTests.Storage;

/// <summary>The address-claim rules against one real redis-server.</summary>
[Collection(RedisServerCollection.Name)]
public sealed class RedisAddressClaimTests(RedisServerFixture redis) : RedisAddressClaimTestsBase(redis.Configuration);

/// <summary>The address-claim rules against a 3-master Redis Cluster (claims and sources live in different slots).</summary>
[Collection(RedisClusterCollection.Name)]
public sealed class RedisClusterAddressClaimTests(RedisClusterFixture cluster) : RedisAddressClaimTestsBase(cluster.Configuration);

public abstract class RedisAddressClaimTestsBase(string configuration) : AddressClaimContractTests
{
    private readonly List<ConnectionMultiplexer> _connections = [];

    protected override int? ClaimCount => null;

    protected override IGnsStore CreateStore(ClaimLimits limits, TimeProvider time)
    {
        var connection = Infrastructure.Redis.ConnectAsync(configuration).GetAwaiter().GetResult();
        _connections.Add(connection);
        return RedisGnsStore.OpenAsync(connection, Infrastructure.Redis.Options(configuration), NullLogger<RedisGnsStore>.Instance, null,
                CancellationToken.None, limits, time)
            .WaitAsync(TestTimeout.Default).GetAwaiter().GetResult();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        foreach (var connection in _connections)
        {
            await connection.DisposeAsync();
        }
    }
}
