using System.Buffers;
using System.Net;
using Mobility.Protocol;
using Mobility.Protocol.Challenge;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Fuzz;

public static partial class Targets
{
    private static readonly Type[] Malformed = [typeof(MalformedMessageException)];

    /// <summary>Requests the GNS reads from UDP (src/Mobility.Gns/Udp): lookups, reverse lookups, signed updates and removals.</summary>
    private static FuzzTarget GnsRequest() => new("gns-request",
        "GnsDatagram.ParseRequest (GnsRecord.Read, GnsRemoval.Read, HostName.Normalize, WireReader), then GnsRecord.Verify and GnsRemoval.Verify",
        Malformed,
        input =>
        {
            var request = GnsDatagram.ParseRequest(input);
            var body = input[GnsDatagram.HeaderSize..];
            switch (request.Type)
            {
                case GnsMessageType.LookupGuid:
                    // The client's encoder pads with zeros to the input's length: the same bytes.
                    Require(GnsDatagram.LookupGuid(request.RequestId, request.Guid, input.Length).AsSpan().SequenceEqual(input),
                        "A GUID lookup does not re-encode to its bytes.");
                    break;
                case GnsMessageType.LookupName:
                    Require(HostName.IsValid(request.Name), "A parsed name is not a valid name.");
                    break;
                case GnsMessageType.Reverse:
                    Require(request.Address is not null, "A reverse lookup without an address.");
                    break;
                case GnsMessageType.Update:
                    var record = request.Record!;
                    Require(body.StartsWith(record.Encoded.Span) && !body[record.Encoded.Length..].ContainsAnyExcept((byte)0),
                        "An update's record is not its bytes.");
                    record.Verify();
                    break;
                case GnsMessageType.Reflect:
                    Require(GnsDatagram.Reflect(request.RequestId, request.ReflectFlags, input.Length).AsSpan().SequenceEqual(input),
                        "A reflect does not re-encode to its bytes.");
                    break;
                case GnsMessageType.Remove:
                    var removal = request.Removal!;
                    Require(body.StartsWith(removal.Encoded.Span), "A removal is not its bytes.");
                    using (var key = SeedKit.Key(1))
                    {
                        removal.Verify(key.PublicKeyBytes());
                    }

                    break;
                default:
                    throw new FuzzFailureException($"ParseRequest returned type {request.Type}.");
            }

            return FuzzOutcome.Accepted;
        },
        GnsRequestSeeds);

    /// <summary>
    /// The GNS's TLS endpoint and the client's TLS connection (src/Mobility.Gns/Streams, GnsClient.Tls.cs): length-prefixed
    /// frames read one after another, each message then read as a request.
    /// </summary>
    private static FuzzTarget GnsStream() => new("gns-stream",
        "GnsStreamFrame.TryRead over a stream, then GnsDatagram.ParseRequest on each message",
        Malformed,
        input => StreamCheck.Drain(input, Malformed, int.MaxValue, ReadGnsStreamFrame),
        GnsStreamSeeds);

    private static string? ReadGnsStreamFrame(ref SequenceReader<byte> reader, int index)
    {
        var unread = reader.UnreadSequence;
        if (!GnsStreamFrame.TryRead(unread, out var message, out var consumed))
        {
            return null;
        }

        reader.Advance(unread.Slice(0, consumed).Length);
        var bytes = message.ToArray();
        Require(bytes.Length is > 0 and <= GnsDatagram.MaxDatagramSize, "A frame's message is empty or larger than a datagram.");
        string request;
        try
        {
            request = GnsDatagram.ParseRequest(bytes).Type.ToString();
        }
        catch (MalformedMessageException)
        {
            // The server answers such a message with an error reply (or drops it); the stream goes on.
            request = "not a request";
        }

        return $"{request} {Hex(bytes)}";
    }

    private static IEnumerable<FuzzSeed> GnsStreamSeeds()
    {
        using var key = SeedKit.Key(1);
        yield return new("valid-lookup-then-reflect", [.. GnsStreamFrame.Frame(GnsDatagram.LookupGuid(1, key.Guid)), .. GnsStreamFrame.Frame(GnsDatagram.Reflect(2))]);
        yield return new("valid-update", GnsStreamFrame.Frame(GnsDatagram.Update(3, SeedKit.FullRecord(key))));
        yield return new("valid-partial", GnsStreamFrame.Frame(GnsDatagram.Reflect(4))[..5]);
        yield return new("edge-zero-length", [0, 0]);
        yield return new("edge-oversize-length", [0xFF, 0xFF, 1, 2, 3]);
    }

