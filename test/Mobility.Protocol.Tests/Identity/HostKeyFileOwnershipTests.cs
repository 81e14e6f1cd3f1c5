using System.Runtime.Versioning;

namespace Mobility.Protocol.Tests.Identity;

/// <summary>
/// A key file is trusted only when this user put it there: no symbolic links (O_NOFOLLOW, dangling
/// ones too), a regular file, owned by the effective user. Each refusal is one line naming the file.
/// </summary>
[UnsupportedOSPlatform("windows")]
public sealed class HostKeyFileOwnershipTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "mobility-keyfile-tests", Guid.NewGuid().ToString("N"));

    public HostKeyFileOwnershipTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string KeyPath => Path.Combine(_directory, "host.key");

    [Fact]
    public void Load_refuses_a_symbolic_link_to_a_good_key()
    {
        var real = Path.Combine(_directory, "real.key");
        using var key = HostKey.Generate();
        HostKeyFile.Save(key, real);
        File.CreateSymbolicLink(KeyPath, real);

        var e = Assert.Throws<UnauthorizedAccessException>(() => HostKeyFile.Load(KeyPath));

        Assert.Contains("symbolic link", e.Message, StringComparison.Ordinal);
        Assert.Contains(KeyPath, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void LoadOrCreate_on_a_dangling_symbolic_link_is_refused_in_one_line_and_writes_nothing_through_it()
    {
        var target = Path.Combine(_directory, "elsewhere", "planted.key");
        File.CreateSymbolicLink(KeyPath, target);

        var e = Assert.Throws<UnauthorizedAccessException>(() => HostKeyFile.LoadOrCreate(KeyPath, out _));

        Assert.Contains("symbolic link", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(File.Exists(target));
        Assert.False(Directory.Exists(Path.GetDirectoryName(target)));
    }

    [Fact]
    public void Save_without_overwrite_refuses_a_dangling_symbolic_link()
    {
        var target = Path.Combine(_directory, "planted.key");
        File.CreateSymbolicLink(KeyPath, target);
        using var key = HostKey.Generate();

        Assert.ThrowsAny<IOException>(() => HostKeyFile.Save(key, KeyPath));

        Assert.False(File.Exists(target));
    }

    [Fact]
    public void Load_refuses_a_folder_in_place_of_the_key()
    {
        Directory.CreateDirectory(KeyPath);

        var e = Assert.ThrowsAny<Exception>(() => HostKeyFile.Load(KeyPath));

        Assert.True(e is UnauthorizedAccessException or IOException, e.GetType().Name);
        Assert.Contains(KeyPath, e.Message, StringComparison.Ordinal);
    }

    [RootFact]
    public void Load_refuses_a_0600_key_owned_by_another_user()
    {
        using var key = HostKey.Generate();
        HostKeyFile.Save(key, KeyPath);
        File.SetUnixFileMode(KeyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Chown(KeyPath, 65534);

        var e = Assert.Throws<UnauthorizedAccessException>(() => HostKeyFile.Load(KeyPath));

        Assert.Contains("owned by uid 65534", e.Message, StringComparison.Ordinal);
        Assert.Contains(KeyPath, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnixFiles_tell_a_link_from_its_target()
    {
        var real = Path.Combine(_directory, "real");
        File.WriteAllText(real, "x");
        File.CreateSymbolicLink(KeyPath, real);

        Assert.Equal(UnixFileType.SymbolicLink, UnixFiles.LinkStatus(KeyPath)!.Value.Type);
        Assert.Equal(UnixFileType.Regular, UnixFiles.FollowStatus(KeyPath)!.Value.Type);
        Assert.Equal(UnixFiles.EffectiveUserId(), UnixFiles.FollowStatus(KeyPath)!.Value.Owner);
        Assert.Null(UnixFiles.LinkStatus(Path.Combine(_directory, "absent")));
    }

    private static void Chown(string path, int uid)
    {
        using var process = System.Diagnostics.Process.Start("chown", [uid.ToString(System.Globalization.CultureInfo.InvariantCulture), path])!;
        Assert.True(process.WaitForExit(TimeSpan.FromSeconds(30)), "chown did not finish");
        Assert.Equal(0, process.ExitCode);
    }
}

/// <summary>A test that gives files to another user (needs root).</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (OperatingSystem.IsWindows() || UnixFiles.EffectiveUserId() != 0)
        {
            Skip = "needs root to give a file to another user.";
        }
    }
}
