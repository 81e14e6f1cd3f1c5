using System.Buffers;
using System.Net;
using System.Security.Cryptography;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using Mobility.Protocol.Wire;

namespace Mobility.Protocol.Relay;

/// <summary>The message types of the relay protocol (docs/protocol.md, "Relay"); other numbers are reserved.</summary>
public enum RelayMessageType : byte
{
    /// <summary>Host → relay, first on a control connection: "I want to register".</summary>
    Register = 1,

    /// <summary>Relay → host: the fresh nonce the host signs.</summary>
    Challenge = 2,

    /// <summary>Host → relay: GUID, public key, the relay endpoint the host dialled, signature.</summary>
    Proof = 3,

    /// <summary>Relay → host or dialler: the outcome of a Proof, a Dial or an Accept.</summary>
    Result = 4,

    /// <summary>Relay → host on the control connection: open a data connection for this splice id.</summary>
    SpliceRequest = 5,

    /// <summary>Keepalive on the control connection (either side); answered by <see cref="Pong"/> with the same token.</summary>
    Ping = 6,

    /// <summary>The answer to a <see cref="Ping"/>.</summary>
    Pong = 7,

    /// <summary>Peer → relay, first on a data connection: splice me to the host with this GUID.</summary>
    Dial = 8,

    /// <summary>Host → relay, first on a data connection: the connection asked for by a SpliceRequest.</summary>
    Accept = 9,
}

/// <summary>The status byte of a <see cref="RelayResult"/>; other values are reserved.</summary>
public enum RelayStatus : byte
{
    /// <summary>Registered, or spliced (the other side's bytes follow).</summary>
    Ok = 0,

    /// <summary>The proof does not verify (GUID is not the key's hash, wrong signature, or not this relay's endpoint).</summary>
    BadProof = 1,

    /// <summary>The GUID is not admitted by this relay (allow-list).</summary>
    NotAdmitted = 2,

    /// <summary>Too many registrations or dials from this source or for this GUID: try later.</summary>
    RateLimited = 3,

    /// <summary>The relay holds as many hosts or pending splices as it allows.</summary>
    Full = 4,

    /// <summary>Dial: no host with that GUID is registered here.</summary>
    UnknownHost = 5,

    /// <summary>Dial: the host did not open the data connection in time.</summary>
    HostTimeout = 6,

    /// <summary>Accept: no pending splice with that id for that GUID.</summary>
    UnknownSplice = 7,
}

/// <summary>
/// One message of the relay protocol. Every message is <c>"MRLY" || u8 version (1) || u8 type</c>
/// then a body whose size the type fixes (a Proof's depends on its address family), so a reader
/// never trusts a length from the wire. <see cref="TryRead"/> reads exactly one message and leaves
/// whatever follows (a spliced stream) in the reader.
/// </summary>
public abstract record RelayMessage
{
    public const byte Version = 1;

    public const int HeaderSize = 6;

    public const int NonceSize = 32;

    public const int SpliceIdSize = 16;

    /// <summary>The largest message: a Proof with an IPv6 endpoint.</summary>
    public const int MaxSize = HeaderSize + HostGuid.Size + HostKey.PublicKeySize + 17 + 2 + HostKey.SignatureSize;

    private static ReadOnlySpan<byte> Magic => "MRLY"u8;

    public abstract RelayMessageType Type { get; }

    /// <summary>The encoded size of this message.</summary>
    public abstract int Size { get; }

    /// <summary>The message's bytes.</summary>
    public byte[] Encode()
    {
        var bytes = new byte[Size];
        var writer = new WireWriter(bytes);
        writer.WriteBytes(Magic);
        writer.WriteByte(Version);
        writer.WriteByte((byte)Type);
        WriteBody(ref writer);
        return bytes;
    }

    private protected abstract void WriteBody(ref WireWriter writer);

    /// <summary>
    /// Reads one message. False: need more bytes (nothing consumed). <see cref="MalformedMessageException"/>:
    /// not a relay message (a wrong magic byte fails as soon as it arrives), an unknown version or type,
    /// an unknown address family or status.
    /// </summary>
    public static bool TryRead(ref SequenceReader<byte> reader, out RelayMessage message)
    {
        message = null!;
        Span<byte> buffer = stackalloc byte[MaxSize];
        var available = (int)Math.Min(reader.Remaining, MaxSize);
        reader.TryCopyTo(buffer[..available]);
        var seen = buffer[..available];
        var magic = Math.Min(available, Magic.Length);
        if (!seen[..magic].SequenceEqual(Magic[..magic]))
        {
            throw new MalformedMessageException("Not a relay message (bad magic).");
        }

        if (available > Magic.Length && seen[Magic.Length] != Version)
        {
            throw new MalformedMessageException($"Unknown relay protocol version {seen[Magic.Length]}.");
        }

        if (available < HeaderSize)
        {
            return false;
        }

        var type = (RelayMessageType)seen[5];
        var size = SizeOf(type, seen);
        if (size is null || available < size)
        {
            return false;
        }

        var body = new WireReader(seen[HeaderSize..size.Value]);
        message = type switch
        {
            RelayMessageType.Register => RelayRegister.Instance,
            RelayMessageType.Challenge => new RelayChallenge(body.ReadBytes(NonceSize).ToArray()),
            RelayMessageType.Proof => RelayProof.Read(ref body),
            RelayMessageType.Result => new RelayResult(ReadStatus(ref body)),
            RelayMessageType.SpliceRequest => new RelaySpliceRequest(body.ReadBytes(SpliceIdSize).ToArray()),
            RelayMessageType.Ping => new RelayPing(body.ReadUInt64()),
            RelayMessageType.Pong => new RelayPong(body.ReadUInt64()),
            RelayMessageType.Dial => new RelayDial(body.ReadGuid()),
            RelayMessageType.Accept => new RelayAccept(body.ReadGuid(), body.ReadBytes(SpliceIdSize).ToArray()),
            _ => throw new MalformedMessageException($"Unknown relay message type {(byte)type}."),
        };
        body.EnsureEnd(allowZeroPadding: false);
        reader.Advance(size.Value);
        return true;
    }

