namespace Mobility.Protocol.Identity;

/// <summary>
/// Key files: PEM-encoded PKCS#8 Ed25519 private keys (readable by OpenSSL), written atomically
/// with mode 0600; on load a key file must be a regular file (no symbolic link), owned by the
/// effective user and not accessible to group or others.
/// </summary>
public static class HostKeyFile
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode TooOpen =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Largest key file we read; a PKCS#8 Ed25519 PEM is about 120 bytes.</summary>
    public const int MaxFileSize = 16 * 1024;

    /// <summary>
    /// Writes <paramref name="key"/> to <paramref name="path"/>: a temporary file created 0600 in the
    /// same folder, flushed to disk, then renamed over the target. Refuses to overwrite unless asked.
    /// </summary>
    public static void Save(HostKey key, string path, bool overwrite = false)
    {
        ArgumentNullException.ThrowIfNull(key);
        var full = Path.GetFullPath(path);
        if (!overwrite && Present(full))
        {
            throw new IOException($"Key file '{full}' already exists; refusing to overwrite it.");
        }

        var directory = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(directory);
        var temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        var pem = key.ExportPkcs8Pem();
        try
        {
            var options = new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
            };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = OwnerOnly;
            }

            using (var stream = new FileStream(temp, options))
            {
                stream.Write(pem);
                stream.Flush(flushToDisk: true);
            }

            if (!OperatingSystem.IsWindows())
            {
                // The umask can only remove bits; make sure, and never leave wider bits behind.
                File.SetUnixFileMode(temp, OwnerOnly);
            }

            File.Move(temp, full, overwrite);
        }
        finally
        {
            Array.Clear(pem);
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    /// <summary>
    /// Loads a key file. Refused, each with a one-line message that names the file and the fix: a
    /// symbolic link (opened with O_NOFOLLOW, so a dangling one too), anything but a regular file, a
    /// file owned by another user than the caller's effective user (someone else may have planted it),
    /// and a file group or others can access.
    /// </summary>
    public static HostKey Load(string path)
    {
        var full = Path.GetFullPath(path);
        byte[] pem;
        if (OperatingSystem.IsWindows())
        {
            if (!File.Exists(full))
            {
                throw new FileNotFoundException($"Key file '{full}' does not exist.", full);
            }

            pem = ReadBounded(File.OpenHandle(full), full);
        }
        else
        {
            var handle = UnixFiles.OpenNoFollow(full, "Key file");
            try
            {
                var status = UnixFiles.Status(handle);
                if (status.Type != UnixFileType.Regular)
                {
                    throw new UnauthorizedAccessException($"Key file '{full}' is not a regular file.");
                }

                var euid = UnixFiles.EffectiveUserId();
                if (status.Owner != euid)
                {
                    throw new UnauthorizedAccessException(
                        $"Key file '{full}' is owned by uid {status.Owner}, not by this user (uid {euid}): another user may have planted it. Check it, then 'chown {euid} {full}'.");
                }

                if ((status.Mode & TooOpen) != 0)
                {
                    throw new UnauthorizedAccessException(
                        $"Key file '{full}' has mode {status.Octal}: it must not be accessible to group or others. Run 'chmod 600 {full}'.");
                }
            }
            catch
            {
                handle.Dispose();
                throw;
            }

            pem = ReadBounded(handle, full);
        }

        try
        {
            return HostKey.ImportPkcs8Pem(pem);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"Key file '{full}': {e.Message}", e);
        }
        finally
        {
            Array.Clear(pem);
        }
    }

    /// <summary>
    /// Loads the key at <paramref name="path"/>, or creates and saves a new one when nothing is there.
    /// Anything at the path (a symbolic link too, even a dangling one) is loaded, and so refused or used:
    /// a key is never written through a link.
    /// </summary>
    public static HostKey LoadOrCreate(string path, out bool created)
    {
        if (Present(Path.GetFullPath(path)))
        {
            created = false;
            return Load(path);
        }

        var key = HostKey.Generate();
        Save(key, path);
        created = true;
        return key;
    }

    /// <summary>Something (a file, a folder, a link, dangling or not) is at <paramref name="full"/>.</summary>
    private static bool Present(string full)
        => OperatingSystem.IsWindows() ? File.Exists(full) || Directory.Exists(full) : UnixFiles.LinkStatus(full) is not null;

    /// <summary>Reads at most <see cref="MaxFileSize"/> bytes from <paramref name="handle"/> (which it disposes); a longer file is refused.</summary>
    private static byte[] ReadBounded(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string full)
    {
        using (handle)
        {
            var buffer = new byte[MaxFileSize + 1];
            var filled = 0;
            int read;
            while (filled < buffer.Length && (read = RandomAccess.Read(handle, buffer.AsSpan(filled), filled)) > 0)
            {
                filled += read;
            }

            if (filled > MaxFileSize)
            {
                Array.Clear(buffer);
                throw new InvalidDataException($"Key file '{full}' is larger than {MaxFileSize} bytes; a key file is at most {MaxFileSize}.");
            }

            var pem = buffer.AsSpan(0, filled).ToArray();
            Array.Clear(buffer);
            return pem;
        }
    }

}
