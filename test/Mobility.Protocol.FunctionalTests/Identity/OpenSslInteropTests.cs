using System.Runtime.Versioning;
using Mobility.Protocol.Identity;

namespace Mobility.Protocol.FunctionalTests.Identity;

/// <summary>Key files against the real openssl: it reads ours, we read its, and the signatures agree.</summary>
// Key files are protected by Unix file modes; the daemons run on Linux only.
[UnsupportedOSPlatform("windows")]
public sealed class OpenSslInteropTests : IDisposable
{
    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly string _directory = Directory.CreateTempSubdirectory("mobility-keyfile-tests-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string KeyPath => Path.Combine(_directory, "host.key");

    [ToolFact("openssl", "openssl")]
    public async Task Key_file_is_readable_by_openssl_which_derives_the_same_public_key()
    {
        using var key = HostKey.Generate();
        HostKeyFile.Save(key, KeyPath);

        var check = await Tool.RunBinaryAsync("openssl", ["pkey", "-in", KeyPath, "-noout"]);
        Assert.True(check.ExitCode == 0, check.Stderr);

        var der = await Tool.RunBinaryAsync("openssl", ["pkey", "-in", KeyPath, "-pubout", "-outform", "DER"]);
        Assert.True(der.ExitCode == 0, der.Stderr);
        Assert.Equal(key.PublicKeyBytes(), der.Stdout[^32..]);
    }

    [ToolFact("openssl", "openssl")]
    public async Task Key_generated_by_openssl_loads_and_its_openssl_signature_verifies()
    {
        var generated = await Tool.RunBinaryAsync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", KeyPath]);
        Assert.True(generated.ExitCode == 0, generated.Stderr);
        File.SetUnixFileMode(KeyPath, OwnerReadWrite);
        var message = Path.Combine(_directory, "message");
        File.WriteAllBytes(message, "signed by openssl"u8.ToArray());

        var signature = await Tool.RunBinaryAsync("openssl", ["pkeyutl", "-sign", "-rawin", "-inkey", KeyPath, "-in", message]);
        Assert.True(signature.ExitCode == 0, signature.Stderr);

        using var key = HostKeyFile.Load(KeyPath);
        Assert.True(Signatures.Verify(key.PublicKey, "signed by openssl"u8, signature.Stdout));
        Assert.Equal(signature.Stdout, key.Sign("signed by openssl"u8));
    }
}
