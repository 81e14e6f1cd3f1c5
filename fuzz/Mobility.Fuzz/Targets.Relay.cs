using System.Buffers;
using System.Net;
using Mobility.Protocol;
using Mobility.Protocol.Relay;

namespace Mobility.Fuzz;

public static partial class Targets
{
    private static readonly Type[] RelayMalformed = [typeof(MalformedMessageException)];

    /// <summary>The nonce every relay seed is signed over, so a valid proof verifies in the harness.</summary>
    private static readonly byte[] RelayNonce = SeedKit.Filled(RelayMessage.NonceSize, 0x5A);

    /// <summary>
    /// What a relay reads from a host or a dialler and a relay client reads from a relay: relay
    /// messages one after the other; each must re-encode to its bytes, and a proof is verified.
    /// </summary>
    private static FuzzTarget RelayTarget() => new("relay",
        "RelayMessage.TryRead message after message over a stream; RelayProof.Verify",
        RelayMalformed,
        input => StreamCheck.Drain(input, RelayMalformed, 8, (ref SequenceReader<byte> reader, int index) =>
        {
            _ = index;
            var start = reader.Position;
            if (!RelayMessage.TryRead(ref reader, out var message))
            {
                return null;
            }

            var read = reader.Sequence.Slice(start, reader.Position).ToArray();
            Require(message.Encode().AsSpan().SequenceEqual(read), "A relay message does not re-encode to its bytes.");
            Require(read.Length <= RelayMessage.MaxSize, "A relay message is larger than the largest.");
            return message is RelayProof proof
                ? $"proof {proof.Guid} {proof.Relay} verified={proof.Verify(RelayNonce)}"
                : $"{message.Type} {Hex(read)}";
        }),
        RelaySeeds);

    private static IEnumerable<FuzzSeed> RelaySeeds()
    {
        using var key = SeedKit.Key(0x31);
        var proof = RelayProof.Create(key, RelayNonce, new IPEndPoint(IPAddress.Parse("192.0.2.7"), 7395));
        var proof6 = RelayProof.Create(key, RelayNonce, new IPEndPoint(IPAddress.Parse("2001:db8::7"), 443));
        var spliceId = SeedKit.Filled(RelayMessage.SpliceIdSize, 0xC3);
        yield return new("valid-register-proof-ping", SeedKit.Concat(RelayRegister.Instance.Encode(), proof.Encode(), new RelayPing(7).Encode()));
        yield return new("valid-proof-ipv6", proof6.Encode());
        yield return new("valid-relay-to-host", SeedKit.Concat(new RelayChallenge(RelayNonce).Encode(), new RelayResult(RelayStatus.Ok).Encode(),
            new RelaySpliceRequest(spliceId).Encode(), new RelayPong(7).Encode()));
        yield return new("edge-dial-then-spliced-bytes", SeedKit.Concat(new RelayDial(key.Guid).Encode(), "MOBT"u8.ToArray()));
        yield return new("valid-accept", new RelayAccept(key.Guid, spliceId).Encode());
        yield return new("valid-refusals", SeedKit.Concat(new RelayResult(RelayStatus.RateLimited).Encode(), new RelayResult(RelayStatus.UnknownSplice).Encode()));
        yield return new("edge-partial-proof", proof.Encode()[..60]);
    }
}
