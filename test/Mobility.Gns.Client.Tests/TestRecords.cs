using System.Net;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Client.Tests;

internal static class TestRecords
{
    public static GnsRecord Create(HostKey key, ulong version = 1, uint ttl = 30, string? name = null, string address = "192.0.2.10")
        => GnsRecord.Create(key, version, [new Locator(IPAddress.Parse(address), 4000)], ttl, name);

    /// <summary>The record with one signature bit flipped: well formed, claims the key's GUID, fails verification.</summary>
    public static GnsRecord WithForgedSignature(GnsRecord record)
    {
        var bytes = record.Encoded.ToArray();
        bytes[^1] ^= 0x01;
        return GnsRecord.Decode(bytes);
    }

    /// <summary>A validly signed record of <paramref name="signer"/> whose GUID field claims <paramref name="victim"/>.</summary>
    public static GnsRecord ClaimingGuid(HostKey signer, HostGuid victim)
    {
        var bytes = Create(signer).Encoded.ToArray();
        victim.WriteTo(bytes.AsSpan(1, HostGuid.Size));
        return GnsRecord.Decode(bytes);
    }
}
