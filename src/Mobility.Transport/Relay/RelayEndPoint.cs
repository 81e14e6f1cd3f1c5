using System.Net;
using Mobility.Protocol.Identity;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Relay;

/// <summary>
/// A peer's endpoint that is a relay (a <c>relay</c> locator in its record): the relay's address and
/// port, and the GUID to dial there. A <see cref="RelayFlowFactory"/> opens flows to it through the
/// relay; to everything else it is the relay's <see cref="IPEndPoint"/>.
/// </summary>
public sealed class RelayEndPoint(IPAddress address, int port, HostGuid target) : IPEndPoint(address, port)
{
    /// <summary>The registered host the relay splices to.</summary>
    public HostGuid Target { get; } = target;

    public override string ToString() => $"{base.ToString()} (relay for {Target.ToShortString()})";
}

/// <summary>
/// Opens flows to a <see cref="RelayEndPoint"/> through its relay (<see cref="RelayFlows.DialAsync"/>)
/// and every other endpoint with <paramref name="inner"/>: the flow kind a connector uses for peers
/// reachable only through a relay. A resume to a relay endpoint dials through the relay again.
/// </summary>
public sealed class RelayFlowFactory(IFlowFactory inner) : IFlowFactory
{
    public ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
        => remote is RelayEndPoint relay
            ? RelayFlows.DialAsync(new IPEndPoint(relay.Address, relay.Port), relay.Target, inner, localAddress, cancellationToken)
            : inner.ConnectAsync(remote, localAddress, cancellationToken);

    /// <summary>A simultaneous open is <paramref name="inner"/>'s (it never goes through a relay).</summary>
    public bool CanPunch => inner.CanPunch;

    public ValueTask<IFlow> PunchAsync(IPEndPoint remote, int localPort, CancellationToken cancellationToken)
        => inner.PunchAsync(remote, localPort, cancellationToken);

    /// <summary>A first flight through a relay is an ordinary dial (the relay's header goes first); to any other endpoint, <paramref name="inner"/>'s (TCP Fast Open).</summary>
    public ValueTask<IFlow> ConnectFirstFlightAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
        => remote is RelayEndPoint
            ? ConnectAsync(remote, localAddress, cancellationToken)
            : inner.ConnectFirstFlightAsync(remote, localAddress, cancellationToken);

    /// <summary>The source of a flow to <paramref name="remote"/> (through a relay: towards the relay, whose address a <see cref="RelayEndPoint"/> is).</summary>
    public IPAddress? SourceAddressFor(IPEndPoint remote) => inner.SourceAddressFor(remote);
}
