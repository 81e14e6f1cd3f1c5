using System.Net;
using System.Security.Cryptography;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using Mobility.Protocol.Wire;

namespace Mobility.Protocol.Challenge;

/// <summary>Message types of the challenge protocol.</summary>
public enum ChallengeMessageType : byte
{
    Request = 0x01,
    Response = 0x81,
}

/// <summary>
/// "Prove that you hold the key of <see cref="Expected"/>": sent by a challenger to the control port
/// of the address it wants to verify. The nonce is fresh for every challenge.
/// </summary>
public sealed record ChallengeRequest(ReadOnlyMemory<byte> Nonce, HostGuid Challenger, HostGuid Expected)
{
    /// <summary>A request with a fresh random nonce.</summary>
    public static ChallengeRequest Create(HostGuid challenger, HostGuid expected)
        => new(RandomNumberGenerator.GetBytes(ChallengeDatagram.NonceSize), challenger, expected);
}

/// <summary>
/// The answer to a <see cref="ChallengeRequest"/>: the responder's GUID and public key, the address
/// and port at which the request reached it, and its signature over
/// <c>Challenge context || nonce || challenger GUID || responder GUID || reached-at</c>.
/// </summary>
public sealed class ChallengeResponse
{
    private readonly byte[] _publicKey;
    private readonly byte[] _signature;
    private readonly byte[] _nonce;

    private ChallengeResponse(byte[] nonce, HostGuid challenger, HostGuid responder, byte[] publicKey, IPEndPoint reachedAt, byte[] signature)
    {
        _nonce = nonce;
        Challenger = challenger;
        Responder = responder;
        _publicKey = publicKey;
        ReachedAt = reachedAt;
        _signature = signature;
    }

    public ReadOnlyMemory<byte> Nonce => _nonce;

    /// <summary>The challenger GUID the responder signed for (echoed from the request).</summary>
    public HostGuid Challenger { get; }

    public HostGuid Responder { get; }

    public ReadOnlyMemory<byte> PublicKey => _publicKey;

    /// <summary>The local address and port at which the responder received the request.</summary>
    public IPEndPoint ReachedAt { get; }

    public ReadOnlyMemory<byte> Signature => _signature;

    /// <summary>Answers <paramref name="request"/> with <paramref name="key"/>, stating where the request arrived.</summary>
    public static ChallengeResponse Create(HostKey key, ChallengeRequest request, IPEndPoint reachedAt)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(reachedAt);
        if (request.Nonce.Length != ChallengeDatagram.NonceSize)
        {
            throw new ArgumentException($"A nonce is {ChallengeDatagram.NonceSize} bytes.", nameof(request));
        }

        var normalized = new IPEndPoint(Locator.Normalize(reachedAt.Address), reachedAt.Port);
        var nonce = request.Nonce.ToArray();
        var signature = key.Sign(SignedBytes(nonce, request.Challenger, key.Guid, normalized));
        return new ChallengeResponse(nonce, request.Challenger, key.Guid, key.PublicKeyBytes(), normalized, signature);
    }

    /// <summary>
    /// True when the public key hashes to <see cref="Responder"/> and the signature is that key's over
    /// the nonce, both GUIDs and the reached-at endpoint. Says nothing about freshness or addresses:
    /// the challenger checks those against its outstanding challenge.
    /// </summary>
    public bool Verify()
        => HostGuid.FromPublicKey(_publicKey) == Responder
           && Signatures.Verify(_publicKey, SignedBytes(_nonce, Challenger, Responder, ReachedAt), _signature);

    /// <summary>True when the public key is the one whose hash is <see cref="Responder"/>.</summary>
    public bool KeyMatchesResponder() => HostGuid.FromPublicKey(_publicKey) == Responder;

    internal static ChallengeResponse FromParts(byte[] nonce, HostGuid challenger, HostGuid responder, byte[] publicKey, IPEndPoint reachedAt, byte[] signature)
        => new(nonce, challenger, responder, publicKey, reachedAt, signature);

    /// <summary>The bytes the responder signs: the Challenge context, then the body.</summary>
    public static byte[] SignedBytes(ReadOnlySpan<byte> nonce, HostGuid challenger, HostGuid responder, IPEndPoint reachedAt)
    {
        ArgumentNullException.ThrowIfNull(reachedAt);
        Span<byte> body = stackalloc byte[ChallengeDatagram.NonceSize + (2 * HostGuid.Size) + 17 + 2];
        var writer = new WireWriter(body);
        writer.WriteBytes(nonce);
        writer.WriteGuid(challenger);
        writer.WriteGuid(responder);
        writer.WriteAddress(reachedAt.Address);
        writer.WriteUInt16(checked((ushort)reachedAt.Port));
        return SigningContext.Compose(SigningContext.Challenge, writer.Written);
    }
}

