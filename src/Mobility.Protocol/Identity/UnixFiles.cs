using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Mobility.Protocol.Identity;

/// <summary>What lstat/fstat say about a file: its type, owner and permission bits.</summary>
public readonly record struct UnixFileStatus(UnixFileType Type, uint Owner, uint Group, UnixFileMode Mode, long Size)
{
    /// <summary>Group or others may write it.</summary>
    public bool WritableByGroupOrOthers => (Mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0;

    /// <summary>The sticky bit: in such a folder only an entry's owner may rename or remove it (/tmp).</summary>
    public bool Sticky => (Mode & UnixFileMode.StickyBit) != 0;

    /// <summary>The permission bits as four octal digits, as ls and chmod show them.</summary>
    public string Octal => Convert.ToString((int)Mode & 0xFFF, 8).PadLeft(4, '0');
}

/// <summary>The file types of st_mode's S_IFMT bits that matter here.</summary>
public enum UnixFileType
{
    Other,
    Regular,
    Directory,
    SymbolicLink,
}

/// <summary>
/// The few POSIX file calls .NET does not offer: open with O_NOFOLLOW, the owner of a file (statx,
/// whose layout is the same on every Linux architecture), the effective user id.
/// </summary>
public static class UnixFiles
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxBasicStats = 0x7FF;

    /// <summary>sizeof(struct statx).</summary>
    private const int StatxSize = 256;

    private const int ENOENT = 2;
    private const int ENOTDIR = 20;
    private const int ELOOP = 40;

    private const int ORdOnly = 0;
    private const int ONonBlock = 0x800;
    private const int OCloExec = 0x80000;
    private const int ONoCtty = 0x100;

    /// <summary>O_NOFOLLOW: 0400000 on x86, 0100000 on ARM (asm-generic vs arch headers).</summary>
    private static int ONoFollow => RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x8000 : 0x20000;

    /// <summary>The daemon's (or tool's) effective user id; 0 off Unix.</summary>
    public static uint EffectiveUserId() => OperatingSystem.IsWindows() ? 0 : geteuid();

    /// <summary>lstat: the entry at <paramref name="path"/> itself (a symbolic link is not followed); null when nothing is there.</summary>
    public static UnixFileStatus? LinkStatus(string path) => Status(AtFdCwd, path, AtSymlinkNoFollow);

    /// <summary>stat: what <paramref name="path"/> leads to (symbolic links followed); null when nothing is there.</summary>
    public static UnixFileStatus? FollowStatus(string path) => Status(AtFdCwd, path, 0);

    /// <summary>fstat of an open handle.</summary>
    public static UnixFileStatus Status(SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            return Status((int)handle.DangerousGetHandle(), "", AtEmptyPath)
                   ?? throw new IOException("fstat of an open file found nothing.");
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Opens <paramref name="path"/> for reading with O_NOFOLLOW (a symbolic link as the last component
    /// is refused, dangling or not) and O_NONBLOCK (a FIFO planted there cannot block the open).
    /// </summary>
    public static SafeFileHandle OpenNoFollow(string path, string what)
    {
        var fd = open(path, ORdOnly | ONoFollow | OCloExec | ONonBlock | ONoCtty);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw errno switch
            {
                ELOOP => new UnauthorizedAccessException($"{what} '{path}' is a symbolic link; it is not followed: put the file itself there."),
                ENOENT or ENOTDIR => new FileNotFoundException($"{what} '{path}' does not exist.", path),
                _ => new IOException($"{what} '{path}' cannot be opened: {Marshal.GetPInvokeErrorMessage(errno)}."),
            };
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    private static UnixFileStatus? Status(int dirfd, string path, int flags)
    {
        var buffer = new byte[StatxSize];
        if (statx(dirfd, path, flags, StatxBasicStats, buffer) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno is ENOENT or ENOTDIR
                ? null
                : throw new IOException($"'{path}' cannot be examined: {Marshal.GetPInvokeErrorMessage(errno)}.");
        }

        // struct statx: u32 mask, u32 blksize, u64 attributes, u32 nlink, u32 uid, u32 gid, u16 mode, u16 pad, u64 ino, u64 size.
        var uid = BitConverter.ToUInt32(buffer, 20);
        var gid = BitConverter.ToUInt32(buffer, 24);
        var mode = BitConverter.ToUInt16(buffer, 28);
        var size = BitConverter.ToInt64(buffer, 40);
        var type = (mode & 0xF000) switch
        {
            0x8000 => UnixFileType.Regular,
            0x4000 => UnixFileType.Directory,
            0xA000 => UnixFileType.SymbolicLink,
            _ => UnixFileType.Other,
        };
        return new UnixFileStatus(type, uid, gid, (UnixFileMode)(mode & 0xFFF), size);
    }

#pragma warning disable SYSLIB1054 // DllImport keeps the project free of unsafe code; these signatures need no marshalling stubs.
    [DllImport("libc", SetLastError = true)]
    private static extern uint geteuid();

    [DllImport("libc", SetLastError = true)]
    private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte[] buffer);
#pragma warning restore SYSLIB1054
}
