using System.Net;
using System.Net.Sockets;
using Mobility.Net.EndPoints;
using Mobility.Protocol.Records;

namespace Mobility.Transport.Flows;

/// <summary>A flow over a connected TCP socket.</summary>
public sealed class TcpFlow : IFlow
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private int _closed;

    public TcpFlow(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        _socket = socket;
        _socket.NoDelay = true;
        _stream = new NetworkStream(socket, ownsSocket: false);
        // A dual-stack listener ([::]) sees IPv4 peers as ::ffff:a.b.c.d: the flow reports them as IPv4,
        // as every address the transport compares, logs or reports is.
        LocalEndPoint = Normalize(socket.LocalEndPoint as IPEndPoint);
        RemoteEndPoint = Normalize(socket.RemoteEndPoint as IPEndPoint);
    }

    public Stream Stream => _stream;

    private static IPEndPoint? Normalize(IPEndPoint? endPoint)
        => endPoint is { Address.IsIPv4MappedToIPv6: true } ? new IPEndPoint(Locator.Normalize(endPoint.Address), endPoint.Port) : endPoint;

    public IPEndPoint? LocalEndPoint { get; }

    public IPEndPoint? RemoteEndPoint { get; }

    public void Abort()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        try
        {
            // Linger 0: the peer gets a RST instead of waiting on a half-dead connection.
            _socket.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException)
        {
            // Already closed by the OS; Dispose below is enough.
        }
        catch (ObjectDisposedException)
        {
            return;
        }

        _stream.Dispose();
        _socket.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return ValueTask.CompletedTask;
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // The peer or the OS closed it first.
        }
        catch (ObjectDisposedException)
        {
            return ValueTask.CompletedTask;
        }

        _stream.Dispose();
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>Opens TCP flows, optionally bound to a local address.</summary>
/// <param name="configure">Called on each new socket before it binds or connects (mobilityd marks its sockets with it in transparent mode).</param>
public sealed class TcpFlowFactory(Action<Socket>? configure = null) : IFlowFactory
{
    public static TcpFlowFactory Instance { get; } = new();

    public async ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(remote);
        var socket = new Socket(remote.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            configure?.Invoke(socket);
            if (localAddress is not null)
            {
                socket.Bind(new IPEndPoint(localAddress, 0));
            }

            await socket.ConnectAsync(remote, cancellationToken).ConfigureAwait(false);
            return new TcpFlow(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

/// <summary>Listens for TCP flows.</summary>
public sealed class TcpFlowListener : IFlowListener
{
    private readonly Socket _socket;

    public TcpFlowListener(IPEndPoint endpoint, int backlog = 512)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        // [::] serves IPv4 too (IPv4 peers arrive IPv4-mapped); a failure is a ListenerBindException naming the endpoint.
        _socket = ListenSockets.ListenTcp(endpoint, "mobile transport", backlog);
        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    public IPEndPoint LocalEndPoint { get; }

    public async ValueTask<IFlow> AcceptAsync(CancellationToken cancellationToken)
    {
        var socket = await _socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
        return new TcpFlow(socket);
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}

public sealed class TcpFlowListenerFactory : IFlowListenerFactory
{
    public static TcpFlowListenerFactory Instance { get; } = new();

    public IFlowListener Listen(IPEndPoint endpoint) => new TcpFlowListener(endpoint);

    public IFlowListener Listen(IPEndPoint endpoint, int backlog) => new TcpFlowListener(endpoint, backlog);
}
