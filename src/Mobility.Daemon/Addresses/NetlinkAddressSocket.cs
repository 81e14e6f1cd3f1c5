using System.Net.Sockets;
using System.Runtime.InteropServices;
using Mobility.Net.Netlink;

namespace Mobility.Daemon.Addresses;

/// <summary>
/// An AF_NETLINK / NETLINK_ROUTE socket joined to the link, IPv4-address and IPv6-address groups,
/// wrapped in a <see cref="Socket"/> so that receives are asynchronous and cancellable. Linux only:
/// <see cref="TryOpen"/> returns null (with the reason) where the socket cannot be made.
/// </summary>
internal sealed class NetlinkAddressSocket : IDisposable
{
    /// <summary>
    /// Receive buffer: the largest datagram the kernel sends for a dump is a page or two (it fills up
    /// to 32 KiB when the reader's buffer allows); 64 KiB holds any of them whole.
    /// </summary>
    public const int BufferSize = 64 * 1024;

    private const int AfNetlink = 16;
    private const int SockRaw = 3;
    private const int SockCloexec = 0x80000;
    private const int NetlinkRoute = 0;

    private readonly Socket _socket;
    private uint _sequence;

    private NetlinkAddressSocket(Socket socket) => _socket = socket;

    /// <summary>Opens the socket, or returns null and why not.</summary>
    public static NetlinkAddressSocket? TryOpen(out string? error)
    {
        error = null;
        if (!OperatingSystem.IsLinux())
        {
            error = "netlink exists on Linux only";
            return null;
        }

        var fd = socket(AfNetlink, SockRaw | SockCloexec, NetlinkRoute);
        if (fd < 0)
        {
            error = $"socket(AF_NETLINK) failed: errno {Marshal.GetLastPInvokeError()}";
            return null;
        }

        var handle = new SafeSocketHandle(fd, ownsHandle: true);
        // struct sockaddr_nl: family (u16), pad (u16), port id (u32, 0: the kernel picks), groups (u32).
        var address = new byte[12];
        BitConverter.TryWriteBytes(address.AsSpan(0), (ushort)AfNetlink);
        BitConverter.TryWriteBytes(address.AsSpan(8), NetlinkRouteReader.RtmgrpLink | NetlinkRouteReader.RtmgrpIpv4Ifaddr | NetlinkRouteReader.RtmgrpIpv6Ifaddr);
        if (bind(fd, address, address.Length) != 0)
        {
            error = $"bind(AF_NETLINK) failed: errno {Marshal.GetLastPInvokeError()}";
            handle.Dispose();
            return null;
        }

        try
        {
            // Non-blocking for the synchronous reads that drain a burst; ReceiveAsync still waits.
            return new NetlinkAddressSocket(new Socket(handle) { Blocking = false, ReceiveBufferSize = 1024 * 1024 });
        }
        catch (SocketException e)
        {
            error = $"netlink socket unusable: {e.Message}";
            handle.Dispose();
            return null;
        }
    }

    /// <summary>Asks the kernel for every link or address (<see cref="NetlinkRouteReader.RtmGetLink"/>, <see cref="NetlinkRouteReader.RtmGetAddr"/>); returns the request's sequence number.</summary>
    public uint RequestDump(ushort type)
    {
        var sequence = ++_sequence;
        _socket.Send(NetlinkRouteWriter.DumpRequest(type, sequence));
        return sequence;
    }

    /// <summary>Waits for the next datagram.</summary>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken) =>
        _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);

    /// <summary>The next datagram if one is queued, else 0 (never waits).</summary>
    public int TryReceive(Span<byte> buffer)
    {
        var received = _socket.Receive(buffer, SocketFlags.None, out var error);
        return error switch
        {
            SocketError.Success => received,
            SocketError.WouldBlock => 0,
            _ => throw new SocketException((int)error),
        };
    }

    public void Dispose() => _socket.Dispose();

#pragma warning disable SYSLIB1054 // DllImport keeps the project free of unsafe code; these signatures need no marshalling stubs.
    [DllImport("libc", SetLastError = true)]
    private static extern int socket(int domain, int type, int protocol);

    [DllImport("libc", SetLastError = true)]
    private static extern int bind(int fd, byte[] address, int length);
#pragma warning restore SYSLIB1054
}
