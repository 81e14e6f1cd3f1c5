using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Bench.Gns;

/// <summary>
/// gns-bench claims: the reverse lookup (the GNS half of get_guid_from_ip) of an owner's address,
/// timed before and after a flood of false claims of that address (docs/protocol.md, "Address claims").
/// The owner sends its record from the address it claims (a socket bound to --owner); the attacker
/// sends from --attacker: --flood throw-away keys each claiming the owner's address, then --spread
/// keys of 8 other addresses each (one source claiming many addresses). Lookups are one at a time,
/// padded to 410 bytes as clients send them; each answer must list the owner first.
/// </summary>
internal static class ClaimFlood
{
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(2);

    public sealed record Settings(IPEndPoint Gns, IPAddress Owner, IPAddress Attacker, int Flood, int Spread, int Lookups);

    public static async Task<int> RunAsync(Settings s)
    {
        using var owner = new Socket(s.Owner.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        owner.Bind(new IPEndPoint(s.Owner, 0));
        using var attacker = new Socket(s.Attacker.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        attacker.Bind(new IPEndPoint(s.Attacker, 0));
        using var ownerKey = HostKey.Generate();
        var claimed = new Locator(s.Owner, BenchData.Port);
        var id = 0u;

        var ack = await ExchangeAsync(owner, s.Gns, GnsDatagram.Update(++id, GnsRecord.Create(ownerKey, 1, [claimed], 300)), id);
        if (ack.Type != GnsMessageType.UpdateAck)
        {
            await Console.Error.WriteLineAsync($"gns-bench: claims: the owner's update was refused ({ack.ErrorCode}: {ack.ErrorMessage})");
            return 1;
        }

        var quiet = await LookupsAsync(attacker, s, ownerKey.Guid, () => ++id);

        // Sign everything first: the flood's rate is the server's, not the signer's.
        var signing = Stopwatch.StartNew();
        var flood = new List<byte[]>(s.Flood + s.Spread);
        for (var i = 0; i < s.Flood; i++)
        {
            using var key = HostKey.Generate();
            flood.Add(GnsDatagram.Update(0, GnsRecord.Create(key, 1, [claimed], 300)));
        }

        for (var i = 0; i < s.Spread; i++)
        {
            using var key = HostKey.Generate();
            var addresses = Enumerable.Range(0, 8).Select(j => new Locator(new IPAddress([10, (byte)(i >> 8), (byte)i, (byte)j]), BenchData.Port));
            flood.Add(GnsDatagram.Update(0, GnsRecord.Create(key, 1, addresses, 300)));
        }

        Console.WriteLine($"signed {flood.Count} false records in {signing.Elapsed.TotalSeconds:0.0} s");
        var sent = Stopwatch.StartNew();
        var stored = 0;
        foreach (var datagram in flood)
        {
            var requestId = ++id;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(datagram.AsSpan(4), requestId);
            var reply = await ExchangeAsync(attacker, s.Gns, datagram, requestId);
            stored += reply.Type == GnsMessageType.UpdateAck ? 1 : 0;
        }

        var floodSeconds = sent.Elapsed.TotalSeconds;
        var claims = s.Flood + (8 * s.Spread);
        var flooded = await LookupsAsync(attacker, s, ownerKey.Guid, () => ++id);

        Console.WriteLine();
        Console.WriteLine($"false records stored: {stored} of {flood.Count} ({claims} false claims) in {floodSeconds:0.0} s, {flood.Count / floodSeconds:0} updates/s");
        Console.WriteLine();
        Console.WriteLine("| reverse lookups of the owner's address | lookups | p50 µs | p99 µs | max µs | GUIDs listed | owner first |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---|");
        Row("before the flood", quiet);
        Row($"after {s.Flood:N0} keys claim it and {s.Spread:N0} keys claim {8 * s.Spread:N0} other addresses, one source", flooded);
        return quiet.OwnerFirst == quiet.Count && flooded.OwnerFirst == flooded.Count ? 0 : 1;

        static void Row(string label, Result r)
            => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {label} | {r.Count} | {r.Latency.Percentile(0.50)} | {r.Latency.Percentile(0.99)} | {r.Latency.MaxMicros} | {r.Listed} | {r.OwnerFirst} of {r.Count} |"));
    }

    private static async Task<Result> LookupsAsync(Socket socket, Settings s, HostGuid owner, Func<uint> nextId)
    {
        var latency = new LatencyHistogram();
        var ownerFirst = 0;
        var listed = 0;
        for (var i = 0; i < s.Lookups; i++)
        {
            var requestId = nextId();
            var started = Stopwatch.GetTimestamp();
            var reply = await ExchangeAsync(socket, s.Gns, GnsDatagram.Reverse(requestId, s.Owner), requestId);
            latency.Record((long)Stopwatch.GetElapsedTime(started).TotalMicroseconds);
            ownerFirst += reply.Guids.Length > 0 && reply.Guids[0] == owner ? 1 : 0;
            listed = reply.Guids.Length;
        }

        return new Result(latency, ownerFirst, listed, s.Lookups);
    }

    private static async Task<GnsResponse> ExchangeAsync(Socket socket, IPEndPoint server, byte[] datagram, uint requestId)
    {
        var buffer = new byte[GnsDatagram.MaxDatagramSize];
        for (var attempt = 0; ; attempt++)
        {
            await socket.SendToAsync(datagram, server);
            using var timeout = new CancellationTokenSource(ReplyTimeout);
            try
            {
                while (true)
                {
                    var received = await socket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), timeout.Token);
                    var reply = GnsDatagram.ParseResponse(buffer.AsSpan(0, received.ReceivedBytes));
                    if (reply.RequestId == requestId)
                    {
                        return reply;
                    }
                }
            }
            catch (OperationCanceledException) when (attempt < 3)
            {
                // Lost on loopback only under overload: send again.
            }
        }
    }

    private sealed record Result(LatencyHistogram Latency, int OwnerFirst, int Listed, int Count);
}
