using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Bench.Gns;

/// <summary>
/// The benchmark's hosts, derived deterministically from their index so that every tool (the GNS
/// preload, the Knot zone, the dnsperf query file) names the same N hosts: host i has the Ed25519
/// seed SHA-256("mobility-bench/v1/" + i), hence a fixed GUID, and the address 10.x.y.z of i.
/// </summary>
public sealed class BenchData
{
    public const ushort Port = 4000;

    private const string CacheMagic = "mobility-gns-bench/v1";

    private BenchData(int count, byte[] guids, byte[][]? updates)
    {
        Count = count;
        Guids = guids;
        Updates = updates;
    }

    public int Count { get; }

    /// <summary>GUID bytes of host i at [i * 20, i * 20 + 20).</summary>
    public byte[] Guids { get; }

    /// <summary>Update datagrams (request id 0, patched per send) of the signed records, or null when only GUIDs were derived.</summary>
    public byte[][]? Updates { get; }

    public ReadOnlySpan<byte> Guid(int index) => Guids.AsSpan(index * HostGuid.Size, HostGuid.Size);

    public static IPAddress AddressOf(int index)
        => new([10, (byte)(index >> 16), (byte)(index >> 8), (byte)index]);

    /// <summary>Derives the hosts; with <paramref name="version"/> also signs one record per host (in parallel).</summary>
    public static BenchData Create(int count, ulong? version)
    {
        if (count is < 1 or > (1 << 24))
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, "Between 1 and 16,777,216 hosts (10.0.0.0/8 addresses).");
        }

        var guids = new byte[count * HostGuid.Size];
        var updates = version is null ? null : new byte[count][];
        var issued = DateTimeOffset.UtcNow;
        Parallel.For(0, count, i =>
        {
            Span<byte> seed = stackalloc byte[32];
            SHA256.HashData(Encoding.ASCII.GetBytes("mobility-bench/v1/" + i.ToString(CultureInfo.InvariantCulture)), seed);
            // Keys are disposed at once: NSec keeps private keys in guarded native pages.
            using var key = HostKey.FromSeed(seed);
            key.Guid.WriteTo(guids.AsSpan(i * HostGuid.Size, HostGuid.Size));
            if (updates is not null)
            {
                var record = GnsRecord.Create(key, version!.Value, [new Locator(AddressOf(i), Port)], ttlSeconds: 300, issuedAt: issued);
                updates[i] = GnsDatagram.Update(0, record);
            }
        });
        return new BenchData(count, guids, updates);
    }

    /// <summary>
    /// Loads the hosts (and their signed updates) from <paramref name="path"/> when it holds
    /// <paramref name="count"/> of them, otherwise derives and signs them and saves them there. Deriving
    /// and signing costs about 50 µs of CPU per host, so one script run signs once for all its servers.
    /// </summary>
    public static BenchData LoadOrCreate(string path, int count, ulong version)
    {
        if (File.Exists(path))
        {
            using var input = new BinaryReader(File.OpenRead(path));
            if (input.ReadString() == CacheMagic && input.ReadInt32() == count)
            {
                var guids = input.ReadBytes(count * HostGuid.Size);
                var updates = new byte[count][];
                for (var i = 0; i < count; i++)
                {
                    updates[i] = input.ReadBytes(input.ReadUInt16());
                }

                return new BenchData(count, guids, updates);
            }
        }

        var data = Create(count, version);
        var temporary = path + ".tmp";
        using (var output = new BinaryWriter(File.Create(temporary)))
        {
            output.Write(CacheMagic);
            output.Write(count);
            output.Write(data.Guids);
            foreach (var update in data.Updates!)
            {
                output.Write(checked((ushort)update.Length));
                output.Write(update);
            }
        }

        File.Move(temporary, path, overwrite: true);
        return data;
    }

    /// <summary>Writes a zone of the same hosts as A records (<c>&lt;guid&gt;.zone.</c>) and a dnsperf query file.</summary>
    public void WriteZone(string zone, string zoneFile, string queryFile)
    {
        zone = zone.TrimEnd('.');
        using (var z = new StreamWriter(zoneFile, false, new UTF8Encoding(false)))
        {
            z.NewLine = "\n";
            z.WriteLine($"$ORIGIN {zone}.");
            z.WriteLine("$TTL 300");
            z.WriteLine($"@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 900 604800 300");
            z.WriteLine("@ IN NS ns");
            z.WriteLine("ns IN A 127.0.0.1");
            for (var i = 0; i < Count; i++)
            {
                z.Write(Convert.ToHexStringLower(Guid(i)));
                z.Write(" IN A ");
                z.WriteLine(AddressOf(i).ToString());
            }
        }

        using var q = new StreamWriter(queryFile, false, new UTF8Encoding(false));
        q.NewLine = "\n";
        for (var i = 0; i < Count; i++)
        {
            q.Write(Convert.ToHexStringLower(Guid(i)));
            q.Write('.');
            q.Write(zone);
            q.WriteLine(". A");
        }
    }
}
