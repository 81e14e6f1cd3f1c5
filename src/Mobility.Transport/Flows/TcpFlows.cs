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

    /// <param name="remote">The endpoint connected to, when known: a Fast Open connect returns before the SYN is sent, and the kernel names no peer until it is answered.</param>
    public TcpFlow(Socket socket, IPEndPoint? remote = null)
    {
        ArgumentNullException.ThrowIfNull(socket);
        _socket = socket;
        _socket.NoDelay = true;
        _stream = new NetworkStream(socket, ownsSocket: false);
        // A dual-stack listener ([::]) sees IPv4 peers as ::ffff:a.b.c.d: the flow reports them as IPv4,
        // as every address the transport compares, logs or reports is.
        LocalEndPoint = Normalize(socket.LocalEndPoint as IPEndPoint);
        RemoteEndPoint = Normalize(remote ?? socket.RemoteEndPoint as IPEndPoint);
    }

    public Stream Stream => _stream;

    private static IPEndPoint? Normalize(IPEndPoint? endPoint)
        => endPoint is { Address.IsIPv4MappedToIPv6: true } ? new IPEndPoint(Locator.Normalize(endPoint.Address), endPoint.Port) : endPoint;

    public IPEndPoint? LocalEndPoint { get; }

    public IPEndPoint? RemoteEndPoint { get; }

    public bool IsHandshakePending => TcpFastOpen.IsHandshakePending(_socket);

    /// <summary>Set by the factory for a flow opened for a first flight.</summary>
    internal bool FastOpenRequested { get; init; }

    public bool? FirstFlightTaken => FastOpenRequested ? TcpFastOpen.SynDataAcknowledged(_socket) : null;

    public bool OpensWithFirstFlight => FastOpenRequested;

    public TimeSpan? SmoothedRtt => TcpFastOpen.SmoothedRtt(_socket);

    public long? UnsentBytes => TcpFastOpen.NotSentBytes(_socket);

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

    public ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
        => ConnectAsync(remote, localAddress, fastOpen: false, cancellationToken);

    /// <summary>
    /// TCP Fast Open without a cookie (<see cref="TcpFastOpen.TryEnableOnConnect"/>): the connect
    /// returns at once and the first write goes in the SYN. Where the kernel refuses the options, a
    /// plain connect. The kernel falls back by itself: a SYN-ACK that does not acknowledge the data
    /// (the server does not take it) gets the data resent at once after the handshake, and a SYN with
    /// data that goes unanswered is retransmitted as a plain SYN.
    /// </summary>
    public ValueTask<IFlow> ConnectFirstFlightAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
        => ConnectAsync(remote, localAddress, fastOpen: true, cancellationToken);

    /// <summary>
    /// A first flight from <paramref name="localPort"/>: the socket is bound with SO_REUSEADDR and SO_REUSEPORT
    /// beside the transport's listener on that port (as <see cref="PunchAsync"/>), to <paramref name="localAddress"/>
    /// or the wildcard address.
    /// </summary>
    public ValueTask<IFlow> ConnectFirstFlightAsync(IPEndPoint remote, IPAddress? localAddress, int localPort, CancellationToken cancellationToken)
        => ConnectAsync(remote, localAddress, fastOpen: true, cancellationToken, localPort);

    /// <summary>
    /// The source address of the kernel's route to <paramref name="remote"/>: a UDP socket connected
    /// there (a route lookup; nothing is sent) and its local address. Null when there is no route.
    /// </summary>
    public IPAddress? SourceAddressFor(IPEndPoint remote)
    {
        ArgumentNullException.ThrowIfNull(remote);
        try
        {
            using var probe = new Socket(remote.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            configure?.Invoke(probe);
            probe.Connect(remote.Address, remote.Port == 0 ? 9 : remote.Port);
            return probe.LocalEndPoint is IPEndPoint local ? Locator.Normalize(local.Address) : null;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    public bool CanPunch => OperatingSystem.IsLinux();

    /// <summary>
    /// A socket bound to the wildcard address and <paramref name="localPort"/> with SO_REUSEADDR and
    /// SO_REUSEPORT (the transport's listener on that port sets SO_REUSEPORT after it binds: see
    /// <see cref="TcpFlowListener"/>), connected to <paramref name="remote"/>. When the peer's SYN meets
    /// this one (simultaneous open) or answers it, the kernel makes one connection of both.
    /// </summary>
    public async ValueTask<IFlow> PunchAsync(IPEndPoint remote, int localPort, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(remote);
        var socket = new Socket(remote.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            configure?.Invoke(socket);
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            TcpFlowListener.SetReusePort(socket);
            socket.Bind(new IPEndPoint(remote.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, localPort));
            await socket.ConnectAsync(remote, cancellationToken).ConfigureAwait(false);
            return new TcpFlow(socket, remote);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, bool fastOpen, CancellationToken cancellationToken, int localPort = 0)
    {
        ArgumentNullException.ThrowIfNull(remote);
        var socket = new Socket(remote.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            configure?.Invoke(socket);
            if (localPort != 0 && OperatingSystem.IsLinux())
            {
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                TcpFlowListener.SetReusePort(socket);
                var any = remote.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any;
                var address = localAddress is null ? any
                    : remote.AddressFamily == AddressFamily.InterNetworkV6 && localAddress.AddressFamily == AddressFamily.InterNetwork ? localAddress.MapToIPv6()
                    : localAddress;
                socket.Bind(new IPEndPoint(address, localPort));
            }
            else if (localAddress is not null)
            {
                socket.Bind(new IPEndPoint(localAddress, 0));
            }

            var requested = fastOpen && TcpFastOpen.TryEnableOnConnect(socket);

            await socket.ConnectAsync(remote, cancellationToken).ConfigureAwait(false);
            return new TcpFlow(socket, remote) { FastOpenRequested = requested };
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

    /// <param name="fastOpenQueue">Fast Open requests (SYNs with data, no cookie needed) taken before their handshake completes; 0: none.</param>
    public TcpFlowListener(IPEndPoint endpoint, int backlog = 512, int fastOpenQueue = 0)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var fastOpen = false;
        // [::] serves IPv4 too (IPv4 peers arrive IPv4-mapped); a failure is a ListenerBindException naming the endpoint.
        _socket = ListenSockets.ListenTcp(endpoint, "mobile transport", backlog, s => fastOpen = TcpFastOpen.TryEnableOnListener(s, fastOpenQueue));
        // SO_REUSEPORT only after the bind: a second listener on the port still fails with "address in
        // use" (it binds without the option), while a simultaneous open may bind its socket beside this one.
        SetReusePort(_socket);
        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
        // The socket takes the options whatever the sysctl says; the kernel acts on them only with the server bit.
        FastOpen = fastOpen && ((TcpFastOpen.ReadSysctl() ?? 0) & TcpFastOpen.ServerBit) != 0;
    }

    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Sets SO_REUSEPORT (Linux; elsewhere nothing): a simultaneous open binds the listener's port too.</summary>
    internal static void SetReusePort(Socket socket)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        const int SolSocket = 1;
        const int SoReusePort = 15;
        socket.SetRawSocketOption(SolSocket, SoReusePort, BitConverter.GetBytes(1));
    }

    /// <summary>Whether SYNs with data are taken: the options were set and net.ipv4.tcp_fastopen has the server bit (0x2).</summary>
    public bool FastOpen { get; }

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

    public IFlowListener Listen(IPEndPoint endpoint, int backlog, int fastOpenQueue) => new TcpFlowListener(endpoint, backlog, fastOpenQueue);
}
