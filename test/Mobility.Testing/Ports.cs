using System.Net;
using System.Net.Sockets;

namespace Mobility.Testing;

/// <summary>Free loopback ports, for servers that must be told a port before they start (redis-server, sshd).</summary>
public static class Ports
{
    /// <summary>A TCP port that was free on <paramref name="address"/> (127.0.0.1 unless given) a moment ago.</summary>
    public static int FreeTcp(IPAddress? address = null)
    {
        using var listener = new TcpListener(address ?? IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A UDP port that was free on <paramref name="address"/> (127.0.0.1 unless given) a moment ago.</summary>
    public static int FreeUdp(IPAddress? address = null)
    {
        using var socket = new Socket(SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(address ?? IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
