using System.Security.Cryptography;
using Mobility.Protocol.Transport;

namespace Mobility.Transport.Handshakes;

/// <summary>
/// The listener's cookie secret, replaced by a fresh random one every <c>lifetime</c> (the one before
/// is still accepted), so a cookie is good for one to two lifetimes and nothing is stored per client.
/// </summary>
internal sealed class CookieSecrets(TimeProvider time, TimeSpan lifetime)
{
    private readonly object _gate = new();
    private byte[] _current = RandomNumberGenerator.GetBytes(HandshakeCookie.SecretSize);
    private byte[]? _previous;
    private long _rotatedAt = time.GetTimestamp();

    public byte[] Issue(SourcePrefix source, ReadOnlySpan<byte> clientHello)
    {
        var (current, _) = Secrets();
        Span<byte> prefix = stackalloc byte[HandshakeCookie.SourceSize];
        source.WriteTo(prefix);
        var cookie = new byte[TransportConstants.CookieSize];
        HandshakeCookie.Compute(current, prefix, clientHello, cookie);
        return cookie;
    }

    public bool Verify(SourcePrefix source, ReadOnlySpan<byte> clientHello, ReadOnlySpan<byte> cookie)
    {
        var (current, previous) = Secrets();
        Span<byte> prefix = stackalloc byte[HandshakeCookie.SourceSize];
        source.WriteTo(prefix);
        return HandshakeCookie.Verify(current, prefix, clientHello, cookie)
            || (previous is not null && HandshakeCookie.Verify(previous, prefix, clientHello, cookie));
    }

    private (byte[] Current, byte[]? Previous) Secrets()
    {
        lock (_gate)
        {
            var elapsed = time.GetElapsedTime(_rotatedAt);
            if (elapsed >= lifetime)
            {
                // Two lifetimes or more: the old secret is too old to keep as well.
                _previous = elapsed >= 2 * lifetime ? null : _current;
                _current = RandomNumberGenerator.GetBytes(HandshakeCookie.SecretSize);
                _rotatedAt = time.GetTimestamp();
            }

            return (_current, _previous);
        }
    }
}
