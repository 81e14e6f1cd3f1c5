using System.Diagnostics;
using System.Globalization;
using System.Net;
using Mobility.Gns.Client;
using Mobility.Net.Tls;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Bench.Gns;

/// <summary>
/// <c>gns-bench tls-latency</c>: one request at a time, lookups of one stored record by GUID through two GNS clients,
/// one over UDP (the anchor) and one over TLS (<c>--tls-listen</c>; docs/protocol.md, "GNS over TLS"), in alternating
/// rounds so that both see the same load; each round's median per transport, then the median of the rounds and the
/// ratio TLS / UDP. The TLS connection is opened before the first round (its handshake is not in the numbers).
/// </summary>
internal static class TlsLatency
{
    public static async Task<int> RunAsync(IPEndPoint udp, IPEndPoint tls, string pin, int lookups, int rounds)
    {
        var pinBytes = CertificatePins.Parse(pin) ?? throw new ArgumentException("--pin must be a SHA-256 fingerprint (64 hex digits)");
        await using var overUdp = new GnsClient(new GnsClientOptions { Server = udp, CacheEnabled = false });
        await using var overTls = new GnsClient(new GnsClientOptions
        {
            Server = udp, CacheEnabled = false, TlsServer = tls, TlsPins = [pinBytes], TlsUse = GnsTlsUse.Always,
        });
        using var key = HostKey.Generate();
        await overUdp.RegisterAsync(GnsRecord.Create(key, (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            [new Locator(IPAddress.Parse("192.0.2.1"), 7391)]));
        // Warm-up: JIT, the TLS handshake.
        for (var i = 0; i < 50; i++)
        {
            await overUdp.LookupAsync(key.Guid);
            await overTls.LookupAsync(key.Guid);
        }

        var udpMedians = new List<double>();
        var tlsMedians = new List<double>();
        Console.WriteLine("round  udp median µs  udp p99 µs  tls median µs  tls p99 µs");
        for (var round = 1; round <= rounds; round++)
        {
            var (udpMedian, udpP99) = await TimeAsync(overUdp, key.Guid, lookups);
            var (tlsMedian, tlsP99) = await TimeAsync(overTls, key.Guid, lookups);
            udpMedians.Add(udpMedian);
            tlsMedians.Add(tlsMedian);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{round,5}  {udpMedian,13:0}  {udpP99,10:0}  {tlsMedian,13:0}  {tlsP99,10:0}"));
        }

        var udpAll = Median(udpMedians);
        var tlsAll = Median(tlsMedians);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"median of {rounds} rounds x {lookups} lookups: udp {udpAll:0} µs, tls {tlsAll:0} µs, tls/udp {tlsAll / udpAll:0.00}"));
        return 0;
    }

    private static async Task<(double Median, double P99)> TimeAsync(GnsClient client, HostGuid guid, int lookups)
    {
        var samples = new double[lookups];
        for (var i = 0; i < lookups; i++)
        {
            var start = Stopwatch.GetTimestamp();
            _ = await client.LookupAsync(guid) ?? throw new InvalidOperationException("the record is gone");
            samples[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }

        Array.Sort(samples);
        return (samples[lookups / 2], samples[Math.Min(lookups - 1, (int)(lookups * 0.99))]);
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }
}
