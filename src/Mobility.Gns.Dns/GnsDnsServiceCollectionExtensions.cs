using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Mobility.Gns.Dns.Server;

namespace Mobility.Gns.Dns;

/// <summary>Registers the DNS front end of the GNS (it reads the <see cref="Storage.IGnsStore"/> registered by the GNS server).</summary>
public static class GnsDnsServiceCollectionExtensions
{
    /// <summary>
    /// Serves <c>&lt;guid&gt;.<paramref name="zone"/></c> and <c>&lt;name&gt;.<paramref name="zone"/></c> over UDP and
    /// TCP at <paramref name="endpoint"/> (port 0 picks one). Other settings come from <c>Gns:Dns</c> when an
    /// <see cref="IConfiguration"/> is registered.
    /// </summary>
    public static IServiceCollection AddGnsDns(this IServiceCollection services, IPEndPoint endpoint, string zone)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentException.ThrowIfNullOrWhiteSpace(zone);
        return services.AddGnsDns(o =>
        {
            o.Endpoint = endpoint.ToString();
            o.Zone = zone;
        });
    }

    /// <summary>Adds the DNS front end configured from <c>Gns:Dns</c> (if an <see cref="IConfiguration"/> is registered) and then <paramref name="configure"/>; validated at start.</summary>
    public static IServiceCollection AddGnsDns(this IServiceCollection services, Action<GnsDnsOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<GnsDnsOptions>()
            .Configure<IServiceProvider>((options, sp) =>
            {
                if (sp.GetService<IConfiguration>() is { } configuration)
                {
                    configuration.GetSection(GnsDnsOptions.SectionName).Bind(options);
                }
            })
            .Configure(configure)
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<GnsDnsOptions>, GnsDnsOptionsValidator>());
        services.TryAddSingleton<DnsResponder>();
        services.TryAddSingleton<GnsDnsServer>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, GnsDnsHostedService>());
        return services;
    }
}

/// <summary>Runs the registered <see cref="GnsDnsServer"/> (kept a singleton so that tests and the host can read its endpoints).</summary>
internal sealed class GnsDnsHostedService(GnsDnsServer server) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => server.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => server.StopAsync(cancellationToken);
}
