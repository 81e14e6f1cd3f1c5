using System.Security.Cryptography;
using Mobility.Protocol.Wire;
using NSec.Cryptography;

namespace Mobility.Protocol.Transport;

/// <summary>HMAC-SHA256 over <c>u8 length || context || data</c> (the same domain separation as signatures).</summary>
public static class ResumeMac
{
    public static void Compute(ReadOnlySpan<byte> key, ReadOnlySpan<byte> context, ReadOnlySpan<byte> data, Span<byte> mac)
    {
        var composed = SigningContext.Compose(context, data);
        HMACSHA256.HashData(key, composed, mac);
    }

    public static bool Verify(ReadOnlySpan<byte> key, ReadOnlySpan<byte> context, ReadOnlySpan<byte> data, ReadOnlySpan<byte> mac)
    {
        if (mac.Length != TransportConstants.MacSize)
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[TransportConstants.MacSize];
        Compute(key, context, data, expected);
        return CryptographicOperations.FixedTimeEquals(expected, mac);
    }
}

/// <summary>An ephemeral X25519 key pair for one handshake.</summary>
public sealed class EphemeralKey : IDisposable
{
    private static readonly KeyAgreementAlgorithm Algorithm = KeyAgreementAlgorithm.X25519;
    private readonly Key _key;

    public EphemeralKey()
    {
        _key = Key.Create(Algorithm);
        PublicKey = _key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    public byte[] PublicKey { get; }

    /// <summary>
    /// Derives the session secrets from this key, the peer's ephemeral public key and the transcript
    /// hash. Throws <see cref="MalformedMessageException"/> when the peer's key is invalid (for
    /// example a low-order point giving an all-zero secret).
    /// </summary>
    public SessionSecrets DeriveSecrets(ReadOnlySpan<byte> peerPublicKey, ReadOnlySpan<byte> transcriptHash)
    {
        if (!NSec.Cryptography.PublicKey.TryImport(Algorithm, peerPublicKey, KeyBlobFormat.RawPublicKey, out var peer) || peer is null)
        {
            throw new MalformedMessageException("Invalid X25519 public key.");
        }

        SharedSecret? secret;
        try
        {
            secret = Algorithm.Agree(_key, peer);
        }
        catch (CryptographicException e)
        {
            throw new MalformedMessageException("X25519 agreement failed.", e);
        }

        if (secret is null)
        {
            throw new MalformedMessageException("X25519 agreement failed.");
        }

        using (secret)
        {
            return SessionSecrets.Derive(secret, transcriptHash);
        }
    }

    public void Dispose() => _key.Dispose();
}

/// <summary>
/// The three 32-byte secrets of a session: client-to-server frame key, server-to-client frame key,
/// resume key. HKDF-SHA256 with salt = transcript hash and info = "mobility/transport-keys/v1" || label.
/// </summary>
public sealed class SessionSecrets : IDisposable
{
    private SessionSecrets(byte[] clientToServer, byte[] serverToClient, byte[] resume)
    {
        ClientToServerKey = clientToServer;
        ServerToClientKey = serverToClient;
        ResumeKey = resume;
    }

    public byte[] ClientToServerKey { get; }

    public byte[] ServerToClientKey { get; }

    public byte[] ResumeKey { get; }

    internal static SessionSecrets Derive(SharedSecret secret, ReadOnlySpan<byte> transcriptHash)
    {
        var hkdf = KeyDerivationAlgorithm.HkdfSha256;
        return new SessionSecrets(
            hkdf.DeriveBytes(secret, transcriptHash, Info(" c2s"u8), TransportConstants.SymmetricKeySize),
            hkdf.DeriveBytes(secret, transcriptHash, Info(" s2c"u8), TransportConstants.SymmetricKeySize),
            hkdf.DeriveBytes(secret, transcriptHash, Info(" resume"u8), TransportConstants.SymmetricKeySize));
    }

    private static byte[] Info(ReadOnlySpan<byte> label)
    {
        var info = new byte[SigningContext.TransportKeys.Length + label.Length];
        SigningContext.TransportKeys.CopyTo(info);
        label.CopyTo(info.AsSpan(SigningContext.TransportKeys.Length));
        return info;
    }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(ClientToServerKey);
        CryptographicOperations.ZeroMemory(ServerToClientKey);
        CryptographicOperations.ZeroMemory(ResumeKey);
    }
}

/// <summary>Transcript hash and the signed payloads of the handshake.</summary>
public static class HandshakeTranscript
{
    public const int HashSize = 32;

    /// <summary>SHA-256(ClientHello bytes || ServerHello bytes without its signature).</summary>
    public static byte[] Hash(ReadOnlySpan<byte> clientHello, ReadOnlySpan<byte> serverHelloUnsigned)
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(clientHello);
        hash.AppendData(serverHelloUnsigned);
        return hash.GetHashAndReset();
    }

    public static byte[] ServerSigned(ReadOnlySpan<byte> transcriptHash) => SigningContext.Compose(SigningContext.HandshakeServer, transcriptHash);

    public static byte[] ClientSigned(ReadOnlySpan<byte> transcriptHash) => SigningContext.Compose(SigningContext.HandshakeClient, transcriptHash);
}