    /// <summary>Replies the GNS client reads from UDP (src/Mobility.Gns.Client).</summary>
    private static FuzzTarget GnsResponse() => new("gns-response",
        "GnsDatagram.ParseResponse (GnsRecord.Read, GUID lists, acks, errors), then GnsRecord.Verify",
        Malformed,
        input =>
        {
            var response = GnsDatagram.ParseResponse(input);
            if (response.Type == GnsMessageType.RecordReply)
            {
                Require(input[GnsDatagram.HeaderSize..].SequenceEqual(response.Record!.Encoded.Span), "A record reply is not its record's bytes.");
                response.Record.Verify();
            }

            if (response.Type == GnsMessageType.GuidListReply)
            {
                Require(input.Length == GnsDatagram.HeaderSize + 2 + (response.Guids.Length * HostGuid.Size), "A GUID list's count does not match its length.");
            }

            return FuzzOutcome.Accepted;
        },
        GnsResponseSeeds);

    /// <summary>Records and removals as the stores keep them (SQLite, Redis) and the caches read them back.</summary>
    private static FuzzTarget GnsRecordFile() => new("gns-record",
        "GnsRecord.Decode and GnsRemoval.Decode (the bytes the SQLite and Redis stores keep), then Verify",
        Malformed,
        input =>
        {
            var outcome = FuzzOutcome.Rejected;
            try
            {
                var record = GnsRecord.Decode(input);
                Require(record.Encoded.Span.SequenceEqual(input), "A decoded record is not its bytes.");
                Require(record.Locators.Length <= GnsRecord.MaxLocators, "A record holds too many locators.");
                record.Verify();
                outcome = FuzzOutcome.Accepted;
            }
            catch (MalformedMessageException)
            {
            }

            try
            {
                var removal = GnsRemoval.Decode(input);
                Require(removal.Encoded.Span.SequenceEqual(input), "A decoded removal is not its bytes.");
                using var key = SeedKit.Key(1);
                removal.Verify(key.PublicKeyBytes());
                outcome = FuzzOutcome.Accepted;
            }
            catch (MalformedMessageException)
            {
            }

            return outcome;
        },
        GnsRecordSeeds);

    /// <summary>The control datagrams mobilityd reads (src/Mobility.Daemon/Control): challenges and their answers.</summary>
    private static FuzzTarget Control() => new("control",
        "ChallengeDatagram.TryReadHeader, ParseRequest, ParseResponse, then ChallengeResponse.Verify",
        Malformed,
        input =>
        {
            if (!ChallengeDatagram.TryReadHeader(input, out _, out var type))
            {
                // Not a control datagram: the endpoint drops it.
                return FuzzOutcome.Rejected;
            }

            if (type == ChallengeMessageType.Response)
            {
                var response = ChallengeDatagram.ParseResponse(input);
                Require(ChallengeDatagram.WriteResponse(response).AsSpan().SequenceEqual(input), "A response does not re-encode to its bytes.");
                response.Verify();
            }
            else
            {
                var request = ChallengeDatagram.ParseRequest(input);
                var encoded = ChallengeDatagram.WriteRequest(request);
                Require(input.StartsWith(encoded.AsSpan(0, ChallengeDatagram.RequestBodyEnd)) && !input[ChallengeDatagram.RequestBodyEnd..].ContainsAnyExcept((byte)0),
                    "A request does not re-encode to its bytes.");
            }

            return FuzzOutcome.Accepted;
        },
        ControlSeeds);

