using System.Net;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using Mobility.Protocol.Wire;

namespace Mobility.Protocol.Relay;

/// <summary>
/// Type 3: a host proves its GUID to a relay. It signs, with the key whose hash is its GUID, the
/// relay's nonce, its GUID and the relay endpoint it dialled, under the context
/// <c>mobility/relay-register/v1</c>; so a signature is good for one registration at one relay
/// (a relay that forwards its own challenge to a host cannot register that host elsewhere: the
/// endpoint would be its own).
/// </summary>
public sealed record RelayProof(HostGuid Guid, byte[] PublicKey, IPEndPoint Relay, byte[] Signature) : RelayMessage
{
    private const int AddressOffset = HeaderSize + HostGuid.Size + HostKey.PublicKeySize;

    public override RelayMessageType Type => RelayMessageType.Proof;

    public override int Size => AddressOffset + WireWriter.AddressSize(Relay.Address) + 2 + HostKey.SignatureSize;

    /// <summary>Answers <paramref name="nonce"/> with <paramref name="key"/> for the relay at <paramref name="relay"/> (the endpoint the host dialled).</summary>
    public static RelayProof Create(HostKey key, ReadOnlySpan<byte> nonce, IPEndPoint relay)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(relay);
        if (nonce.Length != NonceSize)
        {
            throw new ArgumentException($"A relay nonce is {NonceSize} bytes.", nameof(nonce));
        }

        var normalized = new IPEndPoint(Locator.Normalize(relay.Address), relay.Port);
        return new RelayProof(key.Guid, key.PublicKeyBytes(), normalized, key.Sign(SignedBytes(nonce, key.Guid, normalized)));
    }

    /// <summary>
    /// True when the public key hashes to <see cref="Guid"/> and the signature is that key's over
    /// <paramref name="nonce"/>, the GUID and <see cref="Relay"/>. The relay also checks that
    /// <see cref="Relay"/> is one of its own endpoints.
    /// </summary>
    public bool Verify(ReadOnlySpan<byte> nonce)
        => nonce.Length == NonceSize
           && PublicKey.Length == HostKey.PublicKeySize
           && HostGuid.FromPublicKey(PublicKey) == Guid
           && Signatures.Verify(PublicKey, SignedBytes(nonce, Guid, Relay), Signature);

    /// <summary>The bytes a host signs: the RelayRegister context, then nonce, GUID, address, port.</summary>
    public static byte[] SignedBytes(ReadOnlySpan<byte> nonce, HostGuid guid, IPEndPoint relay)
    {
        ArgumentNullException.ThrowIfNull(relay);
        Span<byte> body = stackalloc byte[NonceSize + HostGuid.Size + 17 + 2];
        var writer = new WireWriter(body);
        writer.WriteBytes(nonce);
        writer.WriteGuid(guid);
        writer.WriteAddress(relay.Address);
        writer.WriteUInt16(checked((ushort)relay.Port));
        return SigningContext.Compose(SigningContext.RelayRegister, writer.Written);
    }

    private protected override void WriteBody(ref WireWriter writer)
    {
        writer.WriteGuid(Guid);
        writer.WriteBytes(PublicKey);
        writer.WriteAddress(Relay.Address);
        writer.WriteUInt16(checked((ushort)Relay.Port));
        writer.WriteBytes(Signature);
    }

    /// <summary>The size of the Proof whose first bytes are <paramref name="seen"/>; null until its family byte arrived.</summary>
    internal static int? SizeFrom(ReadOnlySpan<byte> seen)
    {
        if (seen.Length <= AddressOffset)
        {
            return null;
        }

        var addressSize = seen[AddressOffset] switch
        {
            4 => 5,
            6 => 17,
            var family => throw new MalformedMessageException($"Unknown address family {family}."),
        };
        return AddressOffset + addressSize + 2 + HostKey.SignatureSize;
    }

    internal static RelayProof Read(ref WireReader body)
    {
        var guid = body.ReadGuid();
        var publicKey = body.ReadBytes(HostKey.PublicKeySize).ToArray();
        var address = body.ReadAddress();
        if (address.IsIPv4MappedToIPv6)
        {
            // One encoding per proof: an IPv4 endpoint is sent as family 4.
            throw new MalformedMessageException("An IPv4-mapped relay address must be sent as family 4.");
        }

        var port = body.ReadUInt16();
        var signature = body.ReadBytes(HostKey.SignatureSize).ToArray();
        return new RelayProof(guid, publicKey, new IPEndPoint(address, port), signature);
    }
}
