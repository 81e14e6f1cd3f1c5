using System.Net;

namespace Mobility.Transport.Flows;

/// <summary>
/// One byte-stream path between two hosts (a TCP connection, or a simulated one in tests). A mobile
/// connection runs over a succession of flows.
/// </summary>
public interface IFlow : IAsyncDisposable
{
    /// <summary>The ordered, reliable byte stream of this flow.</summary>
    Stream Stream { get; }

    IPEndPoint? LocalEndPoint { get; }

    IPEndPoint? RemoteEndPoint { get; }

    /// <summary>Closes the flow at once (no graceful shutdown); pending reads and writes fail.</summary>
    void Abort();

    /// <summary>
    /// Accepted side: true while the flow's own opening handshake is not complete, i.e. its first
    /// bytes came in the opening packet (TCP Fast Open) from an address not proven yet.
    /// </summary>
    bool IsHandshakePending => false;

    /// <summary>
    /// Connecting side, once the flow is up: whether the peer took the data of the opening packet
    /// (TCP Fast Open: the SYN-ACK acknowledged it); null when unknown or not asked for.
    /// </summary>
    bool? FirstFlightTaken => null;

    /// <summary>
    /// Connecting side: the flow was opened for a first flight (TCP Fast Open asked of the kernel), so its
    /// first write rides in the opening packet as far as that packet has room (one segment) and the rest
    /// waits for the handshake.
    /// </summary>
    bool OpensWithFirstFlight => false;

    /// <summary>The transport's own smoothed round-trip time of this flow (the kernel's, for TCP); null when unknown.</summary>
    TimeSpan? SmoothedRtt => null;

    /// <summary>
    /// Bytes written to this flow that have not left the host yet (TCP: TCP_INFO's tcpi_notsent_bytes, still in the
    /// socket's write queue, e.g. because the flow's route went with its address); null when unknown.
    /// </summary>
    long? UnsentBytes => null;
}

/// <summary>Opens outgoing flows.</summary>
public interface IFlowFactory
{
    /// <summary>Connects to <paramref name="remote"/>, from <paramref name="localAddress"/> when given.</summary>
    ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken);

    /// <summary>
    /// Connects for a first flight: where the flow type can (TCP Fast Open), the connect returns at
    /// once and the first write rides in the opening packet; otherwise the same as <see cref="ConnectAsync"/>.
    /// </summary>
    ValueTask<IFlow> ConnectFirstFlightAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
        => ConnectAsync(remote, localAddress, cancellationToken);

    /// <summary>
    /// As <see cref="ConnectFirstFlightAsync(IPEndPoint, IPAddress?, CancellationToken)"/>, from <paramref name="localPort"/>
    /// (0: any) beside this host's own listener on that port (a server's call back: the client sees the server's
    /// published endpoint). Flow kinds that cannot choose the port connect from any.
    /// </summary>
    ValueTask<IFlow> ConnectFirstFlightAsync(IPEndPoint remote, IPAddress? localAddress, int localPort, CancellationToken cancellationToken)
        => ConnectFirstFlightAsync(remote, localAddress, cancellationToken);

    /// <summary>
    /// The local address a flow to <paramref name="remote"/> opened without a local address would come
    /// from (for TCP, the source of the kernel's route); null when unknown. Nothing is sent.
    /// </summary>
    IPAddress? SourceAddressFor(IPEndPoint remote) => null;

    /// <summary>Whether <see cref="PunchAsync"/> works: one side of a TCP simultaneous open needs a socket bound to a chosen port.</summary>
    bool CanPunch => false;

    /// <summary>
    /// One side of a TCP simultaneous open: connects to <paramref name="remote"/> from <paramref name="localPort"/>
    /// (the port this host's NAT maps to the reflexive endpoint it published), beside this host's own
    /// listener on that port. The peer connects to this end's endpoint at the same time; whichever SYN
    /// gets through, both ends see one connection.
    /// </summary>
    ValueTask<IFlow> PunchAsync(IPEndPoint remote, int localPort, CancellationToken cancellationToken)
        => throw new NotSupportedException("This flow kind cannot take part in a simultaneous open.");
}

/// <summary>Accepts incoming flows on one local endpoint.</summary>
public interface IFlowListener : IAsyncDisposable
{
    IPEndPoint LocalEndPoint { get; }

    /// <summary>Whether first flights (data in the opening packet, TCP Fast Open) are taken.</summary>
    bool FastOpen => false;

    /// <summary>Waits for the next flow. Throws <see cref="ObjectDisposedException"/> or <see cref="OperationCanceledException"/> once stopped.</summary>
    ValueTask<IFlow> AcceptAsync(CancellationToken cancellationToken);
}

/// <summary>Creates listeners (so the listener can rebind to a new local address).</summary>
public interface IFlowListenerFactory
{
    IFlowListener Listen(IPEndPoint endpoint);

    /// <summary>Listens with room for <paramref name="backlog"/> connections not yet accepted (where the flow type has such a queue).</summary>
    IFlowListener Listen(IPEndPoint endpoint, int backlog) => Listen(endpoint);

    /// <summary>
    /// As <see cref="Listen(IPEndPoint, int)"/>, taking first flights (data in the opening packet) with
    /// room for <paramref name="fastOpenQueue"/> of them whose handshake is not complete (0: none).
    /// </summary>
    IFlowListener Listen(IPEndPoint endpoint, int backlog, int fastOpenQueue) => Listen(endpoint, backlog);
}