    private static IEnumerable<FuzzSeed> GnsRequestSeeds()
    {
        using var key = SeedKit.Key(1);
        yield return new("valid-lookup-guid", GnsDatagram.LookupGuid(1, key.Guid));
        yield return new("valid-lookup-guid-unpadded", GnsDatagram.LookupGuid(2, key.Guid, padTo: 0));
        yield return new("valid-lookup-name", GnsDatagram.LookupName(3, "alice-laptop", padTo: 0));
        yield return new("valid-reverse-v4", GnsDatagram.Reverse(4, IPAddress.Parse("192.0.2.10"), padTo: 0));
        yield return new("valid-reverse-v6", GnsDatagram.Reverse(5, IPAddress.Parse("2001:db8::10"), padTo: 0));
        yield return new("valid-update", GnsDatagram.Update(6, SeedKit.FullRecord(key)));
        yield return new("valid-update-empty", GnsDatagram.Update(7, SeedKit.EmptyRecord(key)));
        yield return new("valid-remove", GnsDatagram.Remove(8, GnsRemoval.Create(key, 9, SeedKit.IssuedAt)));
        yield return new("valid-reflect", GnsDatagram.Reflect(11));
        yield return new("valid-reflect-other-port", GnsDatagram.Reflect(12, GnsDatagram.ReflectFromOtherPort, padTo: 0));
        var wrongVersion = GnsDatagram.LookupGuid(9, key.Guid, padTo: 0);
        wrongVersion[2] = 2;
        yield return new("edge-version-2", wrongVersion);
        yield return new("edge-header-only", GnsDatagram.LookupGuid(10, key.Guid, padTo: 0)[..GnsDatagram.HeaderSize]);
    }

    private static IEnumerable<FuzzSeed> GnsResponseSeeds()
    {
        using var key = SeedKit.Key(1);
        var buffer = new byte[GnsDatagram.MaxDatagramSize];
        GnsDatagram.TryWriteRecord(buffer, 1, SeedKit.FullRecord(key), out var written);
        yield return new("valid-record", buffer[..written]);
        written = GnsDatagram.WriteGuidList(buffer, 2, [key.Guid, SeedKit.Guid(0xAB)]);
        yield return new("valid-guid-list", buffer[..written]);
        written = GnsDatagram.WriteGuidList(buffer, 3, [key.Guid], moreExist: true);
        yield return new("valid-guid-list-truncated", buffer[..written]);
        written = GnsDatagram.WriteUpdateAck(buffer, 4, 7, new IPEndPoint(IPAddress.Parse("2001:db8::7"), 61000));
        yield return new("valid-update-ack", buffer[..written]);
        written = GnsDatagram.WriteRemoveAck(buffer, 5, 9);
        yield return new("valid-remove-ack", buffer[..written]);
        written = GnsDatagram.WriteError(buffer, 6, GnsErrorCode.StaleVersion, "version 7 is not newer than 7");
        yield return new("valid-error", buffer[..written]);
        written = GnsDatagram.WriteError(buffer, 7, GnsErrorCode.UnsupportedVersion, null, version: 9);
        yield return new("valid-error-other-version", buffer[..written]);
        written = GnsDatagram.WriteReflectReply(buffer, 8, 0, new IPEndPoint(IPAddress.Parse("198.51.100.7"), 40000), 7354);
        yield return new("valid-reflect-reply-v4", buffer[..written]);
        written = GnsDatagram.WriteReflectReply(buffer, 9, GnsDatagram.ReflectFromOtherPort, new IPEndPoint(IPAddress.Parse("2001:db8::7"), 61000), 7354);
        yield return new("valid-reflect-reply-v6", buffer[..written]);
    }

    private static IEnumerable<FuzzSeed> GnsRecordSeeds()
    {
        using var key = SeedKit.Key(1);
        yield return new("valid-record", SeedKit.FullRecord(key).Encoded.ToArray());
        yield return new("valid-record-empty", SeedKit.EmptyRecord(key).Encoded.ToArray());
        yield return new("valid-removal", GnsRemoval.Create(key, 9, SeedKit.IssuedAt).Encoded.ToArray());
    }

    private static IEnumerable<FuzzSeed> ControlSeeds()
    {
        using var key = SeedKit.Key(2);
        var request = new ChallengeRequest(SeedKit.Filled(ChallengeDatagram.NonceSize, 0x5A), SeedKit.Guid(0x11), key.Guid);
        yield return new("valid-request", ChallengeDatagram.WriteRequest(request));
        yield return new("valid-response-v4", ChallengeDatagram.WriteResponse(ChallengeResponse.Create(key, request, new IPEndPoint(IPAddress.Parse("192.0.2.10"), 4400))));
        yield return new("valid-response-v6", ChallengeDatagram.WriteResponse(ChallengeResponse.Create(key, request, new IPEndPoint(IPAddress.Parse("2001:db8::10"), 4400))));
        yield return new("edge-request-unpadded", ChallengeDatagram.WriteRequest(request)[..ChallengeDatagram.RequestBodyEnd]);
    }
}
