using System.Runtime.InteropServices;

namespace Mobility.Netlab.Interop;

/// <summary>
/// An open TUN interface (<c>IFF_TUN | IFF_NO_PI</c>): every read returns one IP packet, every write injects one.
/// The device lives in the network namespace of the thread that opened it. Reads block.
/// </summary>
public sealed class TunDevice : IDisposable
{
    private int _fd;

    private TunDevice(string name, int fd)
    {
        Name = name;
        _fd = fd;
    }

    public string Name { get; }

    /// <summary>Opens <c>/dev/net/tun</c> and attaches to (or creates) the TUN interface <paramref name="name"/>.</summary>
    public static unsafe TunDevice Open(string name)
    {
        var fd = Libc.Open("/dev/net/tun", Libc.ORdWr | Libc.OCloExec);
        if (fd < 0)
        {
            throw new IOException($"open /dev/net/tun failed: errno {Marshal.GetLastPInvokeError()}");
        }

        Span<byte> ifreq = stackalloc byte[Libc.IfReqSize];
        Libc.WriteIfReq(ifreq, name, Libc.IffTun | Libc.IffNoPi);
        fixed (byte* p = ifreq)
        {
            if (Libc.Ioctl(fd, Libc.TunSetIff, p) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                Libc.Close(fd);
                throw new IOException($"TUNSETIFF {name} failed: errno {errno}");
            }
        }

        return new TunDevice(name, fd);
    }

    /// <summary>Blocks until a packet arrives; returns its length (0 when the device was closed).</summary>
    public unsafe int Read(Span<byte> buffer)
    {
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            var fd = Volatile.Read(ref _fd);
            if (fd < 0)
            {
                return 0;
            }

            nint n;
            fixed (byte* p = buffer)
            {
                n = Libc.Read(fd, p, buffer.Length);
            }

            if (n >= 0)
            {
                return (int)n;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != Libc.EIntr && errno != Libc.EAgain)
            {
                throw new IOException($"read {Name} failed: errno {errno}");
            }
        }

        throw new IOException($"read {Name} interrupted 1000 times in a row");
    }

    /// <summary>Injects one packet; returns false when the kernel refused it (the packet is then dropped).</summary>
    public unsafe bool Write(ReadOnlySpan<byte> packet)
    {
        var fd = Volatile.Read(ref _fd);
        if (fd < 0)
        {
            return false;
        }

        fixed (byte* p = packet)
        {
            return Libc.Write(fd, p, packet.Length) == packet.Length;
        }
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            Libc.Close(fd);
        }
    }
}
