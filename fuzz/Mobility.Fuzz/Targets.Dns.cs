using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mobility.Protocol.Dns;
using Mobility.Gns.Dns.Server;
using Mobility.Gns.Storage;

namespace Mobility.Fuzz;

public static partial class Targets
{
    private static readonly Type[] DnsMalformed = [typeof(DnsFormatException)];

    /// <summary>
    /// Queries the GNS's DNS front end reads over UDP and TCP (src/Mobility.Gns.Dns), parsed and then
    /// answered, bytes in and bytes out, by its responder over an in-memory store holding one record.
    /// </summary>
    private static FuzzTarget Dns() => new("dns",
        "DnsMessageReader.ReadQuery (header, compressed names, EDNS options), then DnsResponder.RespondAsync over UDP and TCP (DnsMessageWriter)",
        DnsMalformed,
        input =>
        {
            DnsQuery? query = null;
            var answerable = false;
            try
            {
                query = DnsMessageReader.ReadQuery(input);
                Require(query.Name.WireLength <= DnsLimits.MaxNameLength, "A name longer than 255 octets was accepted.");
                Require(query.Name.Labels.All(l => l.Length is > 0 and <= DnsLimits.MaxLabelLength), "A label of a bad length was accepted.");
                answerable = true;
            }
            catch (DnsFormatException e)
            {
                answerable = e is { Answerable: true, Id: not null };
            }

            // The responder reads the same bytes itself; it must answer everything answerable,
            // within the size limit of the transport, and drop the rest.
            var response = _dnsResponse ??= new byte[DnsLimits.MaxMessageSize];
            var copy = input.ToArray();
            foreach (var (transport, limit) in new[] { (DnsTransport.Udp, new GnsDnsOptions().MaxUdpResponseSize), (DnsTransport.Tcp, DnsLimits.MaxMessageSize) })
            {
                var length = Responder.Value.RespondAsync(copy, response, transport, CancellationToken.None).AsTask().GetAwaiter().GetResult();
                Require(length <= limit, $"A {transport} response of {length} octets exceeds {limit}.");
                Require(answerable ? length >= DnsLimits.HeaderSize && response.AsSpan(0, 2).SequenceEqual(input[..2]) : length == 0,
                    answerable ? "An answerable query got no answer or another id." : "An unanswerable query was answered.");
            }

            return query is null ? FuzzOutcome.Rejected : FuzzOutcome.Accepted;
        },
        DnsSeeds);

    [ThreadStatic]
    private static byte[]? _dnsResponse;

    // Lazy: under afl-fuzz no instrumented code may run before SharpFuzz has mapped the coverage map.
    private static readonly Lazy<DnsResponder> Responder = new(() =>
    {
        var store = new InMemoryGnsStore();
        using var key = SeedKit.Key(1);
        store.PutAsync(SeedKit.FullRecord(key), requireExisting: false).AsTask().GetAwaiter().GetResult();
        return new DnsResponder(store, Options.Create(new GnsDnsOptions { Zone = "mob.example" }), NullLogger<DnsResponder>.Instance);
    });

    private static IEnumerable<FuzzSeed> DnsSeeds()
    {
        using var key = SeedKit.Key(1);
        yield return new("valid-a", Query(0x1234, 0x0100, Name("alice-laptop", "mob", "example"), 1, []));
        yield return new("valid-aaaa-edns", Query(0x1235, 0x0100, Name(key.Guid.ToString(), "mob", "example"), 28,
            [0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 4, 0, 10, 0, 0]));
        yield return new("valid-txt-cookie", Query(0x1236, 0x0000, Name("alice-laptop", "mob", "example"), 16,
            SeedKit.Concat([0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8], SeedKit.Filled(8, 0xC0))));
        yield return new("valid-notify-opcode", Query(0x1237, 0x2000, Name("mob", "example"), 6, []));
        // A second question name compressed with a pointer back to the first (offset 12): malformed as a query, but it exercises pointers.
        yield return new("edge-pointer", SeedKit.Concat(Header(0x1238, 0x0100, 2, 0), Name("mob", "example"), [0, 6, 0, 1, 0xC0, 12, 0, 2, 0, 1]));
    }

    private static byte[] Query(ushort id, ushort flags, byte[] name, ushort type, byte[] additional)
    {
        var arCount = additional.Length == 0 ? 0 : 1;
        return SeedKit.Concat(Header(id, flags, 1, arCount), name, [(byte)(type >> 8), (byte)type, 0, 1], additional);
    }

    private static byte[] Header(ushort id, ushort flags, int qdCount, int arCount)
        => [(byte)(id >> 8), (byte)id, (byte)(flags >> 8), (byte)flags, 0, (byte)qdCount, 0, 0, 0, 0, 0, (byte)arCount];

    private static byte[] Name(params string[] labels)
        => SeedKit.Concat([.. labels.Select(l => SeedKit.Concat([(byte)l.Length], System.Text.Encoding.ASCII.GetBytes(l))), [0]]);
}
