using System.Net.Security;
using System.Security.Cryptography;

namespace Mobility.Net.Tls;

/// <summary>
/// Certificate pins: a TLS server (a relay's or the GNS's TLS endpoint) is accepted only when the SHA-256 of its
/// certificate's DER encoding is one of the pins; nothing else about it (name, issuer, dates) is checked, so a
/// self-signed certificate works and no certificate authority is trusted.
/// </summary>
public static class CertificatePins
{
    /// <summary>
    /// Parses a pin: the SHA-256 of a DER certificate, 64 hex digits, colons allowed (as
    /// <c>openssl x509 -noout -fingerprint -sha256</c> prints it, after the <c>=</c>); null when it is not one.
    /// </summary>
    public static byte[]? Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var hex = text.Trim().Replace(":", "", StringComparison.Ordinal);
        if (hex.Length != SHA256.HashSizeInBytes * 2)
        {
            return null;
        }

        try
        {
            return Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// Client options that accept only a certificate whose SHA-256 is one of <paramref name="pins"/>; <paramref name="seen"/>
    /// is told the lower-case hex SHA-256 of the certificate presented (for an error naming it).
    /// </summary>
    public static SslClientAuthenticationOptions ClientOptions(string targetHost, IReadOnlyList<byte[]> pins, Action<string> seen)
    {
        ArgumentNullException.ThrowIfNull(pins);
        ArgumentNullException.ThrowIfNull(seen);
        return new SslClientAuthenticationOptions
        {
            // The server is named by its address; the pin, not the name, is what is checked.
            TargetHost = targetHost,
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                if (certificate is null)
                {
                    return false;
                }

                var hash = SHA256.HashData(certificate.GetRawCertData());
                seen(Convert.ToHexStringLower(hash));
                return pins.Any(p => CryptographicOperations.FixedTimeEquals(p, hash));
            },
        };
    }
}
