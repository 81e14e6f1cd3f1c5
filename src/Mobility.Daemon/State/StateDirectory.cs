using Mobility.Protocol.Identity;

namespace Mobility.Daemon.State;

/// <summary>
/// The state folder holds the host key, so only the daemon's user may control it (OpenSSH's
/// StrictModes, secure_filename): it must be a real folder (not a symbolic link), owned by the
/// daemon's effective user and not writable by group or others; every folder above it must be owned
/// by root or that user and not writable by group or others unless it is sticky (/tmp), so that no
/// one else can rename it away and put their own in its place. A missing state folder is created 0755.
/// Every refusal is an <see cref="UnauthorizedAccessException"/> with a one-line message that says the fix.
/// </summary>
public static class StateDirectory
{
    private const UnixFileMode CreateMode =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>Checks (creating it when missing) the state folder; returns its full path.</summary>
    public static string Secure(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(full);
            return full;
        }

        var euid = UnixFiles.EffectiveUserId();
        CheckAncestors(full, euid);
        var status = UnixFiles.LinkStatus(full);
        if (status is null)
        {
            Directory.CreateDirectory(full, CreateMode);
            status = UnixFiles.LinkStatus(full);
        }

        switch (status)
        {
            case null:
                throw new IOException($"State folder '{full}' could not be created.");
            case { Type: UnixFileType.SymbolicLink }:
                throw new UnauthorizedAccessException(
                    $"State folder '{full}' is a symbolic link; it is not followed: give the real folder ('{Resolve(full)}') as the state folder.");
            case { Type: not UnixFileType.Directory }:
                throw new UnauthorizedAccessException($"State folder '{full}' is not a folder.");
            case { } s when s.Owner != euid:
                throw new UnauthorizedAccessException(
                    $"State folder '{full}' is owned by uid {s.Owner}, not by the daemon's user (uid {euid}): another user controls it. Check its contents, then 'chown -R {euid} {full}'.");
            case { WritableByGroupOrOthers: true } s:
                throw new UnauthorizedAccessException(
                    $"State folder '{full}' has mode {s.Octal}: group or others may write it (and plant a key). Run 'chmod go-w {full}'.");
        }

        return full;
    }

    /// <summary>Every folder above <paramref name="full"/>, from the root down (symbolic links in them followed, to what they lead to).</summary>
    private static void CheckAncestors(string full, uint euid)
    {
        var ancestors = new List<string>();
        for (var parent = Path.GetDirectoryName(full); !string.IsNullOrEmpty(parent); parent = Path.GetDirectoryName(parent))
        {
            ancestors.Add(parent);
        }

        ancestors.Reverse();
        foreach (var folder in ancestors)
        {
            if (UnixFiles.FollowStatus(folder) is not { } status)
            {
                // Missing from here down: Secure creates them, owned by the daemon's user.
                return;
            }

            if (status.Type != UnixFileType.Directory)
            {
                throw new UnauthorizedAccessException($"State folder '{full}': '{folder}' is not a folder.");
            }

            if (status.Owner != 0 && status.Owner != euid)
            {
                throw new UnauthorizedAccessException(
                    $"State folder '{full}': the folder above it, '{folder}', is owned by uid {status.Owner}, who could replace the state folder; it must be owned by root or the daemon's user (uid {euid}).");
            }

            if (status.WritableByGroupOrOthers && !status.Sticky)
            {
                throw new UnauthorizedAccessException(
                    $"State folder '{full}': the folder above it, '{folder}', has mode {status.Octal}: group or others could replace the state folder. Run 'chmod go-w {folder}' (or 'chmod +t', as on /tmp).");
            }
        }
    }

    private static string Resolve(string link)
    {
        try
        {
            return new DirectoryInfo(link).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? link;
        }
        catch (IOException)
        {
            return link;
        }
    }
}
