namespace Mobility.Protocol.Identity;

/// <summary>
/// Key files: PEM-encoded PKCS#8 Ed25519 private keys (readable by OpenSSL), written atomically
/// with mode 0600 and refused on load when group or others may read or write them.
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
        if (!overwrite && File.Exists(full))
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

    /// <summary>Loads a key file, refusing one that group or others can access.</summary>
    public static HostKey Load(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"Key file '{full}' does not exist.", full);
        }

        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(full);
            if ((mode & TooOpen) != 0)
            {
                throw new UnauthorizedAccessException(
                    $"Key file '{full}' has mode {ToOctal(mode)}: it must not be accessible to group or others. Run 'chmod 600 {full}'.");
            }
        }

        var info = new FileInfo(full);
        if (info.Length > MaxFileSize)
        {
            throw new InvalidDataException($"Key file '{full}' is {info.Length} bytes; a key file is at most {MaxFileSize}.");
        }

        var pem = File.ReadAllBytes(full);
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

    /// <summary>Loads the key at <paramref name="path"/>, or creates and saves a new one.</summary>
    public static HostKey LoadOrCreate(string path, out bool created)
    {
        if (File.Exists(path))
        {
            created = false;
            return Load(path);
        }

        var key = HostKey.Generate();
        Save(key, path);
        created = true;
        return key;
    }

    private static string ToOctal(UnixFileMode mode) => Convert.ToString((int)mode & 0xFFF, 8).PadLeft(4, '0');
}
