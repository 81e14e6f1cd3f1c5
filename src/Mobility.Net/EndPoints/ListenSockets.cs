using System.Net;
using System.Net.Sockets;

namespace Mobility.Net.EndPoints;

/// <summary>
/// The one place a listener's socket is made and bound (the GNS's datagram endpoint, the DNS front end,
/// mobilityd's control, SOCKS5 and transport listeners). The rules, once: a wildcard <c>[::]</c> serves
/// IPv4 too (DualMode; IPv4 sources then arrive IPv4-mapped, and every comparison normalises them), any
/// other IPv6 address serves IPv6 only; <c>[::]</c> on a kernel without IPv6 is bound as <c>0.0.0.0</c>; a failure is a <see cref="ListenerBindException"/> that names the
/// protocol, the address and the option that asked for it, which the hosts print as their one start-up line.
/// </summary>
public static class ListenSockets
{
    /// <summary>
    /// The wildcard of a listener that serves every family on <paramref name="port"/>: <c>[::]</c> (dual
    /// stack) when the OS has IPv6, otherwise <c>0.0.0.0</c>.
    /// </summary>
    public static IPEndPoint DualStackAny(int port) => new(Socket.OSSupportsIPv6 ? IPAddress.IPv6Any : IPAddress.Any, port);

    /// <summary>
    /// True when a listener bound here (by this class) takes connections to <paramref name="address"/>'s
    /// family: <c>[::]</c> both (dual stack), <c>0.0.0.0</c> and IPv4 addresses IPv4 (IPv4-mapped
    /// addresses count as IPv4), other IPv6 addresses IPv6.
    /// </summary>
    public static bool ServesFamilyOf(IPEndPoint bound, IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(bound);
        ArgumentNullException.ThrowIfNull(address);
        var family = address.IsIPv4MappedToIPv6 ? AddressFamily.InterNetwork : address.AddressFamily;
        return bound.Address.Equals(IPAddress.IPv6Any) || bound.AddressFamily == family;
    }

    /// <summary>A UDP socket bound to <paramref name="endPoint"/>; <paramref name="configure"/> runs before the bind (buffer sizes, packet information).</summary>
    public static Socket BindUdp(IPEndPoint endPoint, string owner, Action<Socket>? configure = null)
        => Bind(endPoint, SocketType.Dgram, ProtocolType.Udp, owner, configure, backlog: null);

    /// <summary>A TCP socket bound to <paramref name="endPoint"/> and listening with <paramref name="backlog"/>.</summary>
    public static Socket ListenTcp(IPEndPoint endPoint, string owner, int backlog, Action<Socket>? configure = null)
        => Bind(endPoint, SocketType.Stream, ProtocolType.Tcp, owner, configure, backlog);

    private static Socket Bind(IPEndPoint endPoint, SocketType type, ProtocolType protocol, string owner, Action<Socket>? configure, int? backlog)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        try
        {
            return BindOnce(endPoint, type, protocol, owner, configure, backlog);
        }
        catch (ListenerBindException e) when (endPoint.Address.Equals(IPAddress.IPv6Any)
                                              && e.SocketErrorCode is SocketError.AddressFamilyNotSupported or SocketError.ProtocolNotSupported
                                                  or SocketError.ProtocolFamilyNotSupported or SocketError.AddressNotAvailable)
        {
            // "[::]" means every family: on a host whose kernel has IPv6 turned off, that is 0.0.0.0.
            return BindOnce(new IPEndPoint(IPAddress.Any, endPoint.Port), type, protocol, owner, configure, backlog);
        }
    }

    private static Socket BindOnce(IPEndPoint endPoint, SocketType type, ProtocolType protocol, string owner, Action<Socket>? configure, int? backlog)
    {
        Socket socket;
        try
        {
            socket = new Socket(endPoint.AddressFamily, type, protocol);
        }
        catch (SocketException e)
        {
            throw new ListenerBindException(endPoint, protocol, owner, e);
        }

        try
        {
            if (endPoint.AddressFamily == AddressFamily.InterNetworkV6)
            {
                // .NET makes IPv6 sockets IPv6-only; the wildcard is the one that should serve IPv4 as well.
                socket.DualMode = endPoint.Address.Equals(IPAddress.IPv6Any);
            }

            configure?.Invoke(socket);
            socket.Bind(endPoint);
            if (backlog is { } pending)
            {
                socket.Listen(pending);
            }

            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new ListenerBindException(endPoint, protocol, owner, e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

/// <summary>A listener could not be bound: the message names the protocol, the endpoint and the option (<c>cannot bind UDP [::]:7353 (Gns:Udp (--udp)): Address already in use</c>).</summary>
public sealed class ListenerBindException : IOException
{
    public ListenerBindException(IPEndPoint endPoint, ProtocolType protocol, string owner, SocketException inner)
        : base($"cannot bind {(protocol == ProtocolType.Udp ? "UDP" : "TCP")} {endPoint} ({owner}): {inner?.Message}", inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        EndPoint = endPoint;
        SocketErrorCode = inner.SocketErrorCode;
    }

    /// <summary>The endpoint that could not be bound.</summary>
    public IPEndPoint EndPoint { get; }

    public SocketError SocketErrorCode { get; }
}
