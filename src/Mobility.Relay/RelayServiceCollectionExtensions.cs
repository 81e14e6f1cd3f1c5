using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Mobility.Relay.Connections;

namespace Mobility.Relay;

public static class RelayServiceCollectionExtensions
{
    /// <summary>
    /// The relay's services: options, counters and the connection handler that a Kestrel endpoint
    /// serves with <c>UseConnectionHandler&lt;RelayConnectionHandler&gt;()</c>. Kestrel's socket buffers are
    /// bounded by <see cref="RelayLimits.BufferBytes"/> each way.
    /// </summary>
    public static IServiceCollection AddRelayServer(this IServiceCollection services, Action<RelayOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<RelayOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<RelayCounters>();
        services.TryAddSingleton<RelayConnectionHandler>();
        services.AddOptions<SocketTransportOptions>().Configure<Microsoft.Extensions.Options.IOptions<RelayOptions>>((sockets, relay) =>
        {
            sockets.MaxReadBufferSize = relay.Value.Limits.BufferBytes;
            sockets.MaxWriteBufferSize = relay.Value.Limits.BufferBytes;
        });
        return services;
    }
}
