using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Mobility.Testing;

/// <summary>Self-signed certificates for the TLS endpoints of the relay and the GNS.</summary>
public static class TestCertificates
{
    /// <summary>A self-signed certificate in PEM files in <paramref name="directory"/>, named <paramref name="name"/>.crt/.key, and its SHA-256 pin.</summary>
    public static (string Certificate, string Key, byte[] Pin) CreateSelfSigned(string directory, string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(2));
        var certificatePath = Path.Combine(directory, $"{name}.crt");
        var keyPath = Path.Combine(directory, $"{name}.key");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath, SHA256.HashData(certificate.RawData));
    }
}