/// <summary>
/// Reader and writer of the challenge datagrams (docs/mobilityd.md, "Challenge protocol"). One
/// request datagram, one response datagram. Requests are zero-padded to <see cref="RequestSize"/>
/// and a responder ignores shorter ones, so a response (at most <see cref="MaxResponseSize"/>) is
/// never more than <see cref="AmplificationFactor"/> times the request that caused it.
/// </summary>
public static class ChallengeDatagram
{
    public const byte ProtocolVersion = 1;

    /// <summary>"MC", version, type.</summary>
    public const int HeaderSize = 4;

    /// <summary>Fresh random bytes per challenge: 256 bits, so guessing or reusing one is hopeless.</summary>
    public const int NonceSize = 32;

    /// <summary>A response is at most this many times the size of its request (as QUIC's anti-amplification limit).</summary>
    public const int AmplificationFactor = 3;

    /// <summary>Header, nonce, challenger GUID, expected GUID.</summary>
    public const int RequestBodyEnd = HeaderSize + NonceSize + (2 * HostGuid.Size);

    /// <summary>Header, nonce, challenger, responder, key, reached-at (IPv6 + port), signature.</summary>
    public const int MaxResponseSize = HeaderSize + NonceSize + (2 * HostGuid.Size) + HostKey.PublicKeySize + 17 + 2 + HostKey.SignatureSize;

    /// <summary>
    /// Size of every request on the wire: the 76-byte body plus zero padding, rounded up to 128 bytes.
    /// 3 x 128 = 384 leaves room for the largest response (<see cref="MaxResponseSize"/> = 191) and for
    /// extensions of later versions without changing the request size.
    /// </summary>
    public const int RequestSize = 128;

    /// <summary>Largest datagram either side accepts: anything larger is not ours.</summary>
    public const int MaxDatagramSize = 512;

    private const byte Magic0 = (byte)'M';
    private const byte Magic1 = (byte)'C';

