using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Net.Netlink;

/// <summary>What the kernel answered about one socket (<see cref="InetDiag.ReadReply"/>).</summary>
public enum InetDiagVerdict
{
    /// <summary>A socket with exactly the asked endpoints, held by a process: <see cref="InetDiagAnswer.UserId"/> is its creator.</summary>
    Owned,

    /// <summary>
    /// No process holds a socket with these endpoints: none exists (ENOENT), or the one found is a
    /// closed mini-socket (TIME_WAIT, a request socket, an orphan: inode 0, listed with uid 0), or it is
    /// not the connection asked for (a listener the kernel fell back to).
    /// </summary>
    NoOwner,

    /// <summary>The kernel could not answer (another error, a reply that does not parse): ask some other way.</summary>
    Unknown,
}

/// <summary>The verdict and, when <see cref="InetDiagVerdict.Owned"/>, the socket's uid.</summary>
public readonly record struct InetDiagAnswer(InetDiagVerdict Verdict, uint UserId = 0, int Error = 0);

/// <summary>
/// NETLINK_SOCK_DIAG's exact lookup of one TCP socket (what <c>ss</c> uses; linux/inet_diag.h): a
/// SOCK_DIAG_BY_FAMILY request without NLM_F_DUMP names the socket by its local and remote endpoint,
/// the kernel finds it in its hash tables (no walk over every socket, as reading /proc/net/tcp is) and
/// answers one inet_diag_msg (uid, inode, state) or an NLMSG_ERROR (ENOENT: no such socket).
/// </summary>
public static class InetDiag
{
    /// <summary>NETLINK_SOCK_DIAG, the netlink protocol.</summary>
    public const int NetlinkSockDiag = 4;

    /// <summary>SOCK_DIAG_BY_FAMILY, the request and reply type.</summary>
    public const ushort SockDiagByFamily = 20;

    /// <summary>nlmsghdr (16) + inet_diag_req_v2 (56).</summary>
    public const int RequestLength = NetlinkRouteReader.HeaderLength + 56;

    /// <summary>nlmsghdr (16) + inet_diag_msg (72).</summary>
    public const int ReplyLength = NetlinkRouteReader.HeaderLength + 72;

    /// <summary>ENOENT, in the NLMSG_ERROR the kernel sends when no socket has the asked endpoints.</summary>
    public const int ENoEnt = 2;

    /// <summary>Source port, destination port and the two 16-byte addresses of inet_diag_sockid.</summary>
    private const int IdLength = 36;

    private const byte IpProtoTcp = 6;
    private const byte TcpListen = 10;
    private const byte TcpTimeWait = 6;
    private const byte TcpNewSynRecv = 12;

