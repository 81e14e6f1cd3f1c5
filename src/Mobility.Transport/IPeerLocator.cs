using System.Net;
using Mobility.Protocol.Identity;

namespace Mobility.Transport;

/// <summary>
/// Finds the current transport endpoints of a host (the daemon implements it with GNS lookups and
/// watch pushes). The client re-resolves through it when its path to the server is lost, and a
/// pushed change makes every affected connection try the new endpoints at once.
/// </summary>
public interface IPeerLocator
{
    ValueTask<IReadOnlyList<IPEndPoint>> LocateAsync(HostGuid guid, CancellationToken cancellationToken);

    /// <summary>Raised when the endpoints of a host change (a GNS push). May be raised on any thread.</summary>
    event EventHandler<PeerEndpointsChangedEventArgs>? EndpointsChanged;
}

public sealed class PeerEndpointsChangedEventArgs : EventArgs
{
    public PeerEndpointsChangedEventArgs(HostGuid guid, IReadOnlyList<IPEndPoint> endpoints)
    {
        Guid = guid;
        Endpoints = endpoints;
    }

    public HostGuid Guid { get; }

    public IReadOnlyList<IPEndPoint> Endpoints { get; }
}