    /// <summary>
    /// Reads the 4-byte header. False means "not a challenge datagram" (too short, wrong magic): drop
    /// it. Another version is returned as is; the parsers refuse it.
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> datagram, out byte version, out ChallengeMessageType type)
    {
        version = 0;
        type = 0;
        if (datagram.Length < HeaderSize || datagram[0] != Magic0 || datagram[1] != Magic1)
        {
            return false;
        }

        version = datagram[2];
        type = (ChallengeMessageType)datagram[3];
        return true;
    }

    /// <summary>The padded request datagram (<see cref="RequestSize"/> bytes).</summary>
    public static byte[] WriteRequest(ChallengeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Nonce.Length != NonceSize)
        {
            throw new ArgumentException($"A nonce is {NonceSize} bytes.", nameof(request));
        }

        var buffer = new byte[RequestSize];
        var writer = Header(buffer, ChallengeMessageType.Request);
        writer.WriteBytes(request.Nonce.Span);
        writer.WriteGuid(request.Challenger);
        writer.WriteGuid(request.Expected);
        return buffer;
    }

    /// <summary>Parses a request, refusing one shorter than <see cref="RequestSize"/> (it would allow amplification).</summary>
    /// <exception cref="MalformedMessageException">Not a valid version-1 request.</exception>
    public static ChallengeRequest ParseRequest(ReadOnlySpan<byte> datagram)
    {
        CheckHeader(datagram, ChallengeMessageType.Request);
        if (datagram.Length < RequestSize)
        {
            throw new MalformedMessageException($"Request of {datagram.Length} bytes; requests are padded to {RequestSize}.");
        }

        var reader = new WireReader(datagram[HeaderSize..]);
        var nonce = reader.ReadBytes(NonceSize).ToArray();
        var challenger = reader.ReadGuid();
        var expected = reader.ReadGuid();
        reader.EnsureEnd(allowZeroPadding: true);
        return new ChallengeRequest(nonce, challenger, expected);
    }

    /// <summary>Writes <paramref name="response"/>; the result is at most <see cref="MaxResponseSize"/> bytes.</summary>
    public static byte[] WriteResponse(ChallengeResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        var size = HeaderSize + NonceSize + (2 * HostGuid.Size) + HostKey.PublicKeySize
                   + WireWriter.AddressSize(response.ReachedAt.Address) + 2 + HostKey.SignatureSize;
        var buffer = new byte[size];
        var writer = Header(buffer, ChallengeMessageType.Response);
        writer.WriteBytes(response.Nonce.Span);
        writer.WriteGuid(response.Challenger);
        writer.WriteGuid(response.Responder);
        writer.WriteBytes(response.PublicKey.Span);
        writer.WriteAddress(response.ReachedAt.Address);
        writer.WriteUInt16((ushort)response.ReachedAt.Port);
        writer.WriteBytes(response.Signature.Span);
        return buffer;
    }

    /// <summary>Parses a response (structure only: call <see cref="ChallengeResponse.Verify"/>).</summary>
    /// <exception cref="MalformedMessageException">Not a valid version-1 response.</exception>
    public static ChallengeResponse ParseResponse(ReadOnlySpan<byte> datagram)
    {
        CheckHeader(datagram, ChallengeMessageType.Response);
        var reader = new WireReader(datagram[HeaderSize..]);
        var nonce = reader.ReadBytes(NonceSize).ToArray();
        var challenger = reader.ReadGuid();
        var responder = reader.ReadGuid();
        var publicKey = reader.ReadBytes(HostKey.PublicKeySize).ToArray();
        var address = reader.ReadAddress();
        if (address.IsIPv4MappedToIPv6)
        {
            throw new MalformedMessageException("IPv4-mapped addresses must be sent as IPv4.");
        }

        var port = reader.ReadUInt16();
        var signature = reader.ReadBytes(HostKey.SignatureSize).ToArray();
        reader.EnsureEnd(allowZeroPadding: false);
        return ChallengeResponse.FromParts(nonce, challenger, responder, publicKey, new IPEndPoint(address, port), signature);
    }

    private static void CheckHeader(ReadOnlySpan<byte> datagram, ChallengeMessageType expected)
    {
        if (datagram.Length > MaxDatagramSize)
        {
            throw new MalformedMessageException($"Datagram of {datagram.Length} bytes exceeds {MaxDatagramSize}.");
        }

        if (!TryReadHeader(datagram, out var version, out var type))
        {
            throw new MalformedMessageException("Not a challenge datagram.");
        }

        if (version != ProtocolVersion)
        {
            throw new MalformedMessageException($"Unsupported challenge protocol version {version}.");
        }

        if (type != expected)
        {
            throw new MalformedMessageException($"Expected message type 0x{(byte)expected:x2}, got 0x{(byte)type:x2}.");
        }
    }

    private static WireWriter Header(Span<byte> buffer, ChallengeMessageType type)
    {
        var writer = new WireWriter(buffer);
        writer.WriteByte(Magic0);
        writer.WriteByte(Magic1);
        writer.WriteByte(ProtocolVersion);
        writer.WriteByte((byte)type);
        return writer;
    }
}