    /// <summary>
    /// Writes into <paramref name="destination"/> (at least <see cref="RequestLength"/> bytes) the request for
    /// the TCP socket whose own endpoint is <paramref name="local"/> and whose peer is <paramref name="remote"/>,
    /// both of one family (an IPv4-mapped IPv6 pair is asked as AF_INET6: the kernel looks it up as IPv4).
    /// </summary>
    public static int WriteRequest(Span<byte> destination, IPEndPoint local, IPEndPoint remote, uint sequence)
    {
        ArgumentNullException.ThrowIfNull(local);
        ArgumentNullException.ThrowIfNull(remote);
        if (local.AddressFamily != remote.AddressFamily)
        {
            throw new ArgumentException("Both endpoints must be of one family.", nameof(remote));
        }

        if (destination.Length < RequestLength)
        {
            throw new ArgumentException($"The request takes {RequestLength} bytes.", nameof(destination));
        }

        var request = destination[..RequestLength];
        request.Clear();
        // nlmsghdr: length, type, flags (a request, not a dump), sequence, port id 0 (the kernel).
        BinaryPrimitives.WriteUInt32LittleEndian(request, RequestLength);
        BinaryPrimitives.WriteUInt16LittleEndian(request[4..], SockDiagByFamily);
        BinaryPrimitives.WriteUInt16LittleEndian(request[6..], NetlinkRouteReader.NlmFRequest);
        BinaryPrimitives.WriteUInt32LittleEndian(request[8..], sequence);
        // inet_diag_req_v2: family, protocol, ext, pad, states (every state), then inet_diag_sockid.
        var body = request[NetlinkRouteReader.HeaderLength..];
        body[0] = (byte)(local.AddressFamily == AddressFamily.InterNetwork ? NetlinkRouteReader.AfInet : NetlinkRouteReader.AfInet6);
        body[1] = IpProtoTcp;
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], uint.MaxValue);
        WriteSocketId(body[8..], local, remote);
        return RequestLength;
    }

    /// <summary>
    /// Reads the kernel's answer to the request for (<paramref name="local"/>, <paramref name="remote"/>) with
    /// <paramref name="sequence"/>: never throws; anything that is not a well-formed answer to that request is
    /// <see cref="InetDiagVerdict.Unknown"/>.
    /// </summary>
    public static InetDiagAnswer ReadReply(ReadOnlySpan<byte> datagram, IPEndPoint local, IPEndPoint remote, uint sequence)
    {
        ArgumentNullException.ThrowIfNull(local);
        ArgumentNullException.ThrowIfNull(remote);
        while (datagram.Length >= NetlinkRouteReader.HeaderLength)
        {
            var length = BinaryPrimitives.ReadUInt32LittleEndian(datagram);
            if (length < NetlinkRouteReader.HeaderLength || length > datagram.Length)
            {
                return new(InetDiagVerdict.Unknown);
            }

            var message = datagram[..(int)length];
            var type = BinaryPrimitives.ReadUInt16LittleEndian(message[4..]);
            var messageSequence = BinaryPrimitives.ReadUInt32LittleEndian(message[8..]);
            var aligned = (int)Math.Min((length + 3) & ~3u, (uint)datagram.Length);
            datagram = datagram[aligned..];
            if (messageSequence != sequence)
            {
                // An answer to an earlier request on the same socket: not this one's.
                continue;
            }

            if (type == NetlinkRouteReader.NlmsgError)
            {
                if (message.Length < NetlinkRouteReader.HeaderLength + 4)
                {
                    return new(InetDiagVerdict.Unknown);
                }

                var error = -BinaryPrimitives.ReadInt32LittleEndian(message[NetlinkRouteReader.HeaderLength..]);
                return error == ENoEnt ? new(InetDiagVerdict.NoOwner, Error: error) : new(InetDiagVerdict.Unknown, Error: error);
            }

            if (type != SockDiagByFamily || message.Length < ReplyLength)
            {
                return new(InetDiagVerdict.Unknown);
            }

            return ReadMessage(message[NetlinkRouteReader.HeaderLength..], local, remote);
        }

        return new(InetDiagVerdict.Unknown);
    }

    /// <summary>inet_diag_msg: family, state, timer, retrans, inet_diag_sockid (48), expires, rqueue, wqueue, uid, inode.</summary>
    private static InetDiagAnswer ReadMessage(ReadOnlySpan<byte> body, IPEndPoint local, IPEndPoint remote)
    {
        if (body[0] is not (NetlinkRouteReader.AfInet or NetlinkRouteReader.AfInet6))
        {
            return new(InetDiagVerdict.Unknown);
        }

        // The kernel's lookup falls back to a listener on the local endpoint when no connection has both: its peer
        // is the wildcard, so comparing ports and addresses tells it from the connection. An IPv4 connection may be
        // held by a dual-mode IPv6 socket (answered as AF_INET6 with IPv4-mapped addresses) and an IPv4-mapped pair
        // by an IPv4 socket (answered in IPv4's layout): either layout of the same endpoints is the same socket.
        var id = body.Slice(4, IdLength);
        if (!SameId(id, local, remote)
            && !(local.Address.AddressFamily == AddressFamily.InterNetwork && SameId(id, Map(local, toV6: true), Map(remote, toV6: true)))
            && !(local.Address.IsIPv4MappedToIPv6 && remote.Address.IsIPv4MappedToIPv6 && SameId(id, Map(local, toV6: false), Map(remote, toV6: false))))
        {
            return new(InetDiagVerdict.NoOwner);
        }

        var state = body[1];
        var uid = BinaryPrimitives.ReadUInt32LittleEndian(body[64..]);
        var inode = BinaryPrimitives.ReadUInt32LittleEndian(body[68..]);
        // Inode 0: no process holds the socket (an orphan, a TIME_WAIT or request mini-socket, listed with uid 0).
        // Its creator is unknown, so the caller is; otherwise anyone could connect, close at once and pass as root.
        return inode == 0 || state is TcpListen or TcpTimeWait or TcpNewSynRecv
            ? new(InetDiagVerdict.NoOwner)
            : new(InetDiagVerdict.Owned, uid);
    }

    private static bool SameId(ReadOnlySpan<byte> id, IPEndPoint local, IPEndPoint remote)
    {
        Span<byte> expected = stackalloc byte[IdLength];
        WriteSocketId(expected, local, remote);
        return id.SequenceEqual(expected);
    }

    private static IPEndPoint Map(IPEndPoint endPoint, bool toV6) =>
        new(toV6 ? endPoint.Address.MapToIPv6() : endPoint.Address.MapToIPv4(), endPoint.Port);

    /// <summary>
    /// inet_diag_sockid without its interface and cookie: source port, destination port (network order), source
    /// address, destination address (16 bytes each, an IPv4 address in the first 4). Interface 0 and the cookie
    /// INET_DIAG_NOCOOKIE (all ones) follow in a request.
    /// </summary>
    private static void WriteSocketId(Span<byte> id, IPEndPoint local, IPEndPoint remote)
    {
        BinaryPrimitives.WriteUInt16BigEndian(id, (ushort)local.Port);
        BinaryPrimitives.WriteUInt16BigEndian(id[2..], (ushort)remote.Port);
        id[4..IdLength].Clear();
        local.Address.TryWriteBytes(id[4..], out _);
        remote.Address.TryWriteBytes(id[20..], out _);
        if (id.Length >= IdLength + 12)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(id[36..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(id[40..], uint.MaxValue);
            BinaryPrimitives.WriteUInt32LittleEndian(id[44..], uint.MaxValue);
        }
    }

    /// <summary>
    /// The reply the kernel sends for one socket (for tests and the fuzz corpus): an inet_diag_msg with
    /// <paramref name="state"/>, the id of (<paramref name="local"/>, <paramref name="remote"/>), uid and inode.
    /// </summary>
    public static byte[] Reply(IPEndPoint local, IPEndPoint remote, byte state, uint uid, uint inode, uint sequence)
    {
        ArgumentNullException.ThrowIfNull(local);
        ArgumentNullException.ThrowIfNull(remote);
        var reply = new byte[ReplyLength];
        BinaryPrimitives.WriteUInt32LittleEndian(reply, ReplyLength);
        BinaryPrimitives.WriteUInt16LittleEndian(reply.AsSpan(4), SockDiagByFamily);
        BinaryPrimitives.WriteUInt32LittleEndian(reply.AsSpan(8), sequence);
        var body = reply.AsSpan(NetlinkRouteReader.HeaderLength);
        body[0] = (byte)(local.AddressFamily == AddressFamily.InterNetwork ? NetlinkRouteReader.AfInet : NetlinkRouteReader.AfInet6);
        body[1] = state;
        WriteSocketId(body[4..], local, remote);
        BinaryPrimitives.WriteUInt32LittleEndian(body[64..], uid);
        BinaryPrimitives.WriteUInt32LittleEndian(body[68..], inode);
        return reply;
    }

    /// <summary>The NLMSG_ERROR the kernel sends for a request that failed with <paramref name="errno"/> (ENOENT: no such socket).</summary>
    public static byte[] ErrorReply(int errno, uint sequence) =>
        NetlinkRouteWriter.Message(NetlinkRouteReader.NlmsgError, 0, sequence, [.. BitConverter.GetBytes(-errno), .. new byte[16]]);
}
