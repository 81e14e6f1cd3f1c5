using System.Runtime.Versioning;
using System.Security.Cryptography;

namespace Mobility.Protocol.Tests.Identity;

// Key files are protected by Unix file modes; the daemons run on Linux only.
[UnsupportedOSPlatform("windows")]
public sealed class HostKeyFileTests : IDisposable
{
    /// <summary>The RFC 8032 TEST 1 seed as PKCS#8 PEM, written by Python's <c>cryptography</c> package.</summary>
    private const string Test1Pem =
        "-----BEGIN PRIVATE KEY-----\n" +
        "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n" +
        "-----END PRIVATE KEY-----\n";

    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly string _directory;

    public HostKeyFileTests()
    {
        _directory = Path.Combine(Path.GetTempPath(), "mobility-keyfile-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string KeyPath => Path.Combine(_directory, "host.key");

    [Fact]
    public void Saved_key_loads_back_with_the_same_identity_and_signatures()
    {
        using var key = Test1Key();

        HostKeyFile.Save(key, KeyPath);
        using var loaded = HostKeyFile.Load(KeyPath);

        Assert.Equal(key.Guid, loaded.Guid);
        Assert.Equal(key.PublicKeyBytes(), loaded.PublicKeyBytes());
        Assert.Equal(Rfc8032Test1Signature, Convert.ToHexStringLower(loaded.Sign([])));
    }

    [Fact]
    public void Key_file_is_pkcs8_pem_holding_the_seed()
    {
        using var key = Test1Key();

        HostKeyFile.Save(key, KeyPath);

        var text = File.ReadAllText(KeyPath).ReplaceLineEndings("\n");
        Assert.Equal(Test1Pem, text.EndsWith('\n') ? text : text + "\n");
    }

    [Fact]
    public void Pem_written_by_another_implementation_loads()
    {
        File.WriteAllText(KeyPath, Test1Pem);
        File.SetUnixFileMode(KeyPath, OwnerReadWrite);

        using var key = HostKeyFile.Load(KeyPath);

        Assert.Equal(HostGuid.Parse(Test1Guid), key.Guid);
    }

    [Fact]
    public void Saved_key_file_has_mode_0600()
    {
        using var key = HostKey.Generate();

        HostKeyFile.Save(key, KeyPath);

        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(KeyPath));
    }

    [Fact]
    public void Save_leaves_no_temporary_file_behind()
    {
        using var key = HostKey.Generate();

        HostKeyFile.Save(key, KeyPath);
        HostKeyFile.Save(key, KeyPath, overwrite: true);

        Assert.Equal(["host.key"], Directory.GetFileSystemEntries(_directory).Select(Path.GetFileName));
    }

    [Fact]
    public void Save_that_fails_at_the_rename_removes_its_temporary_file()
    {
        using var key = HostKey.Generate();
        Directory.CreateDirectory(KeyPath); // the target name is taken by a directory

        Assert.ThrowsAny<IOException>(() => HostKeyFile.Save(key, KeyPath));

        Assert.Equal(["host.key"], Directory.GetFileSystemEntries(_directory).Select(Path.GetFileName));
        Assert.Empty(Directory.GetFileSystemEntries(KeyPath));
    }

    [Fact]
    public void Save_refuses_to_overwrite_and_leaves_the_existing_file_untouched()
    {
        using var first = HostKey.Generate();
        using var second = HostKey.Generate();
        HostKeyFile.Save(first, KeyPath);
        var before = File.ReadAllBytes(KeyPath);

        var e = Assert.Throws<IOException>(() => HostKeyFile.Save(second, KeyPath));

        Assert.Contains("already exists", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(KeyPath));
        using var loaded = HostKeyFile.Load(KeyPath);
        Assert.Equal(first.Guid, loaded.Guid);
    }

    [Fact]
    public void Save_with_overwrite_replaces_the_key_and_keeps_mode_0600()
    {
        using var first = HostKey.Generate();
        using var second = HostKey.Generate();
        HostKeyFile.Save(first, KeyPath);
        File.SetUnixFileMode(KeyPath, OwnerReadWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        HostKeyFile.Save(second, KeyPath, overwrite: true);

        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(KeyPath));
        using var loaded = HostKeyFile.Load(KeyPath);
        Assert.Equal(second.Guid, loaded.Guid);
    }

    [Fact]
    public void Save_creates_missing_folders()
    {
        using var key = HostKey.Generate();
        var path = Path.Combine(_directory, "a", "b", "host.key");

        HostKeyFile.Save(key, path);

        using var loaded = HostKeyFile.Load(path);
        Assert.Equal(key.Guid, loaded.Guid);
    }

    [Theory]
    [InlineData("640")]
    [InlineData("604")]
    [InlineData("644")]
    [InlineData("660")]
    [InlineData("606")]
    [InlineData("610")]
    [InlineData("601")]
    [InlineData("666")]
    [InlineData("777")]
    public void Load_refuses_a_key_file_group_or_others_can_access_and_says_how_to_fix_it(string octal)
    {
        using var key = HostKey.Generate();
        HostKeyFile.Save(key, KeyPath);
        File.SetUnixFileMode(KeyPath, (UnixFileMode)Convert.ToInt32(octal, 8));

        var e = Assert.Throws<UnauthorizedAccessException>(() => HostKeyFile.Load(KeyPath));

        Assert.Contains("0" + octal, e.Message, StringComparison.Ordinal);
        Assert.Contains("group or others", e.Message, StringComparison.Ordinal);
        Assert.Contains("chmod 600", e.Message, StringComparison.Ordinal);
        Assert.Contains(KeyPath, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("600")]
    [InlineData("400")]
    [InlineData("700")]
    public void Load_accepts_a_key_file_only_the_owner_can_access(string octal)
    {
        using var key = HostKey.Generate();
        HostKeyFile.Save(key, KeyPath);
        File.SetUnixFileMode(KeyPath, (UnixFileMode)Convert.ToInt32(octal, 8));

        using var loaded = HostKeyFile.Load(KeyPath);

        Assert.Equal(key.Guid, loaded.Guid);
    }

    [Fact]
    public void Load_of_a_missing_file_names_the_file()
    {
        var e = Assert.Throws<FileNotFoundException>(() => HostKeyFile.Load(KeyPath));

        Assert.Contains(KeyPath, e.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> NotEd25519KeyFiles() => new()
    {
        { "empty", "" },
        { "text", "hello, world\n" },
        { "random base64", "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n-----END PRIVATE KEY-----\n" },
        { "truncated pem", Test1Pem[..40] },
        { "public key", "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPaoyMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n" },
        { "P-256 key", ECDsa.Create(ECCurve.NamedCurves.nistP256).ExportPkcs8PrivateKeyPem() },
        { "RSA key", RSA.Create(1024).ExportPkcs8PrivateKeyPem() },
    };

    [Theory]
    [MemberData(nameof(NotEd25519KeyFiles))]
    public void Load_of_a_file_that_is_not_an_ed25519_pkcs8_key_is_refused_as_invalid_data(string what, string content)
    {
        File.WriteAllText(KeyPath, content);
        File.SetUnixFileMode(KeyPath, OwnerReadWrite);

        var e = Assert.Throws<InvalidDataException>(() => HostKeyFile.Load(KeyPath));

        Assert.Contains(KeyPath, e.Message, StringComparison.Ordinal);
        _ = what; // names the case in the test runner's output
    }

    [Fact]
    public void Load_refuses_a_file_larger_than_the_limit_without_reading_it_as_a_key()
    {
        File.WriteAllText(KeyPath, Test1Pem + new string('#', HostKeyFile.MaxFileSize));
        File.SetUnixFileMode(KeyPath, OwnerReadWrite);

        var e = Assert.Throws<InvalidDataException>(() => HostKeyFile.Load(KeyPath));

        Assert.Contains("at most", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadOrCreate_creates_once_then_loads_the_same_key()
    {
        using var created = HostKeyFile.LoadOrCreate(KeyPath, out var wasCreated);
        using var loaded = HostKeyFile.LoadOrCreate(KeyPath, out var wasCreatedAgain);

        Assert.True(wasCreated);
        Assert.False(wasCreatedAgain);
        Assert.Equal(created.Guid, loaded.Guid);
        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(KeyPath));
    }
}
