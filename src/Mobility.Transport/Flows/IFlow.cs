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
}

/// <summary>Opens outgoing flows.</summary>
public interface IFlowFactory
{
    /// <summary>Connects to <paramref name="remote"/>, from <paramref name="localAddress"/> when given.</summary>
    ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken);
}

/// <summary>Accepts incoming flows on one local endpoint.</summary>
public interface IFlowListener : IAsyncDisposable
{
    IPEndPoint LocalEndPoint { get; }

    /// <summary>Waits for the next flow. Throws <see cref="ObjectDisposedException"/> or <see cref="OperationCanceledException"/> once stopped.</summary>
    ValueTask<IFlow> AcceptAsync(CancellationToken cancellationToken);
}

/// <summary>Creates listeners (so the listener can rebind to a new local address).</summary>
public interface IFlowListenerFactory
{
    IFlowListener Listen(IPEndPoint endpoint);

    /// <summary>Listens with room for <paramref name="backlog"/> connections not yet accepted (where the flow type has such a queue).</summary>
    IFlowListener Listen(IPEndPoint endpoint, int backlog) => Listen(endpoint);
}