    /// <summary>The whole size of a message of <paramref name="type"/>, or null when more bytes are needed to know it.</summary>
    private static int? SizeOf(RelayMessageType type, ReadOnlySpan<byte> seen) => type switch
    {
        RelayMessageType.Register => HeaderSize,
        RelayMessageType.Challenge => HeaderSize + NonceSize,
        RelayMessageType.Proof => RelayProof.SizeFrom(seen),
        RelayMessageType.Result => HeaderSize + 1,
        RelayMessageType.SpliceRequest => HeaderSize + SpliceIdSize,
        RelayMessageType.Ping or RelayMessageType.Pong => HeaderSize + 8,
        RelayMessageType.Dial => HeaderSize + HostGuid.Size,
        RelayMessageType.Accept => HeaderSize + HostGuid.Size + SpliceIdSize,
        _ => throw new MalformedMessageException($"Unknown relay message type {(byte)type}."),
    };

    private static RelayStatus ReadStatus(ref WireReader body)
    {
        var status = body.ReadByte();
        return status <= (byte)RelayStatus.UnknownSplice
            ? (RelayStatus)status
            : throw new MalformedMessageException($"Unknown relay status {status}.");
    }

    /// <summary>A fresh random value of <paramref name="size"/> bytes (nonces, splice ids).</summary>
    public static byte[] NewRandom(int size) => RandomNumberGenerator.GetBytes(size);
}

/// <summary>Type 1: no body.</summary>
public sealed record RelayRegister : RelayMessage
{
    public static RelayRegister Instance { get; } = new();

    public override RelayMessageType Type => RelayMessageType.Register;

    public override int Size => HeaderSize;

    private protected override void WriteBody(ref WireWriter writer)
    {
    }
}

/// <summary>Type 2: the nonce (32 bytes) the host signs.</summary>
public sealed record RelayChallenge(byte[] Nonce) : RelayMessage
{
    public override RelayMessageType Type => RelayMessageType.Challenge;

    public override int Size => HeaderSize + NonceSize;

    private protected override void WriteBody(ref WireWriter writer) => writer.WriteBytes(Nonce);
}

/// <summary>Type 4: one status byte.</summary>
public sealed record RelayResult(RelayStatus Status) : RelayMessage
{
    public override RelayMessageType Type => RelayMessageType.Result;

    public override int Size => HeaderSize + 1;

    private protected override void WriteBody(ref WireWriter writer) => writer.WriteByte((byte)Status);
}

/// <summary>Type 5: the one-time splice id (16 bytes) the host echoes in its <see cref="RelayAccept"/>.</summary>
public sealed record RelaySpliceRequest(byte[] SpliceId) : RelayMessage
{
    public override RelayMessageType Type => RelayMessageType.SpliceRequest;

    public override int Size => HeaderSize + SpliceIdSize;

    private protected override void WriteBody(ref WireWriter writer) => writer.WriteBytes(SpliceId);
}

/// <summary>Type 6: a keepalive with a token the answer echoes.</summary>
public sealed record RelayPing(ulong Token) : RelayMessage
{
    public override RelayMessageType Type => RelayMessageType.Ping;

    public override int Size => HeaderSize + 8;

    private protected override void WriteBody(ref WireWriter writer) => writer.WriteUInt64(Token);
}

/// <summary>Type 7: the answer to a ping.</summary>
public sealed record RelayPong(ulong Token) : RelayMessage
{
    public override RelayMessageType Type => RelayMessageType.Pong;

    public override int Size => HeaderSize + 8;

    private protected override void WriteBody(ref WireWriter writer) => writer.WriteUInt64(Token);
}

/// <summary>Type 8: the GUID of the registered host to splice to.</summary>
public sealed record RelayDial(HostGuid Target) : RelayMessage
{
    public override RelayMessageType Type => RelayMessageType.Dial;

    public override int Size => HeaderSize + HostGuid.Size;

    private protected override void WriteBody(ref WireWriter writer) => writer.WriteGuid(Target);
}

/// <summary>Type 9: the registered host's GUID and the splice id of the <see cref="RelaySpliceRequest"/> it answers.</summary>
public sealed record RelayAccept(HostGuid Host, byte[] SpliceId) : RelayMessage
{
    public override RelayMessageType Type => RelayMessageType.Accept;

    public override int Size => HeaderSize + HostGuid.Size + SpliceIdSize;

    private protected override void WriteBody(ref WireWriter writer)
    {
        writer.WriteGuid(Host);
        writer.WriteBytes(SpliceId);
    }
}
