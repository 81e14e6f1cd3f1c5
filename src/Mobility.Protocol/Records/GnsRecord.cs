using System.Collections.Immutable;
using System.Net;
using System.Text;
using Mobility.Protocol.Wire;
using Mobility.Protocol.Identity;

namespace Mobility.Protocol.Records;

/// <summary>
/// A host's signed GNS record: where the host (GUID) can be reached now. The owner signs the whole
/// record; the version is chosen by the owner and must strictly increase, so a replayed or rolled
/// back record is refused. See docs/protocol.md, "GNS record".
/// </summary>
public sealed class GnsRecord
{
    public const byte FormatVersion = 1;

    /// <summary>At most this many locators in one record (multihoming, observed, relays).</summary>
    public const int MaxLocators = 16;

    /// <summary>Upper bound of an encoded record: fixed part + longest name + most locators (IPv6) + signature.</summary>
    public const int MaxEncodedSize = FixedSize + HostName.MaxLength + (MaxLocators * (1 + 17 + 2)) + HostKey.SignatureSize;

    /// <summary>format + guid + key + version + issued + ttl + name length + locator count.</summary>
    private const int FixedSize = 1 + HostGuid.Size + HostKey.PublicKeySize + 8 + 8 + 4 + 1 + 1;

    private readonly byte[] _encoded;

    private GnsRecord(HostGuid guid, byte[] publicKey, ulong version, DateTimeOffset issuedAt, uint ttlSeconds,
        string? name, ImmutableArray<Locator> locators, byte[] encoded)
    {
        Guid = guid;
        PublicKeyBytes = publicKey;
        Version = version;
        IssuedAt = issuedAt;
        TtlSeconds = ttlSeconds;
        Name = name;
        Locators = locators;
        _encoded = encoded;
    }

    public HostGuid Guid { get; }

    public ReadOnlyMemory<byte> PublicKey => PublicKeyBytes;

    internal byte[] PublicKeyBytes { get; }

    public ulong Version { get; }

    /// <summary>When the owner signed the record (millisecond precision).</summary>
    public DateTimeOffset IssuedAt { get; }

    /// <summary>How long a resolver may cache this record; 0 means do not cache.</summary>
    public uint TtlSeconds { get; }

    /// <summary>Canonical (lowercase) name bound to the GUID, or null.</summary>
    public string? Name { get; }

    public ImmutableArray<Locator> Locators { get; }

    /// <summary>The exact signed wire form: body followed by the 64-byte signature.</summary>
    public ReadOnlyMemory<byte> Encoded => _encoded;

    public ReadOnlySpan<byte> Signature => _encoded.AsSpan(_encoded.Length - HostKey.SignatureSize);

    /// <summary>Builds and signs a record for <paramref name="key"/>.</summary>
    public static GnsRecord Create(HostKey key, ulong version, IEnumerable<Locator> locators, uint ttlSeconds = 30,
        string? name = null, DateTimeOffset? issuedAt = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(locators);
        string? canonicalName = null;
        if (name is not null)
        {
            canonicalName = HostName.Normalize(name, out var error) ?? throw new ArgumentException(error, nameof(name));
        }

        var list = locators.Select(l => l with { Address = Locator.Normalize(l.Address) }).ToImmutableArray();
        if (list.Length > MaxLocators)
        {
            throw new ArgumentException($"A record holds at most {MaxLocators} locators.", nameof(locators));
        }

        foreach (var l in list)
        {
            if (!Enum.IsDefined(l.Kind))
            {
                throw new ArgumentException($"Unknown locator kind {(byte)l.Kind}.", nameof(locators));
            }
        }

        var issued = DateTimeOffset.FromUnixTimeMilliseconds((issuedAt ?? DateTimeOffset.UtcNow).ToUnixTimeMilliseconds());
        if (issued < DateTimeOffset.UnixEpoch)
        {
            // Read refuses negative times, so such a record could never be decoded.
            throw new ArgumentOutOfRangeException(nameof(issuedAt), issuedAt, "A record cannot be issued before 1970.");
        }

        var publicKey = key.PublicKeyBytes();
        var bodySize = BodySize(canonicalName, list);
        var encoded = new byte[bodySize + HostKey.SignatureSize];
        var writer = new WireWriter(encoded);
        writer.WriteByte(FormatVersion);
        writer.WriteGuid(key.Guid);
        writer.WriteBytes(publicKey);
        writer.WriteUInt64(version);
        writer.WriteInt64(issued.ToUnixTimeMilliseconds());
        writer.WriteUInt32(ttlSeconds);
        writer.WriteShortBytes(canonicalName is null ? [] : Encoding.ASCII.GetBytes(canonicalName));
        writer.WriteByte((byte)list.Length);
        foreach (var l in list)
        {
            writer.WriteByte((byte)l.Kind);
            writer.WriteAddress(l.Address);
            writer.WriteUInt16(l.Port);
        }

        var signed = SigningContext.Compose(SigningContext.GnsRecord, encoded.AsSpan(0, bodySize));
        key.Sign(signed, encoded.AsSpan(bodySize));
        return new GnsRecord(key.Guid, publicKey, version, issued, ttlSeconds, canonicalName, list, encoded);
    }

