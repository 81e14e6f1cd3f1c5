using Mobility.Protocol.Tests.Gns;
using Mobility.Protocol.Tests.Records;

namespace Mobility.Protocol.Tests.Hostile;

/// <summary>One valid message of every kind, to truncate and mutate.</summary>
internal static class Corpus
{
    private static readonly Lazy<Messages> Instance = new(Build);

    public static Messages All => Instance.Value;

    /// <param name="Bytes">The message as sent (requests carry their default padding).</param>
    /// <param name="ContentLength">Bytes before the padding: every shorter prefix is truncated.</param>
    internal sealed record Message(string Name, byte[] Bytes, int ContentLength)
    {
        public override string ToString() => Name;
    }

    internal sealed record Messages(
        IReadOnlyList<Message> Requests,
        IReadOnlyList<Message> Responses,
        IReadOnlyList<Message> Records,
        IReadOnlyList<Message> Removals);

    private static Messages Build()
    {
        using var key = Test1Key();
        var record = Record(key);
        var bare = GnsRecord.Create(key, 1, [], ttlSeconds: 0, name: null, issuedAt: IssuedAt);
        var largest = GnsRecordTests.Largest(key);
        var removal = GnsRemoval.Create(key, RemovalVersion, IssuedAt);
        var guid = key.Guid;

        var requests = new List<Message>
        {
            new("lookup guid", GnsDatagram.LookupGuid(1, guid), 28),
            new("lookup name", GnsDatagram.LookupName(2, "alpha-1"), 16),
            new("lookup longest name", GnsDatagram.LookupName(3, new string('n', 63)), 72),
            new("reverse v4", GnsDatagram.Reverse(4, IPAddress.Parse("192.0.2.10")), 13),
            new("reverse v6", GnsDatagram.Reverse(5, IPAddress.Parse("2001:db8::1")), 25),
            new("update", GnsDatagram.Update(6, record), 8 + record.Encoded.Length),
            new("update bare", GnsDatagram.Update(7, bare), 8 + bare.Encoded.Length),
            new("update largest", GnsDatagram.Update(8, largest), 8 + largest.Encoded.Length),
            new("remove", GnsDatagram.Remove(9, removal), 8 + GnsRemoval.EncodedSize),
            new("reflect", GnsDatagram.Reflect(19), 9),
            new("reflect other port", GnsDatagram.Reflect(20, GnsDatagram.ReflectFromOtherPort), 9),
        };

        var responses = new List<Message>
        {
            Reply("record reply", b => GnsDatagram.TryWriteRecord(b, 10, record, out var n) ? n : throw new InvalidOperationException()),
            Reply("record reply largest", b => GnsDatagram.TryWriteRecord(b, 11, largest, out var n) ? n : throw new InvalidOperationException()),
            Reply("guid list empty", b => GnsDatagram.WriteGuidList(b, 12, [])),
            Reply("guid list", b => GnsDatagram.WriteGuidList(b, 13, GnsDatagramTests.Guids(3), moreExist: true)),
            Reply("update ack v4", b => GnsDatagram.WriteUpdateAck(b, 14, 7, new IPEndPoint(IPAddress.Parse("203.0.113.5"), 61000))),
            Reply("update ack v6", b => GnsDatagram.WriteUpdateAck(b, 15, 7, new IPEndPoint(IPAddress.Parse("2001:db8::7"), 1))),
            Reply("remove ack", b => GnsDatagram.WriteRemoveAck(b, 16, 8)),
            Reply("error", b => GnsDatagram.WriteError(b, 17, GnsErrorCode.StaleVersion, "stale: é€𝄞")),
            Reply("error empty", b => GnsDatagram.WriteError(b, 18, GnsErrorCode.NotFound, null)),
            Reply("reflect reply v4", b => GnsDatagram.WriteReflectReply(b, 21, 0, new IPEndPoint(IPAddress.Parse("203.0.113.5"), 61000), 7354)),
            Reply("reflect reply v6", b => GnsDatagram.WriteReflectReply(b, 22, GnsDatagram.ReflectFromOtherPort, new IPEndPoint(IPAddress.Parse("2001:db8::7"), 1), 0)),
        };

        var records = new List<Message>
        {
            Whole("record", record.Encoded.ToArray()),
            Whole("record bare", bare.Encoded.ToArray()),
            Whole("record largest", largest.Encoded.ToArray()),
        };

        var removals = new List<Message> { Whole("removal", removal.Encoded.ToArray()) };
        return new Messages(requests, responses, records, removals);
    }

    private static Message Reply(string name, WriteReply write)
    {
        var buffer = new byte[GnsDatagram.MaxDatagramSize];
        var written = write(buffer);
        return Whole(name, buffer[..written]);
    }

    private static Message Whole(string name, byte[] bytes) => new(name, bytes, bytes.Length);

    private delegate int WriteReply(Span<byte> buffer);
}
