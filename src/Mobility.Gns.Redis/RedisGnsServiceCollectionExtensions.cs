using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Gns;
using Mobility.Gns.Redis.Storage;
using Mobility.Gns.Redis.Watch;
using Mobility.Gns.Storage;
using Mobility.Gns.Watch;
using StackExchange.Redis;

namespace Mobility.Gns.Redis;

/// <summary>Puts the GNS records and the change feed in Redis (single server or cluster).</summary>
public static class RedisGnsServiceCollectionExtensions
{
    /// <summary>
    /// Uses Redis at <paramref name="connectionString"/> (StackExchange.Redis syntax, e.g.
    /// <c>127.0.0.1:6379</c> or <c>node1:7000,node2:7001</c>) for the store and the change feed. Other
    /// options come from <c>Gns:Redis</c> when an <see cref="IConfiguration"/> is registered.
    /// </summary>
    public static IServiceCollection AddRedisGnsStore(this IServiceCollection services, string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return services.AddRedisGnsStore(o => o.Configuration = connectionString);
    }

    /// <summary>
    /// Uses Redis for the store and the change feed, configured from <c>Gns:Redis</c> of the registered
    /// <see cref="IConfiguration"/> (if any) and then by <paramref name="configure"/>. Replaces any
    /// <see cref="IGnsStore"/> and <see cref="IRecordChangeFeed"/> registered before or after (AddGnsServer
    /// registers its own with TryAdd, so the order of the calls does not matter). Options are validated
    /// when the host starts; the store opens (connects, probes the servers) when first resolved.
    /// </summary>
    public static IServiceCollection AddRedisGnsStore(this IServiceCollection services, Action<RedisGnsOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<RedisGnsOptions>()
            .Configure<IServiceProvider>((options, sp) =>
            {
                if (sp.GetService<IConfiguration>() is { } configuration)
                {
                    configuration.GetSection(RedisGnsOptions.SectionName).Bind(options);
                }
            })
            .Configure(configure)
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RedisGnsOptions>, RedisGnsOptionsValidator>());

        services.TryAddSingleton<RedisGnsConnection>();
        // The store reads through the cache; the feed keeps it current and turns it on only while it is live.
        services.TryAddSingleton(sp => new RedisGnsCache(sp.GetRequiredService<IOptions<RedisGnsOptions>>().Value,
            sp.GetService<TimeProvider>() ?? TimeProvider.System));
        services.TryAddSingleton(sp => RedisGnsStore.OpenAsync(
                sp.GetRequiredService<RedisGnsConnection>().Multiplexer,
                sp.GetRequiredService<IOptions<RedisGnsOptions>>().Value,
                sp.GetRequiredService<ILogger<RedisGnsStore>>(),
                sp.GetRequiredService<RedisGnsCache>().Cache,
                CancellationToken.None,
                sp.GetRequiredService<IOptions<GnsServerOptions>>().Value.Claims,
                sp.GetService<TimeProvider>() ?? TimeProvider.System)
            .GetAwaiter().GetResult());
        services.TryAddSingleton(sp => new RedisRecordChangeFeed(
            sp.GetRequiredService<RedisGnsConnection>().Multiplexer,
            sp.GetRequiredService<IOptions<RedisGnsOptions>>().Value,
            sp.GetRequiredService<ILogger<RedisRecordChangeFeed>>(),
            sp.GetRequiredService<RedisGnsCache>().Cache,
            sp.GetService<TimeProvider>() ?? TimeProvider.System));

        services.RemoveAll<IGnsStore>();
        services.AddSingleton<IGnsStore>(sp => sp.GetRequiredService<RedisGnsStore>());
        services.RemoveAll<IRecordChangeFeed>();
        services.AddSingleton<IRecordChangeFeed>(sp => sp.GetRequiredService<RedisRecordChangeFeed>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RedisChangeFeedService>());
        return services;
    }
}

/// <summary>The process's Redis read cache, shared by the store and the change feed; null when <see cref="RedisGnsOptions.CacheCapacity"/> is 0.</summary>
internal sealed class RedisGnsCache(RedisGnsOptions options, TimeProvider time)
{
    public RedisRecordCache? Cache { get; } = options.CacheCapacity > 0 ? new RedisRecordCache(options.CacheCapacity, options.CacheMaxAge, time) : null;
}

/// <summary>The one Redis connection (multiplexer) of the process, shared by the store and the feed; connects when first resolved.</summary>
public sealed class RedisGnsConnection : IAsyncDisposable
{
    /// <summary>How often the multiplexer re-reads the topology when the configuration does not say (a failover is followed within it).</summary>
    public const int DefaultConfigCheckSeconds = 5;

    private readonly Lazy<ConnectionMultiplexer> _multiplexer;

    public RedisGnsConnection(IOptions<RedisGnsOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var configuration = options.Value.Configuration;
        _multiplexer = new Lazy<ConnectionMultiplexer>(() =>
        {
            var parsed = ConfigurationOptions.Parse(configuration);

            // Fail at start when Redis is not there, instead of serving with a store that cannot write.
            parsed.AbortOnConnectFail = true;

            // After a failover (a replica promoted, the old primary gone) the multiplexer keeps sending to
            // the dead primary until it re-reads the topology: every ConfigCheckSeconds, 60 s by default,
            // during which every update fails. Re-check every 5 s unless the configuration says otherwise
            // (docs/redis.md, "Failover"; measured with bench/fault-soak.sh --store redis).
            if (!configuration.Contains("configCheckSeconds", StringComparison.OrdinalIgnoreCase))
            {
                parsed.ConfigCheckSeconds = DefaultConfigCheckSeconds;
            }

            // The store reads (never writes) CONFIG appendonly/appendfsync when it opens, to report and
            // optionally enforce durability; StackExchange.Redis sends CONFIG only with allowAdmin.
            parsed.AllowAdmin = true;
            return ConnectionMultiplexer.Connect(parsed);
        });
    }

    public IConnectionMultiplexer Multiplexer => _multiplexer.Value;

    public async ValueTask DisposeAsync()
    {
        if (_multiplexer.IsValueCreated)
        {
            await _multiplexer.Value.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>Subscribes the Redis change feed when the host starts (the store itself opens when resolved).</summary>
internal sealed class RedisChangeFeedService(RedisRecordChangeFeed feed, IGnsStore store) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Resolving the store above opened it: a Redis that is missing or misconfigured fails the start.
        _ = store;
        await feed.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await feed.DisposeAsync().ConfigureAwait(false);
}
