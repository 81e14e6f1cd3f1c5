using System.Buffers;
using System.Net;
using Mobility.Protocol.Transport;

namespace Mobility.Fuzz;

public static partial class Targets
{
    /// <summary>The key every seed frame is sealed with, and the harness opens frames with.</summary>
    private static readonly byte[] FrameKey = SeedKit.Filled(TransportConstants.SymmetricKeySize, 0x42);

    /// <summary>The resume key every seed Resume and ResumeAck is authenticated with.</summary>
    private static readonly byte[] ResumeKey = SeedKit.Filled(TransportConstants.SymmetricKeySize, 0x24);

    /// <summary>A handshake, message after message, as a flow's first bytes (src/Mobility.Transport/Internal/HandshakeIo.cs).</summary>
    private static FuzzTarget Handshake() => new("handshake",
        "HandshakeMessage.TryRead over a stream (ClientHello, ServerHello, ClientFinish, Reject, Resume, ResumeAck), then re-encoding, X25519 agreement with the ephemeral keys and the resume MACs",
        Malformed,
        input => StreamCheck.Drain(input, Malformed, int.MaxValue, ReadHandshakeMessage),
        HandshakeSeeds);

    /// <summary>
    /// A resumed flow as the client reads it (MobileConnection.Flow.cs): the server's answer to
    /// Resume (ResumeAck or Reject), then data-phase frames in the same buffer.
    /// </summary>
    private static FuzzTarget Resume() => new("resume",
        "HandshakeMessage.TryRead for the answer to Resume, then TransportFrame.TryRead, FrameProtector.TryOpen and the frame body readers",
        Malformed,
        input => StreamCheck.Drain(input, Malformed, int.MaxValue,
            (ref SequenceReader<byte> reader, int index) => index == 0 ? ReadHandshakeMessage(ref reader, index) : ReadFrame(ref reader, index)),
        ResumeSeeds);

    /// <summary>Data-phase frames as a flow's receive loop reads them.</summary>
    private static FuzzTarget Frames() => new("frames",
        "TransportFrame.TryRead over a stream, FrameProtector.TryOpen (both modes), ReadData, ReadAck, ReadU64, ReadReset, DATAGRAM and CANDIDATES bodies",
        Malformed,
        input => StreamCheck.Drain(input, Malformed, int.MaxValue, ReadFrame),
        FrameSeeds);

    private static string? ReadHandshakeMessage(ref SequenceReader<byte> reader, int index)
    {
        var start = reader.Position;
        if (!HandshakeMessage.TryRead(ref reader, out var message))
        {
            return null;
        }

        if (message is UnsupportedVersion unsupported)
        {
            return $"unsupported version {unsupported.Version}";
        }

        // Every field is fixed-size and checked, so the message re-encodes to exactly what was read.
        var consumed = reader.Sequence.Slice(start, reader.Position).ToArray();
        var encoded = message!.ToArray();
        Require(encoded.AsSpan().SequenceEqual(consumed), $"{message.Type} does not re-encode to its bytes.");
        switch (message)
        {
            case ClientHello hello:
                Agree(hello.EphemeralPublicKey);
                break;
            case ServerHello hello:
                Agree(hello.EphemeralPublicKey);
                break;
            case ResumeRequest resume:
                resume.VerifyMac(ResumeKey);
                break;
            case ResumeAck ack:
                ack.VerifyMac(ResumeKey);
                break;
        }

        return $"{message.Type} {Hex(encoded)}";
    }

    /// <summary>What the handshake does with a peer's ephemeral key (it may be a low-order point).</summary>
    private static void Agree(byte[] peerPublicKey)
    {
        using var local = new EphemeralKey();
        using var secrets = local.DeriveSecrets(peerPublicKey, new byte[32]);
    }

