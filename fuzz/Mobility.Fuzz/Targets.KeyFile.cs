using Mobility.Protocol.Identity;

namespace Mobility.Fuzz;

public static partial class Targets
{
    private static readonly Type[] KeyFileMalformed = [typeof(InvalidDataException)];

    /// <summary>The host key file (PEM, PKCS#8 Ed25519) as HostKeyFile.Load parses it, without its file-system checks.</summary>
    private static FuzzTarget KeyFile() => new("key-file",
        "HostKey.ImportPkcs8Pem (what HostKeyFile.Load parses after its size and mode checks), then sign, verify and export",
        KeyFileMalformed,
        input =>
        {
            if (input.Length > HostKeyFile.MaxFileSize)
            {
                // HostKeyFile.Load refuses a larger file before reading it.
                return FuzzOutcome.Rejected;
            }

            using var key = HostKey.ImportPkcs8Pem(input);
            var signature = key.Sign("fuzz"u8);
            Require(Signatures.Verify(key.PublicKeyBytes(), "fuzz"u8, signature), "An imported key's signature does not verify.");
            Require(key.Guid == HostGuid.FromPublicKey(key.PublicKeyBytes()), "An imported key's GUID is not its public key's.");
            using var again = HostKey.ImportPkcs8Pem(key.ExportPkcs8Pem());
            Require(again.PublicKeyBytes().AsSpan().SequenceEqual(key.PublicKeyBytes()), "An exported key does not import to the same key.");
            return FuzzOutcome.Accepted;
        },
        KeyFileSeeds);

    private static IEnumerable<FuzzSeed> KeyFileSeeds()
    {
        using var key = SeedKit.Key(5);
        var pem = key.ExportPkcs8Pem();
        yield return new("valid-pem", pem);
        yield return new("valid-pem-crlf", System.Text.Encoding.ASCII.GetBytes(System.Text.Encoding.ASCII.GetString(pem).ReplaceLineEndings("\r\n")));
        yield return new("edge-truncated", pem[..(pem.Length / 2)]);
    }
}
