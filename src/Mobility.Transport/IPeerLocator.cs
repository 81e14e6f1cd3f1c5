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
    /// <summary>The host's endpoints as its directory holds them now (asked afresh: used when a path was lost, or when the endpoints a connect started with all failed).</summary>
    ValueTask<IReadOnlyList<IPEndPoint>> LocateAsync(HostGuid guid, CancellationToken cancellationToken);

    /// <summary>
    /// The endpoints a new connection starts with. A locator that keeps a host's record current by itself (a watched GNS
    /// record) may answer from that record without a round trip (<see cref="LocatedEndpoints.FromCache"/>); the connector
    /// then asks <see cref="LocateAsync"/> when those endpoints all failed, or when none proved the host within
    /// <see cref="MobileConnectionOptions.ConnectRaceDelayMax"/>. By default the same as <see cref="LocateAsync"/>.
    /// </summary>
    async ValueTask<LocatedEndpoints> LocateForConnectAsync(HostGuid guid, CancellationToken cancellationToken)
        => new(await LocateAsync(guid, cancellationToken).ConfigureAwait(false), FromCache: false);

    /// <summary>Raised when the endpoints of a host change (a GNS push). May be raised on any thread.</summary>
    event EventHandler<PeerEndpointsChangedEventArgs>? EndpointsChanged;
}

/// <summary>A host's endpoints, and whether they came from a record the locator keeps current rather than from a fresh lookup.</summary>
public readonly record struct LocatedEndpoints(IReadOnlyList<IPEndPoint> Endpoints, bool FromCache);

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
