namespace Mobility.Gns.Redis.FunctionalTests.Infrastructure;

/// <summary>One redis-server for the tests of a collection; each test isolates itself with its own key prefix.</summary>
public sealed class RedisServerFixture : IDisposable
{
    private readonly RedisProcess _server = new("--appendonly", "yes", "--appendfsync", "always");

    public string Configuration => _server.Configuration;

    public void Dispose() => _server.Dispose();
}

/// <summary>A 3-master cluster (scripts/redis-cluster) for the tests of a collection.</summary>
public sealed class RedisClusterFixture : IDisposable
{
    private readonly RedisClusterProcess _cluster = new();

    public string Configuration => _cluster.Configuration;

    public void Dispose() => _cluster.Dispose();
}

[CollectionDefinition(Name)]
public sealed class RedisServerCollection : ICollectionFixture<RedisServerFixture>
{
    public const string Name = "redis-server";
}

[CollectionDefinition(Name)]
public sealed class RedisClusterCollection : ICollectionFixture<RedisClusterFixture>
{
    public const string Name = "redis-cluster";
}

internal static class Redis
{
    public static async Task<ConnectionMultiplexer> ConnectAsync(string configuration)
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.AbortOnConnectFail = true;
        options.AllowAdmin = true;
        return await ConnectionMultiplexer.ConnectAsync(options).WithTimeout();
    }

    public static RedisGnsOptions Options(string configuration, string? prefix = null) => new()
    {
        Configuration = configuration,
        KeyPrefix = prefix ?? "t" + Guid.NewGuid().ToString("N")[..12] + ":",
    };

    public static Task<RedisGnsStore> OpenAsync(IConnectionMultiplexer redis, RedisGnsOptions options, ILogger<RedisGnsStore>? logger = null)
        => RedisGnsStore.OpenAsync(redis, options, logger ?? NullLogger<RedisGnsStore>.Instance).WithTimeout();
}
