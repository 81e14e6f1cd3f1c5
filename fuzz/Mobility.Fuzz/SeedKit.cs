using System.Net;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Fuzz;

/// <summary>Fixed keys and values for the seed corpora, so that `Mobility.Fuzz seeds` writes the same files every time.</summary>
internal static class SeedKit
{
    /// <summary>When every seed record was issued: 2026-01-01T00:00:00Z.</summary>
    public static readonly DateTimeOffset IssuedAt = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The Ed25519 key whose 32-byte seed is <paramref name="fill"/> repeated.</summary>
    public static HostKey Key(byte fill) => HostKey.FromSeed(Filled(32, fill));

    public static byte[] Filled(int length, byte fill)
    {
        var bytes = new byte[length];
        Array.Fill(bytes, fill);
        return bytes;
    }

    public static HostGuid Guid(byte fill) => HostGuid.FromBytes(Filled(HostGuid.Size, fill));

    /// <summary>A signed record with both address families, every locator kind and a name.</summary>
    public static GnsRecord FullRecord(HostKey key) => GnsRecord.Create(key, 7,
    [
        new Locator(IPAddress.Parse("192.0.2.10"), 4400),
        new Locator(IPAddress.Parse("2001:db8::10"), 4400),
        new Locator(IPAddress.Parse("198.51.100.7"), 61000, LocatorKind.Observed),
        new Locator(IPAddress.Parse("203.0.113.1"), 4401, LocatorKind.Relay),
    ], 30, "alice-laptop", IssuedAt);

    /// <summary>The smallest valid record: no name, no locator.</summary>
    public static GnsRecord EmptyRecord(HostKey key) => GnsRecord.Create(key, 1, [], 0, null, IssuedAt);

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}
