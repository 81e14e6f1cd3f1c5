using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Mobility.Daemon.Transparent;

/// <summary>One datagram TPROXY delivered: who sent it, where it was sent to (the virtual endpoint), how long it is.</summary>
public readonly record struct InterceptedDatagram(IPEndPoint Source, IPEndPoint Destination, int Length);

/// <summary>
/// The sockets of UDP interception (Linux, 64-bit): a listener with IP_TRANSPARENT and IP_RECVORIGDSTADDR
/// (IPV6_TRANSPARENT, IPV6_RECVORIGDSTADDR) that TPROXY delivers a flow's first datagrams to, each with its
/// original destination in a control message; and, per session, a transparent socket bound to the virtual
/// endpoint (an address this host does not have) and connected to the program, which sends the replies from
/// that endpoint and, being connected, is the socket TPROXY finds for the flow's later datagrams. .NET has
/// no API for control messages other than packet info, so the listener's datagrams are read with recvmsg.
/// </summary>
public sealed class TransparentUdpSocket : IDisposable
{
    private const int SolIp = 0;
    private const int SolIpv6 = 41;
    private const int IpTransparent = 19;
    private const int IpRecvOrigDstAddr = 20;
    private const int Ipv6RecvOrigDstAddr = 74;
    private const int Ipv6Transparent = 75;
    private const int MsgDontWait = 0x40;
    private const int EAgain = 11;
    private const int EIntr = 4;
    private const int NameSize = 128;
    private const int ControlSize = 256;

    // struct msghdr and struct iovec on LP64: name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40, flags 48.
    private const int MsgHdrSize = 56;
    private const int IoVecSize = 16;

    private readonly Socket _socket;
    private readonly IntPtr _native;
    private readonly int _dataSize;
    private readonly byte[] _name = new byte[NameSize];
    private readonly byte[] _control = new byte[ControlSize];
    private readonly byte[] _peek = new byte[1];
    private int _disposed;

    private TransparentUdpSocket(Socket socket, int dataSize)
    {
        _socket = socket;
        _dataSize = dataSize;
        _native = Marshal.AllocHGlobal(MsgHdrSize + IoVecSize + NameSize + ControlSize + dataSize);
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    /// <summary>
    /// Binds the listener to <paramref name="loopback"/> (127.0.0.1 or ::1) on a port the kernel picks.
    /// Throws <see cref="SocketException"/> when the address is missing or the options are refused (no CAP_NET_ADMIN),
    /// <see cref="PlatformNotSupportedException"/> off 64-bit Linux.
    /// </summary>
    public static TransparentUdpSocket Listen(IPAddress loopback, int receiveSize)
    {
        ArgumentNullException.ThrowIfNull(loopback);
        if (!OperatingSystem.IsLinux() || IntPtr.Size != 8)
        {
            throw new PlatformNotSupportedException("UDP interception needs 64-bit Linux (TPROXY, recvmsg).");
        }

        var socket = new Socket(loopback.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            MakeTransparent(socket);
            if (loopback.AddressFamily == AddressFamily.InterNetworkV6)
            {
                socket.DualMode = false;
                socket.SetRawSocketOption(SolIpv6, Ipv6RecvOrigDstAddr, BitConverter.GetBytes(1));
            }
            else
            {
                socket.SetRawSocketOption(SolIp, IpRecvOrigDstAddr, BitConverter.GetBytes(1));
            }

            socket.Bind(new IPEndPoint(loopback, 0));
            return new TransparentUdpSocket(socket, receiveSize);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A session's socket: bound to <paramref name="virtualEndPoint"/> (with SO_REUSEADDR, as every session to that
    /// endpoint is) and connected to <paramref name="program"/>. Throws <see cref="SocketException"/>.
    /// </summary>
    public static Socket Connect(IPEndPoint virtualEndPoint, IPEndPoint program)
    {
        ArgumentNullException.ThrowIfNull(virtualEndPoint);
        ArgumentNullException.ThrowIfNull(program);
        var socket = new Socket(virtualEndPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            MakeTransparent(socket);
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(virtualEndPoint);
            socket.Connect(program);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Waits until a datagram is queued (a 1-byte peek, which leaves it there).</summary>
    public async ValueTask WaitAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _socket.ReceiveAsync(_peek, SocketFlags.Peek, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.MessageSize or SocketError.ConnectionRefused or SocketError.ConnectionReset)
        {
            // A longer datagram than the peek (it is still queued), or an ICMP error queued on the socket: either way, read on.
        }
    }

    /// <summary>
    /// The next queued datagram into <paramref name="buffer"/>, or null when none is queued (never waits). Only one
    /// caller at a time, and not after <see cref="Dispose"/>: the receive loop that owns the socket.
    /// </summary>
    public InterceptedDatagram? TryReceive(byte[] buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var header = _native;
        var iov = header + MsgHdrSize;
        var name = iov + IoVecSize;
        var control = name + NameSize;
        var data = control + ControlSize;
        while (true)
        {
            Marshal.WriteIntPtr(header, 0, name);
            Marshal.WriteInt64(header, 8, NameSize);
            Marshal.WriteIntPtr(header, 16, iov);
            Marshal.WriteInt64(header, 24, 1);
            Marshal.WriteIntPtr(header, 32, control);
            Marshal.WriteInt64(header, 40, ControlSize);
            Marshal.WriteInt32(header, 48, 0);
            Marshal.WriteIntPtr(iov, 0, data);
            Marshal.WriteInt64(iov, 8, _dataSize);
            var received = recvmsg((int)_socket.Handle, header, MsgDontWait);
            if (received < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == EIntr)
                {
                    continue;
                }

                if (errno == EAgain)
                {
                    return null;
                }

                throw new SocketException(errno);
            }

            var nameLength = Math.Min(Marshal.ReadInt32(header, 8), NameSize);
            var controlLength = (int)Math.Min(Marshal.ReadInt64(header, 40), ControlSize);
            Marshal.Copy(name, _name, 0, nameLength);
            Marshal.Copy(control, _control, 0, controlLength);
            var length = (int)Math.Min(received, Math.Min(_dataSize, buffer.Length));
            Marshal.Copy(data, buffer, 0, length);
            var source = OriginalDestination.Parse(_name.AsSpan(0, nameLength));
            var destination = OriginalDestination.FromControlMessages(_control.AsSpan(0, controlLength));
            if (source is null || destination is null)
            {
                // Not delivered by TPROXY (nothing else can reach a loopback port no one was told of): dropped.
                continue;
            }

            return new InterceptedDatagram(Unmap(source), Unmap(destination), length);
        }
    }

    private static IPEndPoint Unmap(IPEndPoint endPoint)
        => endPoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port) : endPoint;

    private static void MakeTransparent(Socket socket)
    {
        if (socket.AddressFamily == AddressFamily.InterNetworkV6)
        {
            socket.SetRawSocketOption(SolIpv6, Ipv6Transparent, BitConverter.GetBytes(1));
        }
        else
        {
            socket.SetRawSocketOption(SolIp, IpTransparent, BitConverter.GetBytes(1));
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _socket.Dispose();
            Marshal.FreeHGlobal(_native);
        }
    }

#pragma warning disable SYSLIB1054 // DllImport keeps the project free of unsafe code; these signatures need no marshalling stubs.
    [DllImport("libc", SetLastError = true)]
    private static extern nint recvmsg(int fd, IntPtr message, int flags);
#pragma warning restore SYSLIB1054
}
