using System.Runtime.InteropServices;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;

namespace Mobility.Daemon.Service;

/// <summary>The credentials of the process at the other end of a Unix socket (SO_PEERCRED), as the kernel saw them at connect.</summary>
public readonly record struct PeerCredentials(int ProcessId, uint UserId, uint GroupId)
{
    private const int SolSocket = 1;
    private const int SoPeerCred = 17;

    /// <summary>struct ucred { pid_t pid; uid_t uid; gid_t gid; }</summary>
    private const int UcredSize = 12;

    /// <summary>The caller's credentials when the request came over a Unix socket; false for TCP (the user is unknown there).</summary>
    public static bool TryGet(HttpContext context, out PeerCredentials credentials)
    {
        ArgumentNullException.ThrowIfNull(context);
        credentials = default;
        var socket = context.Features.Get<IConnectionSocketFeature>()?.Socket;
        return socket is not null && TryGet(socket, out credentials);
    }

    public static bool TryGet(Socket socket, out PeerCredentials credentials)
    {
        ArgumentNullException.ThrowIfNull(socket);
        credentials = default;
        if (socket.AddressFamily != AddressFamily.Unix || !OperatingSystem.IsLinux())
        {
            return false;
        }

        Span<byte> ucred = stackalloc byte[UcredSize];
        int length;
        try
        {
            length = socket.GetRawSocketOption(SolSocket, SoPeerCred, ucred);
        }
        catch (SocketException)
        {
            return false;
        }

        if (length != UcredSize)
        {
            return false;
        }

        credentials = new PeerCredentials(
            MemoryMarshal.Read<int>(ucred),
            MemoryMarshal.Read<uint>(ucred[4..]),
            MemoryMarshal.Read<uint>(ucred[8..]));
        return true;
    }
}
