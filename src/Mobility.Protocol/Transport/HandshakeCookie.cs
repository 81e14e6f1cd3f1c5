using System.Security.Cryptography;
using Mobility.Protocol.Wire;

namespace Mobility.Protocol.Transport;

/// <summary>The two cookie messages: the preamble and the cookie, nothing else.</summary>
public abstract record CookieMessage(byte[] Cookie) : HandshakeMessage
{
    public const int EncodedSize = TransportConstants.PreambleSize + TransportConstants.CookieSize;

    public byte[] Cookie { get; } = Require(Cookie, TransportConstants.CookieSize, nameof(Cookie));

    public override int Size => EncodedSize;

    private protected override void WriteBody(ref WireWriter writer) => writer.WriteBytes(Cookie);
}

/// <summary>
/// A server under load answers a ClientHello with this instead of a ServerHello, and closes the flow:
/// it has signed nothing, made no key and keeps nothing. The client opens a new flow and sends
/// <see cref="CookieEcho"/> with the same cookie, then the same ClientHello. Unauthenticated, like a
/// Reject: a client only ever spends one more flow on it.
/// </summary>
public sealed record CookieReply(byte[] Cookie) : CookieMessage(Cookie)
{
    public override HandshakeMessageType Type => HandshakeMessageType.CookieReply;
}

/// <summary>First message of a flow that retries a handshake after a <see cref="CookieReply"/>; the ClientHello follows it.</summary>
public sealed record CookieEcho(byte[] Cookie) : CookieMessage(Cookie)
{
    public override HandshakeMessageType Type => HandshakeMessageType.CookieEcho;
}

/// <summary>
/// The stateless cookie: <c>HMAC-SHA256(secret, u8 len || "mobility/handshake-cookie/v1" || source (16) || ClientHello bytes)</c>
/// cut to its first 16 bytes. Only the server that issued it checks it, so the secret never leaves it;
/// <c>source</c> is the client's address prefix (see docs/transport.md), so a cookie is good for one
/// hello from one source, and a flood that never comes back costs nothing after the reply.
/// </summary>
public static class HandshakeCookie
{
    /// <summary>Size of the server's cookie secret.</summary>
    public const int SecretSize = 32;

    /// <summary>Size of the source prefix the cookie is bound to (an IPv6 address, IPv4 mapped).</summary>
    public const int SourceSize = 16;

    /// <summary>HMAC context (domain separation from the resume MACs under other keys).</summary>
    public static ReadOnlySpan<byte> Context => "mobility/handshake-cookie/v1"u8;

    public static void Compute(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> source, ReadOnlySpan<byte> clientHello, Span<byte> cookie)
    {
        if (secret.Length != SecretSize || source.Length != SourceSize || cookie.Length != TransportConstants.CookieSize)
        {
            throw new ArgumentException($"A cookie takes a {SecretSize}-byte secret and a {SourceSize}-byte source and is {TransportConstants.CookieSize} bytes.");
        }

        var data = new byte[SourceSize + clientHello.Length];
        source.CopyTo(data);
        clientHello.CopyTo(data.AsSpan(SourceSize));
        Span<byte> mac = stackalloc byte[TransportConstants.MacSize];
        ResumeMac.Compute(secret, Context, data, mac);
        mac[..TransportConstants.CookieSize].CopyTo(cookie);
    }

    /// <summary>True when <paramref name="cookie"/> is the one <paramref name="secret"/> gives (constant-time compare).</summary>
    public static bool Verify(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> source, ReadOnlySpan<byte> clientHello, ReadOnlySpan<byte> cookie)
    {
        if (cookie.Length != TransportConstants.CookieSize)
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[TransportConstants.CookieSize];
        Compute(secret, source, clientHello, expected);
        return CryptographicOperations.FixedTimeEquals(expected, cookie);
    }
}