    private static string? ReadFrame(ref SequenceReader<byte> reader, int index)
    {
        if (!TransportFrame.TryRead(ref reader, TransportConstants.MaxFrameLength, out var frame))
        {
            return null;
        }

        var bodyLength = frame.BodyLength;
        var body = new byte[bodyLength];
        var scratch = new byte[TransportConstants.FrameHeaderSize + bodyLength + TransportConstants.AeadTagSize];
        string opened;
        using (var sealedOpener = new FrameProtector(FrameKey, encrypt: true))
        using (var clearOpener = new FrameProtector(FrameKey, encrypt: false))
        {
            if (sealedOpener.TryOpen(frame, body, scratch))
            {
                opened = "sealed";
            }
            else if (clearOpener.TryOpen(frame, body, scratch))
            {
                opened = "authenticated";
            }
            else
            {
                // A receive loop drops the flow here; the body readers still get the unauthenticated bytes.
                opened = "forged";
                frame.Sealed.Slice(0, bodyLength).CopyTo(body);
            }
        }

        return $"{frame.Type} #{frame.Counter} {opened} {ReadBody(frame.Type, body)}";
    }

    private static string ReadBody(FrameType type, byte[] body)
    {
        switch (type)
        {
            case FrameType.Data:
                var (offset, payload) = TransportFrame.ReadData(body);
                Require(payload.Length == body.Length - 8, "A data frame's payload is not the rest of its body.");
                return $"offset {offset} payload {Hex(payload.Span)}";
            case FrameType.Ack:
                var (received, consumed) = TransportFrame.ReadAck(body);
                return $"received {received} consumed {consumed}";
            case FrameType.Reset:
                return $"code {TransportFrame.ReadReset(body)}";
            case FrameType.Datagram:
                TransportFrame.CheckBodyLength(type, body.Length);
                return $"datagram {Hex(body)}";
            case FrameType.Punch:
                return $"punch attempt {TransportFrame.ReadPunch(body)}";
            case FrameType.Candidates:
                TransportFrame.CheckBodyLength(type, body.Length);
                var (punch, candidates) = DirectCandidates.Read(body);
                // Written again it is the same body, but for the flag bits a reader ignores.
                var again = DirectCandidates.Encode(punch, candidates);
                again[0] |= (byte)(body[0] & ~DirectCandidates.PunchFlag);
                Require(again.AsSpan().SequenceEqual(body), "A CANDIDATES body read and written again differs.");
                return $"punch {punch} candidates {string.Join(",", candidates.Select(c => $"{c.Kind}:{c.EndPoint}"))}";
            default:
                return $"value {TransportFrame.ReadU64(type, body)}";
        }
    }

    /// <summary>A CANDIDATES body with flag bit 1 (the sender takes PUNCH frames) set, as a connection sends it.</summary>
    private static byte[] WithPunchFrames(byte[] body)
    {
        body[0] |= DirectCandidates.PunchFramesFlag;
        return body;
    }

    private static IEnumerable<FuzzSeed> HandshakeSeeds()
    {
        using var client = SeedKit.Key(3);
        using var server = SeedKit.Key(4);
        var token = new UInt128(0x0102030405060708, 0x090A0B0C0D0E0F10);
        var hello = new ClientHello(HandshakeFlags.None, client.Guid, client.PublicKeyBytes(), SeedKit.Filled(32, 9),
            SeedKit.Filled(TransportConstants.NonceSize, 7), token, server.Guid, TransportConstants.MinReceiveWindow).ToArray();
        yield return new("valid-client-hello", hello);
        var serverHello = new ServerHello(HandshakeFlags.AuthenticateOnly, server.Guid, server.PublicKeyBytes(), SeedKit.Filled(32, 10),
            SeedKit.Filled(TransportConstants.NonceSize, 8), TransportConstants.MaxReceiveWindow, server.Sign("transcript"u8)).ToArray();
        yield return new("valid-server-hello", serverHello);
        var finish = new ClientFinish(client.Sign("transcript"u8)).ToArray();
        yield return new("valid-client-finish", finish);
        yield return new("valid-hello-then-finish", SeedKit.Concat(hello, finish));
        yield return new("valid-reject", new HandshakeReject(RejectReason.Busy).ToArray());
        yield return new("valid-resume", ResumeRequest.Create(ResumeKey, client.Guid, server.Guid, token, 5, 1000).ToArray());
        yield return new("valid-resume-ack", ResumeAck.Create(ResumeKey, token, 6, 2000).ToArray());
        yield return new("valid-call-back", CallBackRequest.Create(ResumeKey, client.Guid, server.Guid, token, 3, 1500).ToArray());
        var otherVersion = hello[..TransportConstants.PreambleSize];
        otherVersion[4] = 2;
        yield return new("valid-other-version", otherVersion);
        yield return new("edge-magic-only", "MOBT"u8.ToArray());
    }

