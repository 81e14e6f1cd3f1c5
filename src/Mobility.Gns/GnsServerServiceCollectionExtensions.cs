using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Gns.Rpc;
using Mobility.Gns.Service;
using Mobility.Gns.Storage;
using Mobility.Gns.Udp;
using Mobility.Gns.Watch;
using Mobility.Net.RateLimiting;

namespace Mobility.Gns;

/// <summary>Registers the GNS server (store, service, watch hub, UDP endpoint, gRPC + HTTP/JSON service) in any host.</summary>
public static class GnsServerServiceCollectionExtensions
{
    /// <summary>
    /// Largest gRPC/HTTP request body. 64 KB holds a watch of the most GUIDs allowed with room to spare
    /// (records are at most ~530 bytes); anything bigger is refused before it is parsed.
    /// </summary>
    public const int MaxRequestMessageSize = 64 * 1024;

    /// <summary>Configuration section of the SQLite store's tuning options (<see cref="SqliteGnsStoreOptions"/>), under <c>Gns</c>.</summary>
    public const string SqliteSectionName = "Sqlite";

    /// <summary>
    /// Adds the GNS server bound to the <c>Gns</c> section of <paramref name="configuration"/> (the
    /// root configuration), and the SQLite tuning options from <c>Gns:Sqlite</c>. Options are
    /// validated when the host starts. The UDP endpoint runs as a hosted service; call
    /// <see cref="MapGnsService"/> to serve gRPC and HTTP/JSON.
    /// </summary>
    public static IServiceCollection AddGnsServer(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(GnsServerOptions.SectionName);
        services.AddOptions<GnsServerOptions>().Bind(section);
        services.AddOptions<SqliteGnsStoreOptions>().Bind(section.GetSection(SqliteSectionName));
        return services.AddGnsServerCore();
    }

    /// <summary>Adds the GNS server configured in code.</summary>
    public static IServiceCollection AddGnsServer(this IServiceCollection services, Action<GnsServerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<GnsServerOptions>().Configure(configure);
        return services.AddGnsServerCore();
    }

    /// <summary>Serves the GNS gRPC service, and its HTTP/JSON routes (for example <c>GET /v1/records/{guid}</c>).</summary>
    public static GrpcServiceEndpointConventionBuilder MapGnsService(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        return endpoints.MapGrpcService<GnsGrpcService>();
    }

    private static IServiceCollection AddGnsServerCore(this IServiceCollection services)
    {
        services.AddOptions<GnsServerOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<GnsServerOptions>, GnsServerOptionsValidator>());
        services.AddOptions<SqliteGnsStoreOptions>()
            .PostConfigure<IOptions<GnsServerOptions>>((sqlite, gns) => sqlite.DataDirectory = Path.GetFullPath(gns.Value.DataDirectory));

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IGnsStore>(CreateStore);
        services.TryAddSingleton<IRecordChangeFeed, LocalRecordChangeFeed>();
        services.TryAddSingleton<GnsService>();
        services.TryAddSingleton<WatchHub>();
        services.TryAddSingleton(sp => new SourceRateLimiter(
            sp.GetRequiredService<IOptions<GnsServerOptions>>().Value.ToRateLimits(), sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton<GnsRequestProcessor>();
        services.TryAddSingleton<GnsUdpServer>();
        services.AddHostedService(sp => sp.GetRequiredService<GnsUdpServer>());
        services.TryAddSingleton<Streams.GnsStreamConnectionHandler>();

        // The cap applies to the GNS service only: a host that embeds the GNS keeps its own services' limits.
        services.AddGrpc().AddJsonTranscoding().AddServiceOptions<GnsGrpcService>(o => o.MaxReceiveMessageSize = MaxRequestMessageSize);
        return services;
    }

    private static IGnsStore CreateStore(IServiceProvider services)
    {
        var options = services.GetRequiredService<IOptions<GnsServerOptions>>().Value;
        if (options.Store == GnsServerOptions.MemoryStore)
        {
            return new InMemoryGnsStore(options.Claims, services.GetRequiredService<TimeProvider>());
        }

        if (options.Store == GnsServerOptions.RedisStore)
        {
            // AddRedisGnsStore replaces this factory; reaching it means the host never registered Redis.
            throw new InvalidOperationException("Gns:Store is 'redis' but no Redis store is registered (call AddRedisGnsStore).");
        }

        var sqlite = services.GetRequiredService<IOptions<SqliteGnsStoreOptions>>().Value;
        return new SqliteGnsStore(sqlite, services.GetRequiredService<ILogger<SqliteGnsStore>>(), options.Claims, services.GetRequiredService<TimeProvider>());
    }
}
