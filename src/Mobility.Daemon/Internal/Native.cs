using System.Runtime.InteropServices;

namespace Mobility.Daemon.Internal;

/// <summary>The few libc calls .NET has no API for.</summary>
internal static partial class Native
{
    /// <summary>The daemon's effective user id.</summary>
    public static uint EffectiveUserId() => OperatingSystem.IsWindows() ? 0 : geteuid();

    /// <summary>Changes the group of <paramref name="path"/>; the owner stays. Throws on failure.</summary>
    public static void ChangeGroup(string path, uint gid)
    {
        if (chown(path, uint.MaxValue, gid) != 0)
        {
            throw new IOException($"chown(\"{path}\", -1, {gid}) failed: errno {Marshal.GetLastPInvokeError()}.");
        }
    }

    /// <summary>Finds a group id by name (/etc/group) or number; null when unknown.</summary>
    public static uint? LookupGroup(string group)
    {
        if (uint.TryParse(group, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var gid))
        {
            return gid;
        }

        if (!File.Exists("/etc/group"))
        {
            return null;
        }

        foreach (var line in File.ReadLines("/etc/group"))
        {
            var fields = line.Split(':');
            if (fields.Length >= 3 && fields[0] == group &&
                uint.TryParse(fields[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out gid))
            {
                return gid;
            }
        }

        return null;
    }

    /// <summary>
    /// True when <paramref name="path"/> itself (not a link's target) is a Unix socket; false for anything
    /// else or nothing. statx has one layout on every architecture (stx_mode is the u16 at offset 28).
    /// </summary>
    public static bool IsSocket(string path)
    {
        const int AtFdCwd = -100;
        const int AtSymlinkNoFollow = 0x100;
        const uint StatxType = 0x1;
        const int SocketType = 0xC000; // S_IFSOCK
        const int TypeMask = 0xF000; // S_IFMT
        var buffer = new byte[256]; // sizeof(struct statx)
        if (statx(AtFdCwd, path, AtSymlinkNoFollow, StatxType, buffer) != 0)
        {
            return false;
        }

        var mode = BitConverter.ToUInt16(buffer, 28);
        return (mode & TypeMask) == SocketType;
    }

#pragma warning disable SYSLIB1054 // DllImport keeps the project free of unsafe code; these signatures need no marshalling stubs.
    [DllImport("libc", SetLastError = true)]
    private static extern uint geteuid();

    [DllImport("libc", SetLastError = true)]
    private static extern int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte[] buffer);

    [DllImport("libc", SetLastError = true)]
    private static extern int chown([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint owner, uint group);
#pragma warning restore SYSLIB1054
}
