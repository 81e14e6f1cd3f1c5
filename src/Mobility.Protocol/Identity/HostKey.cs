using NSec.Cryptography;

namespace Mobility.Protocol.Identity;

/// <summary>
/// A host's Ed25519 key pair. The GUID is derived from the public half; the private half never
/// leaves this object except through <see cref="HostKeyFile"/>.
/// </summary>
public sealed class HostKey : IDisposable
{
    public const int PublicKeySize = 32;
    public const int SignatureSize = 64;

    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;
    private readonly Key _key;
    private readonly byte[] _publicKey;

    private HostKey(Key key)
    {
        _key = key;
        _publicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        Guid = HostGuid.FromPublicKey(_publicKey);
    }

    public HostGuid Guid { get; }

    /// <summary>The raw 32-byte public key.</summary>
    public ReadOnlySpan<byte> PublicKey => _publicKey;

    public byte[] PublicKeyBytes() => (byte[])_publicKey.Clone();

    public static HostKey Generate()
        => new(Key.Create(Algorithm, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }));

    /// <summary>Imports a raw 32-byte Ed25519 private key (seed); used for test vectors.</summary>
    public static HostKey FromSeed(ReadOnlySpan<byte> seed)
    {
        if (seed.Length != 32)
        {
            throw new ArgumentException("An Ed25519 seed is 32 bytes.", nameof(seed));
        }

        return new(Key.Import(Algorithm, seed, KeyBlobFormat.RawPrivateKey,
            new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }));
    }

    internal static HostKey ImportPkcs8Pem(ReadOnlySpan<byte> pem)
    {
        if (!Key.TryImport(Algorithm, pem, KeyBlobFormat.PkixPrivateKeyText, out var key,
                new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }) || key is null)
        {
            throw new InvalidDataException("The key file does not hold a PEM-encoded Ed25519 private key (PKCS#8).");
        }

        return new HostKey(key);
    }

    internal byte[] ExportPkcs8Pem() => _key.Export(KeyBlobFormat.PkixPrivateKeyText);

    /// <summary>Signs <paramref name="data"/> into <paramref name="signature"/> (64 bytes).</summary>
    public void Sign(ReadOnlySpan<byte> data, Span<byte> signature) => Algorithm.Sign(_key, data, signature);

    public byte[] Sign(ReadOnlySpan<byte> data) => Algorithm.Sign(_key, data);

    public void Dispose() => _key.Dispose();
}

/// <summary>Ed25519 verification against raw public keys.</summary>
public static class Signatures
{
    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;

    /// <summary>
    /// True when <paramref name="signature"/> is a valid Ed25519 signature of <paramref name="data"/>
    /// under the raw 32-byte <paramref name="publicKey"/>. Malformed keys and signatures give false.
    /// </summary>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (publicKey.Length != HostKey.PublicKeySize || signature.Length != HostKey.SignatureSize)
        {
            return false;
        }

        if (!PublicKey.TryImport(Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out var key) || key is null)
        {
            return false;
        }

        return Algorithm.Verify(key, data, signature);
    }
}
