using System.Net;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Bench.Micro;

/// <summary>A fixed host and its record, as the load generator sends them (one IPv4 locator, no name).</summary>
internal static class Fixtures
{
    public static readonly byte[] Seed = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();

    public static HostKey Key() => HostKey.FromSeed(Seed);

    public static GnsRecord Record(HostKey key, ulong version = 1)
        => GnsRecord.Create(key, version, [new Locator(IPAddress.Parse("10.1.2.3"), 4000)], ttlSeconds: 300,
            issuedAt: DateTimeOffset.FromUnixTimeSeconds(1_750_000_000));

    public static byte[] LookupDatagram(HostGuid guid) => GnsDatagram.LookupGuid(42, guid);
}