    /// <summary>
    /// Parses a record from exactly the bytes of its wire form. Checks structure only: call
    /// <see cref="Verify"/> before trusting it.
    /// </summary>
    /// <exception cref="MalformedMessageException">The bytes are not a record.</exception>
    public static GnsRecord Decode(ReadOnlySpan<byte> bytes)
    {
        var reader = new WireReader(bytes);
        var record = Read(ref reader);
        reader.EnsureEnd(allowZeroPadding: false);
        return record;
    }

    /// <summary>Reads one record from <paramref name="reader"/> (which may hold more after it).</summary>
    public static GnsRecord Read(ref WireReader reader)
    {
        var start = reader.Position;
        reader.ReadFormat(FormatVersion, "record");
        var guid = reader.ReadGuid();
        var publicKey = reader.ReadBytes(HostKey.PublicKeySize).ToArray();
        var version = reader.ReadUInt64();
        var issuedAt = reader.ReadIssuedAt();

        var ttl = reader.ReadUInt32();
        var nameBytes = reader.ReadShortBytes(HostName.MaxLength);
        string? name = null;
        if (nameBytes.Length > 0)
        {
            var text = Encoding.ASCII.GetString(nameBytes);
            name = HostName.Normalize(text, out var error);
            if (name is null || name != text)
            {
                throw new MalformedMessageException($"Bad name: {error ?? "not in canonical form"}");
            }
        }

        var count = reader.ReadByte();
        if (count > MaxLocators)
        {
            throw new MalformedMessageException($"{count} locators; at most {MaxLocators}.");
        }

        var locators = ImmutableArray.CreateBuilder<Locator>(count);
        for (var i = 0; i < count; i++)
        {
            var kind = (LocatorKind)reader.ReadByte();
            if (!Enum.IsDefined(kind))
            {
                throw new MalformedMessageException($"Unknown locator kind {(byte)kind}.");
            }

            var address = reader.ReadAddress();
            if (address.IsIPv4MappedToIPv6)
            {
                throw new MalformedMessageException("IPv4-mapped addresses must be sent as IPv4.");
            }

            var port = reader.ReadUInt16();
            locators.Add(new Locator(address, port, kind));
        }

        reader.ReadBytes(HostKey.SignatureSize);
        var encoded = reader.Consumed[start..].ToArray();
        return new GnsRecord(guid, publicKey, version, issuedAt, ttl, name, locators.MoveToImmutable(), encoded);
    }

    /// <summary>
    /// True when the GUID is the hash of the public key and the signature is the key's over the
    /// record (proof of possession). Never trust a record for which this is false.
    /// </summary>
    public bool Verify()
    {
        if (HostGuid.FromPublicKey(PublicKeyBytes) != Guid)
        {
            return false;
        }

        var bodyLength = _encoded.Length - HostKey.SignatureSize;
        var signed = SigningContext.Compose(SigningContext.GnsRecord, _encoded.AsSpan(0, bodyLength));
        return Signatures.Verify(PublicKeyBytes, signed, Signature);
    }

    /// <summary>The record's locators that carry <paramref name="address"/>.</summary>
    public bool HasAddress(IPAddress address)
    {
        var normalized = Locator.Normalize(address);
        return Locators.Any(l => l.Address.Equals(normalized));
    }

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(Guid).Append(" v").Append(Version);
        if (Name is not null)
        {
            sb.Append(" name=").Append(Name);
        }

        sb.Append(" ttl=").Append(TtlSeconds).Append("s [").AppendJoin(", ", Locators).Append(']');
        return sb.ToString();
    }

    private static int BodySize(string? name, ImmutableArray<Locator> locators)
        => FixedSize + (name?.Length ?? 0) + locators.Sum(l => 1 + WireWriter.AddressSize(l.Address) + 2);
}
