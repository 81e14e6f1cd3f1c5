using System.Globalization;
using System.Runtime.InteropServices;

namespace Mobility.Daemon.Access;

/// <summary>
/// The system's user and group database through libc (getpwuid_r, getpwnam_r, getgrnam_r,
/// getgrouplist), so that NSS sources (LDAP, sssd, systemd-userdb) count as much as /etc/passwd and
/// /etc/group. Nothing is cached: a user added to a group is admitted on their next connection.
/// </summary>
internal static partial class UserDatabase
{
    private const int ERANGE = 34;

    /// <summary>The largest buffer a lookup may grow to (a group with thousands of members needs a few hundred KiB).</summary>
    private const int MaxBuffer = 1 << 20;

    /// <summary>The most groups one user is looked up in (NGROUPS_MAX is 65536).</summary>
    private const int MaxGroups = 65536;

    /// <summary>The daemon's effective group id.</summary>
    public static uint EffectiveGroupId() => getegid();

    /// <summary>A user by name or number; null when unknown.</summary>
    public static uint? UserId(string user)
    {
        if (uint.TryParse(user, NumberStyles.None, CultureInfo.InvariantCulture, out var uid))
        {
            return uid;
        }

        return LookupPasswd(user, null) is { } entry ? entry.Uid : null;
    }

    /// <summary>A group by name or number; null when unknown.</summary>
    public static uint? GroupId(string group)
    {
        if (uint.TryParse(group, NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
        {
            return gid;
        }

        return WithBuffer(3 * IntPtr.Size + 8, (entry, buffer, length) =>
        {
            var error = getgrnam_r(group, entry, buffer, length, out var result);
            // struct group { char *gr_name; char *gr_passwd; gid_t gr_gid; char **gr_mem; }
            return (error, error == 0 && result != IntPtr.Zero ? (uint)Marshal.ReadInt32(entry, 2 * IntPtr.Size) : (uint?)null);
        });
    }

    /// <summary>The name and primary group of <paramref name="uid"/>; null when the database has no such user.</summary>
    public static (string Name, uint Uid, uint Gid)? User(uint uid) => LookupPasswd(null, uid);

    /// <summary>Every group <paramref name="user"/> belongs to: its primary group and the supplementary ones.</summary>
    public static uint[] GroupsOf(string user, uint primaryGroup)
    {
        var count = 64;
        while (true)
        {
            var groups = new uint[count];
            var n = count;
            if (getgrouplist(user, primaryGroup, groups, ref n) >= 0)
            {
                return groups[..Math.Min(n, count)];
            }

            if (n <= count || n > MaxGroups)
            {
                // The user is in more groups than any system allows: count only its primary group.
                return [primaryGroup];
            }

            count = n;
        }
    }

    private static (string Name, uint Uid, uint Gid)? LookupPasswd(string? name, uint? uid)
        => WithBuffer(7 * IntPtr.Size, (entry, buffer, length) =>
        {
            var error = name is not null
                ? getpwnam_r(name, entry, buffer, length, out var result)
                : getpwuid_r(uid!.Value, entry, buffer, length, out result);
            if (error != 0 || result == IntPtr.Zero)
            {
                return (error, ((string, uint, uint)?)null);
            }

            // struct passwd { char *pw_name; char *pw_passwd; uid_t pw_uid; gid_t pw_gid; ... }
            var found = Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(entry)) ?? "";
            return (0, (found, (uint)Marshal.ReadInt32(entry, 2 * IntPtr.Size), (uint)Marshal.ReadInt32(entry, 2 * IntPtr.Size + 4)));
        });

    private delegate (int Error, T? Result) Lookup<T>(IntPtr entry, IntPtr buffer, nuint length);

    /// <summary>Runs a reentrant lookup with an entry and a string buffer, growing the buffer while libc says ERANGE.</summary>
    private static T? WithBuffer<T>(int entrySize, Lookup<T> lookup)
    {
        var size = 4096;
        var entry = Marshal.AllocHGlobal(entrySize + 16);
        try
        {
            while (true)
            {
                var buffer = Marshal.AllocHGlobal(size);
                try
                {
                    var (error, result) = lookup(entry, buffer, (nuint)size);
                    if (error != ERANGE)
                    {
                        return result;
                    }
                }
                finally
                {
                    Marshal.FreeHGlobal(buffer);
                }

                if (size >= MaxBuffer)
                {
                    return default;
                }

                size *= 4;
            }
        }
        finally
        {
            Marshal.FreeHGlobal(entry);
        }
    }

#pragma warning disable SYSLIB1054 // DllImport keeps the project free of unsafe code; these signatures need no marshalling stubs.
    [DllImport("libc", SetLastError = true)]
    private static extern uint getegid();

    [DllImport("libc")]
    private static extern int getpwuid_r(uint uid, IntPtr pwd, IntPtr buffer, nuint length, out IntPtr result);

    [DllImport("libc")]
    private static extern int getpwnam_r([MarshalAs(UnmanagedType.LPUTF8Str)] string name, IntPtr pwd, IntPtr buffer, nuint length, out IntPtr result);

    [DllImport("libc")]
    private static extern int getgrnam_r([MarshalAs(UnmanagedType.LPUTF8Str)] string name, IntPtr grp, IntPtr buffer, nuint length, out IntPtr result);

    [DllImport("libc")]
    private static extern int getgrouplist([MarshalAs(UnmanagedType.LPUTF8Str)] string user, uint group, [In, Out] uint[] groups, ref int count);
#pragma warning restore SYSLIB1054
}