    private static IEnumerable<FuzzSeed> ResumeSeeds()
    {
        var token = new UInt128(0x0102030405060708, 0x090A0B0C0D0E0F10);
        var ack = ResumeAck.Create(ResumeKey, token, 6, 2000).ToArray();
        yield return new("valid-ack-then-frames", SeedKit.Concat(ack, Frame(FrameType.Data, 7, DataBody(2000, "resumed"u8)), Frame(FrameType.Ack, 8, AckBody(4096, 4000))));
        yield return new("valid-ack-only", ack);
        yield return new("valid-refused", new HandshakeReject(RejectReason.ResumeRefused).ToArray());
    }

    private static IEnumerable<FuzzSeed> FrameSeeds()
    {
        yield return new("valid-data", Frame(FrameType.Data, 1, DataBody(0, "hello, mobile world"u8)));
        yield return new("valid-data-authenticated", Frame(FrameType.Data, 2, DataBody(19, "in clear"u8), encrypt: false));
        yield return new("valid-ack", Frame(FrameType.Ack, 3, AckBody(27, 19)));
        yield return new("valid-control", SeedKit.Concat(
            Frame(FrameType.Fin, 4, U64Body(27)),
            Frame(FrameType.Ping, 5, U64Body(77)),
            Frame(FrameType.Pong, 6, U64Body(77)),
            Frame(FrameType.Reset, 7, [0, 0, 0, 3])));
        yield return new("valid-datagrams", SeedKit.Concat(
            Frame(FrameType.Datagram, 9, "one datagram"u8.ToArray()),
            Frame(FrameType.Data, 10, DataBody(0, "between"u8)),
            Frame(FrameType.Datagram, 11, [0x42], encrypt: false)));
        yield return new("valid-candidates", Frame(FrameType.Candidates, 12, DirectCandidates.Encode(true,
        [
            new(DirectCandidateKind.Mapped, new IPEndPoint(IPAddress.Parse("203.0.113.5"), 7391)),
            new(DirectCandidateKind.Reflexive, new IPEndPoint(IPAddress.Parse("198.51.100.7"), 7391)),
            new(DirectCandidateKind.Local, new IPEndPoint(IPAddress.Parse("2001:db8::10"), 7391)),
        ])));
        yield return new("valid-punch", SeedKit.Concat(
            Frame(FrameType.Candidates, 13, WithPunchFrames(DirectCandidates.Encode(true, [new(DirectCandidateKind.Reflexive, new IPEndPoint(IPAddress.Parse("198.51.100.7"), 7391))]))),
            Frame(FrameType.Punch, 14, [0, 0, 0, 1])));
        var partial = Frame(FrameType.Data, 8, DataBody(0, "cut"u8));
        yield return new("valid-partial", partial[..^5]);
    }

    private static byte[] Frame(FrameType type, ulong counter, byte[] body, bool encrypt = true)
    {
        using var protector = new FrameProtector(FrameKey, encrypt);
        var frame = new byte[TransportFrame.WireSize(body.Length)];
        protector.Seal(type, counter, body, frame);
        return frame;
    }

    private static byte[] DataBody(ulong offset, ReadOnlySpan<byte> payload) => SeedKit.Concat(U64Body(offset), payload.ToArray());

    private static byte[] AckBody(ulong received, ulong consumed) => SeedKit.Concat(U64Body(received), U64Body(consumed));

    private static byte[] U64Body(ulong value)
    {
        var bytes = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        return bytes;
    }
}
