using Mobility.Protocol.Wire;
using Mobility.Protocol.Identity;

namespace Mobility.Protocol.Records;

/// <summary>
/// A signed request to remove a GUID's record. It carries a version higher than the stored one,
/// which the GNS keeps as a tombstone, so neither the removal nor an older record can be replayed.
/// Wire form: u8 format, guid[20], u64 version, i64 issued-at (unix ms), signature[64].
/// </summary>
public sealed class GnsRemoval
{
    public const byte FormatVersion = 1;
    public const int EncodedSize = 1 + HostGuid.Size + 8 + 8 + HostKey.SignatureSize;
    private const int BodySize = EncodedSize - HostKey.SignatureSize;

    private readonly byte[] _encoded;

    private GnsRemoval(byte[] encoded) => _encoded = encoded;

    public required HostGuid Guid { get; init; }

    public required ulong Version { get; init; }

    public required DateTimeOffset IssuedAt { get; init; }

    public ReadOnlyMemory<byte> Encoded => _encoded;

    public static GnsRemoval Create(HostKey key, ulong version, DateTimeOffset? issuedAt = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        var issued = DateTimeOffset.FromUnixTimeMilliseconds((issuedAt ?? DateTimeOffset.UtcNow).ToUnixTimeMilliseconds());
        if (issued < DateTimeOffset.UnixEpoch)
        {
            // Read refuses negative times, so such a removal could never be decoded.
            throw new ArgumentOutOfRangeException(nameof(issuedAt), issuedAt, "A removal cannot be issued before 1970.");
        }

        var encoded = new byte[EncodedSize];
        var writer = new WireWriter(encoded);
        writer.WriteByte(FormatVersion);
        writer.WriteGuid(key.Guid);
        writer.WriteUInt64(version);
        writer.WriteInt64(issued.ToUnixTimeMilliseconds());
        key.Sign(SigningContext.Compose(SigningContext.GnsRemove, encoded.AsSpan(0, BodySize)), encoded.AsSpan(BodySize));
        return new GnsRemoval(encoded) { Guid = key.Guid, Version = version, IssuedAt = issued };
    }

    public static GnsRemoval Read(ref WireReader reader)
    {
        var start = reader.Position;
        reader.ReadFormat(FormatVersion, "removal");
        var guid = reader.ReadGuid();
        var version = reader.ReadUInt64();
        var issuedAt = reader.ReadIssuedAt();
        reader.ReadBytes(HostKey.SignatureSize);
        return new GnsRemoval(reader.Consumed[start..].ToArray()) { Guid = guid, Version = version, IssuedAt = issuedAt };
    }

    public static GnsRemoval Decode(ReadOnlySpan<byte> bytes)
    {
        var reader = new WireReader(bytes);
        var removal = Read(ref reader);
        reader.EnsureEnd(allowZeroPadding: false);
        return removal;
    }

    /// <summary>True when signed by the key whose raw public half is <paramref name="publicKey"/>, and that key is the GUID's.</summary>
    public bool Verify(ReadOnlySpan<byte> publicKey)
        => publicKey.Length == HostKey.PublicKeySize
           && HostGuid.FromPublicKey(publicKey) == Guid
           && Signatures.Verify(publicKey, SigningContext.Compose(SigningContext.GnsRemove, _encoded.AsSpan(0, BodySize)),
               _encoded.AsSpan(BodySize));
}
