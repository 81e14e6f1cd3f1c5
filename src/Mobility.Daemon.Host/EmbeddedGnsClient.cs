using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Mobility.Gns;
using Mobility.Gns.Client;
using Mobility.Gns.Udp;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Hosting;

/// <summary>The GNS inside mobilityd (--embedded-gns): the GNS server library on SQLite in &lt;state-dir&gt;/gns, and its client.</summary>
internal static class EmbeddedGns
{
    /// <summary>Adds the GNS server (UDP on <see cref="MobilitydOptions.EmbeddedGnsUdp"/>; gRPC and HTTP/JSON on the daemon's endpoints) and the client the daemon uses.</summary>
    public static IServiceCollection AddEmbeddedGns(this IServiceCollection services, MobilitydOptions options)
    {
        services.AddGnsServer(gns =>
        {
            gns.Udp = options.EmbeddedGnsUdp;
            gns.UdpOptionName = MobilitydOptions.EmbeddedGnsUdpOption;
            gns.Store = GnsServerOptions.SqliteStore;
            gns.DataDirectory = Path.Combine(Path.GetFullPath(options.StateDir), "gns");
        });
        services.TryAddSingleton<IGnsClient, EmbeddedGnsClient>();
        return services;
    }
}

/// <summary>
/// The daemon's GNS client when the GNS runs inside it (--embedded-gns): a real <see cref="GnsClient"/>,
/// created on first use, aimed at the embedded server's bound UDP port over loopback and at the
/// daemon's own gRPC endpoint (where the GNS service is mapped too) for watches.
/// </summary>
internal sealed class EmbeddedGnsClient(GnsUdpServer server, DaemonEndpoints endpoints, TimeProvider time, ILoggerFactory loggers) : IGnsClient
{
    private readonly Lazy<GnsClient> _client = new(() => Create(server, endpoints, time, loggers));

    private GnsClient Client => _client.Value;

    public Task<GnsUpdateResult> RegisterAsync(GnsRecord record, CancellationToken cancellationToken = default) => Client.RegisterAsync(record, cancellationToken);

    public Task<GnsUpdateResult> UpdateAsync(GnsRecord record, CancellationToken cancellationToken = default) => Client.UpdateAsync(record, cancellationToken);

    public Task<GnsRecord?> LookupAsync(HostGuid guid, CancellationToken cancellationToken = default) => Client.LookupAsync(guid, cancellationToken);

    public Task<GnsRecord?> LookupNameAsync(string name, CancellationToken cancellationToken = default) => Client.LookupNameAsync(name, cancellationToken);

    public Task<IReadOnlyList<HostGuid>> ReverseAsync(IPAddress address, CancellationToken cancellationToken = default) => Client.ReverseAsync(address, cancellationToken);

    public Task<ulong> RemoveAsync(GnsRemoval removal, CancellationToken cancellationToken = default) => Client.RemoveAsync(removal, cancellationToken);

    public IAsyncEnumerable<GnsWatchEvent> WatchAsync(IEnumerable<HostGuid> guids, CancellationToken cancellationToken = default) => Client.WatchAsync(guids, cancellationToken);

    public void Invalidate(HostGuid guid)
    {
        if (_client.IsValueCreated)
        {
            _client.Value.Invalidate(guid);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_client.IsValueCreated)
        {
            await _client.Value.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static GnsClient Create(GnsUdpServer server, DaemonEndpoints endpoints, TimeProvider time, ILoggerFactory loggers)
    {
        var bound = server.LocalEndPoint ?? throw new GnsException(Protocol.Gns.GnsErrorCode.Unavailable, "The embedded GNS has not bound its UDP endpoint yet.");
        // A wildcard is reached over IPv4 loopback: [::] is dual stack, and ::1 is missing where IPv6 is turned off.
        var address = bound.Address.Equals(IPAddress.Any) || bound.Address.Equals(IPAddress.IPv6Any) ? IPAddress.Loopback : bound.Address;
        return new GnsClient(new GnsClientOptions
        {
            Server = new IPEndPoint(address, bound.Port),
            GrpcAddress = endpoints.Grpc is { } grpc ? new Uri($"http://{grpc}/") : null,
            TimeProvider = time,
            LoggerFactory = loggers,
        });
    }
}
