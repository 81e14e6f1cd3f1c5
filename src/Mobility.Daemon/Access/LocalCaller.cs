using System.Net;
using System.Net.Sockets;
using Mobility.Daemon.Service;

namespace Mobility.Daemon.Access;

/// <summary>The user at the other end of a local connection, as the kernel knows it.</summary>
public static class LocalCaller
{
    /// <summary>
    /// The caller's uid: SO_PEERCRED on a Unix socket; the owner of the client's socket in the kernel's
    /// TCP table on loopback TCP (<see cref="TcpSocketTable"/>); null when it cannot be known.
    /// </summary>
    public static uint? UserOf(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (socket.AddressFamily == AddressFamily.Unix)
        {
            return PeerCredentials.TryGet(socket, out var peer) ? peer.UserId : null;
        }

        try
        {
            return socket.RemoteEndPoint is IPEndPoint client && socket.LocalEndPoint is IPEndPoint server
                ? TcpSocketTable.FindOwner(client, server)
                : null;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return null;
        }
    }
}
