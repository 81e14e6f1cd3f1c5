using System.Runtime.InteropServices;

namespace Mobility.Netlab.Interop;

/// <summary>The few libc calls the harness needs: TUN devices and entering a network namespace.</summary>
internal static partial class Libc
{
    public const int ORdWr = 2;
    public const int OCloExec = 0x80000;

    /// <summary><c>_IOW('T', 202, int)</c> from linux/if_tun.h.</summary>
    public const ulong TunSetIff = 0x400454ca;
    public const short IffTun = 0x0001;
    public const short IffNoPi = 0x1000;

    /// <summary><c>CLONE_NEWNET</c> from linux/sched.h.</summary>
    public const int CloneNewNet = 0x40000000;

    public const int EIntr = 4;
    public const int EAgain = 11;

    /// <summary><c>IFNAMSIZ</c>: interface names are at most 15 bytes plus the terminating zero.</summary>
    public const int IfNameSize = 16;

    /// <summary><c>sizeof(struct ifreq)</c> on 64-bit Linux: 16-byte name plus a 24-byte union.</summary>
    public const int IfReqSize = 40;

    /// <summary>Offset of <c>ifr_flags</c> (a short) inside <c>struct ifreq</c>.</summary>
    public const int IfReqFlagsOffset = 16;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static unsafe partial int Ioctl(int fd, ulong request, byte* argp);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static unsafe partial nint Read(int fd, byte* buf, nint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static unsafe partial nint Write(int fd, byte* buf, nint count);

    public const int AfInet = 2;

    public const int AfInet6 = 10;

    public const int SockStream = 1;
    public const int SockCloExec = 0x80000;

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    public const int SigTerm = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int nstype);

    /// <summary>
    /// Fills a <c>struct ifreq</c> for <c>TUNSETIFF</c>: the name (at most 15 bytes, zero terminated) in the
    /// first 16 bytes, the flags as a native-endian short at offset 16, zeros elsewhere.
    /// </summary>
    public static void WriteIfReq(Span<byte> ifreq, string name, short flags)
    {
        if (ifreq.Length != IfReqSize)
        {
            throw new ArgumentException($"struct ifreq is {IfReqSize} bytes", nameof(ifreq));
        }

        var count = System.Text.Encoding.ASCII.GetByteCount(name);
        if (count == 0 || count >= IfNameSize)
        {
            throw new ArgumentException($"interface name '{name}' must be 1..{IfNameSize - 1} bytes", nameof(name));
        }

        ifreq.Clear();
        System.Text.Encoding.ASCII.GetBytes(name, ifreq);
        MemoryMarshal.Write(ifreq[IfReqFlagsOffset..], in flags);
    }
}
