using System.Net;
using Mobility.Netlab.Interop;
using Mobility.Protocol.Identity;
using Mobility.Transport;
using Mobility.Transport.Flows;

namespace Mobility.Netlab.FunctionalTests.Infrastructure;

/// <summary>The transport's TCP flows, their sockets made inside <paramref name="ns"/> (a socket stays in the namespace it was made in).</summary>
internal sealed class NamespaceFlows(string ns) : IFlowFactory
{
    public ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
        => new(NetworkNamespace.Run(ns, () => TcpFlowFactory.Instance.ConnectAsync(remote, localAddress, cancellationToken).AsTask()));

    public ValueTask<IFlow> ConnectFirstFlightAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
        => new(NetworkNamespace.Run(ns, () => TcpFlowFactory.Instance.ConnectFirstFlightAsync(remote, localAddress, cancellationToken).AsTask()));

    /// <summary>The source of the namespace's route to <paramref name="remote"/>.</summary>
    public IPAddress? SourceAddressFor(IPEndPoint remote)
        => NetworkNamespace.Run(ns, () => TcpFlowFactory.Instance.SourceAddressFor(remote));
}

/// <summary>A locator that always names one endpoint for one GUID (and never pushes).</summary>
internal sealed class FixedLocator(HostGuid guid, IPEndPoint endpoint) : IPeerLocator
{
    public event EventHandler<PeerEndpointsChangedEventArgs>? EndpointsChanged
    {
        add { }
        remove { }
    }

    public ValueTask<IReadOnlyList<IPEndPoint>> LocateAsync(HostGuid target, CancellationToken cancellationToken)
        => ValueTask.FromResult<IReadOnlyList<IPEndPoint>>(target == guid ? [endpoint] : []);
}
