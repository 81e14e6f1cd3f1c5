using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Access;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.Service;
using Mobility.Daemon.Challenges;
using Mobility.Daemon.Control;
using Mobility.Daemon.Forwarding;
using Mobility.Daemon.Identity;
using Mobility.Daemon.Peers;
using Mobility.Daemon.Records;
using Mobility.Daemon.State;
using Mobility.Daemon.Transparent;

namespace Mobility.Daemon;

public static class MobilitydServiceCollectionExtensions
{
    /// <summary>
    /// Registers the daemon's components: identity, local access policy, address monitor, control endpoint, challenger,
    /// record publisher, state files, the API and its gRPC service (with JSON transcoding). The caller
    /// registers the bound and validated <see cref="IOptions{MobilitydOptions}"/> (the host binds and
    /// validates them once, before anything starts) and an <see cref="Gns.Client.IGnsClient"/> (the host
    /// registers the real client; tests may register another first).
    /// </summary>
    public static IServiceCollection AddMobilityDaemon(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<DaemonIdentity>();
        services.TryAddSingleton<LocalAccessPolicy>();
        services.TryAddSingleton<AddressMonitor>();
        services.TryAddSingleton<PendingChallenges>();
        services.TryAddSingleton<ControlEndpoint>();
        services.TryAddSingleton<PeerBook>();
        services.TryAddSingleton<WatchedRecords>();
        services.TryAddSingleton<Challenger>();
        services.TryAddSingleton<RecordPublisher>();
        services.TryAddSingleton<DaemonApi>();
        services.TryAddSingleton<StateFiles>();
        services.TryAddSingleton<ExposedPorts>();
        services.TryAddSingleton<GnsPeerLocator>();
        services.TryAddSingleton<AddressClaims>();
        services.TryAddSingleton<VerifiedAddressOwners>();
        services.TryAddSingleton<MobileForwarder>();
        services.TryAddSingleton<Socks5Endpoint>();
        services.TryAddSingleton<Internal.NativeHeapTrimmer>();
        services.TryAddSingleton<Nat.NatDiscovery>();
        services.TryAddSingleton<PortMapping.PortMapper>();
        services.TryAddSingleton<UdpForwards>();
        services.TryAddSingleton<VirtualAddressMap>();
        services.TryAddSingleton<IPeerDirectory, GnsPeerDirectory>();
        services.TryAddSingleton<DnsUpstream>();
        services.TryAddSingleton<DnsStubResponder>();
        services.TryAddSingleton<DnsStub>();
        services.TryAddSingleton<SocketMark>();
        services.TryAddSingleton<Inbound.InboundDelivery>();
        services.TryAddSingleton<HeldSourceAddresses>();
        services.TryAddSingleton<InterceptionListener>();
        services.TryAddSingleton<UdpInterceptor>();
        services.TryAddSingleton<ResolverIntegration>();
        services.TryAddSingleton<TransparentMode>();
        // Hosted in this order: addresses, then the control endpoint (bound before ready), the transport and SOCKS5, then the rest.
        services.AddHostedService(sp => sp.GetRequiredService<AddressMonitor>());
        services.AddHostedService(sp => sp.GetRequiredService<ControlEndpoint>());
        // Before the transport, so that its routes are removed after the last delivery ended (hosted services stop in reverse).
        services.AddHostedService(sp => sp.GetRequiredService<Inbound.InboundDelivery>());
        // The transport before the record publisher: it publishes the transport's real port.
        services.AddHostedService(sp => sp.GetRequiredService<MobileForwarder>());
        services.AddHostedService(sp => sp.GetRequiredService<Socks5Endpoint>());
        // Stopped before the transport (hosted services stop in reverse), so its sessions close gracefully.
        services.AddHostedService(sp => sp.GetRequiredService<UdpForwards>());
        services.AddHostedService(sp => sp.GetRequiredService<DnsStub>());
        // Removes what a killed daemon held on lo before interception starts again; stops after transparent mode.
        services.AddHostedService(sp => sp.GetRequiredService<HeldSourceAddresses>());
        // After the stub (whose endpoint the resolver gets) and the forwarder (which relays what is intercepted).
        services.AddHostedService(sp => sp.GetRequiredService<TransparentMode>());
        services.AddHostedService(sp => sp.GetRequiredService<RecordPublisher>());
        services.AddHostedService(sp => sp.GetRequiredService<StateFiles>());
        services.AddHostedService(sp => sp.GetRequiredService<Internal.NativeHeapTrimmer>());
        services.AddHostedService(sp => sp.GetRequiredService<Nat.NatDiscovery>());
        services.AddHostedService(sp => sp.GetRequiredService<PortMapping.PortMapper>());
        services.AddGrpc().AddJsonTranscoding();
        // Every API call, on every endpoint and over gRPC and HTTP/JSON alike, passes the local access rule.
        services.AddGrpc().AddServiceOptions<MobilitydGrpcService>(o => o.Interceptors.Add<LocalAccessInterceptor>());
        return services;
    }
}
