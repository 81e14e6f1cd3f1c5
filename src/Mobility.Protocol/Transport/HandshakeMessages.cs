using System.Buffers;
using System.Buffers.Binary;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Wire;

namespace Mobility.Protocol.Transport;

/// <summary>
/// A handshake message of the mobile transport. Every message is
/// <c>magic "MOBT" | version u8 | type u8 | fixed-size body</c>; sizes are fixed per type, so no
/// length read from the wire is ever trusted. See docs/transport.md for the byte layout.
/// </summary>
public abstract record HandshakeMessage
{
    public abstract HandshakeMessageType Type { get; }

    /// <summary>Total encoded size, preamble included.</summary>
    public abstract int Size { get; }

    /// <summary>Writes the whole message (preamble included) into <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        var writer = new WireWriter(destination[..Size]);
        writer.WriteBytes(TransportConstants.Magic);
        writer.WriteByte(TransportConstants.Version);
        writer.WriteByte((byte)Type);
        WriteBody(ref writer);
        if (writer.Position != Size)
        {
            throw new InvalidOperationException($"{Type} wrote {writer.Position} bytes, expected {Size}.");
        }
    }

    public byte[] ToArray()
    {
        var bytes = new byte[Size];
        WriteTo(bytes);
        return bytes;
    }

    private protected abstract void WriteBody(ref WireWriter writer);

    /// <summary>Size of a message of <paramref name="type"/>, preamble included.</summary>
    public static int SizeOf(HandshakeMessageType type) => type switch
    {
        HandshakeMessageType.ClientHello => ClientHello.EncodedSize,
        HandshakeMessageType.ServerHello => ServerHello.EncodedSize,
        HandshakeMessageType.ClientFinish => ClientFinish.EncodedSize,
        HandshakeMessageType.Reject => HandshakeReject.EncodedSize,
        HandshakeMessageType.Resume or HandshakeMessageType.Join => ResumeRequest.EncodedSize,
        HandshakeMessageType.ResumeAck or HandshakeMessageType.JoinAck => ResumeAck.EncodedSize,
        HandshakeMessageType.CookieReply => CookieReply.EncodedSize,
        HandshakeMessageType.CookieEcho => CookieEcho.EncodedSize,
        HandshakeMessageType.CallBack => CallBackRequest.EncodedSize,
        HandshakeMessageType.Reverse => ReverseRequest.EncodedSize,
        _ => throw new MalformedMessageException($"Unknown handshake message type {(byte)type}."),
    };

    /// <summary>
    /// Reads one handshake message. False: more bytes are needed (nothing consumed).
    /// Throws <see cref="MalformedMessageException"/> when the bytes are not a mobile transport
    /// message (wrong magic, unknown type, invalid field). A peer speaking another version yields
    /// <see cref="UnsupportedVersion"/> after consuming only the preamble, so the server can answer it.
    /// </summary>
    public static bool TryRead(ref SequenceReader<byte> reader, out HandshakeMessage? message)
    {
        message = null;
        Span<byte> preamble = stackalloc byte[TransportConstants.PreambleSize];
        // Check the magic on as many bytes as we have, so a plain TCP peer is rejected on its first byte.
        var available = (int)Math.Min(reader.Remaining, TransportConstants.PreambleSize);
        if (!reader.TryCopyTo(preamble[..available]))
        {
            return false;
        }

        var magicBytes = Math.Min(available, TransportConstants.MagicSize);
        if (!preamble[..magicBytes].SequenceEqual(TransportConstants.Magic[..magicBytes]))
        {
            throw new MalformedMessageException("Not a mobile transport message (bad magic).");
        }

        if (available < TransportConstants.PreambleSize)
        {
            return false;
        }

        var version = preamble[4];
        if (version != TransportConstants.Version)
        {
            reader.Advance(TransportConstants.PreambleSize);
            message = new UnsupportedVersion(version);
            return true;
        }

        var type = (HandshakeMessageType)preamble[5];
        var size = SizeOf(type);
        if (reader.Remaining < size)
        {
            return false;
        }

        var bytes = size <= 256 ? stackalloc byte[size] : new byte[size];
        reader.TryCopyTo(bytes);
        var wire = new WireReader(bytes);
        wire.ReadBytes(TransportConstants.PreambleSize);
        message = type switch
        {
            HandshakeMessageType.ClientHello => ClientHello.ReadBody(ref wire),
            HandshakeMessageType.ServerHello => ServerHello.ReadBody(ref wire),
            HandshakeMessageType.ClientFinish => ClientFinish.ReadBody(ref wire),
            HandshakeMessageType.Reject => HandshakeReject.ReadBody(ref wire),
            HandshakeMessageType.Resume => ResumeRequest.ReadBody(ref wire),
            HandshakeMessageType.Join => ResumeRequest.ReadBody(ref wire) with { Standby = true },
            HandshakeMessageType.ResumeAck => ResumeAck.ReadBody(ref wire),
            HandshakeMessageType.JoinAck => ResumeAck.ReadBody(ref wire) with { Standby = true },
            HandshakeMessageType.CookieReply => new CookieReply(ReadArray(ref wire, TransportConstants.CookieSize)),
            HandshakeMessageType.CookieEcho => new CookieEcho(ReadArray(ref wire, TransportConstants.CookieSize)),
            HandshakeMessageType.CallBack => CallBackRequest.ReadBody(ref wire),
            HandshakeMessageType.Reverse => ReverseRequest.ReadBody(ref wire),
            _ => throw new MalformedMessageException($"Unknown handshake message type {(byte)type}."),
        };
        wire.EnsureEnd(allowZeroPadding: false);
        reader.Advance(size);
        return true;
    }

    internal static UInt128 ReadToken(ref WireReader reader)
    {
        var hi = reader.ReadUInt64();
        var lo = reader.ReadUInt64();
        return new UInt128(hi, lo);
    }

    internal static void WriteToken(ref WireWriter writer, UInt128 token)
    {
        writer.WriteUInt64((ulong)(token >> 64));
        writer.WriteUInt64((ulong)token);
    }

    internal static void WriteToken(Span<byte> destination, UInt128 token)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, (ulong)(token >> 64));
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], (ulong)token);
    }

    internal static HandshakeFlags ReadFlags(ref WireReader reader)
    {
        var flags = (HandshakeFlags)reader.ReadByte();
        if ((flags & ~HandshakeFlags.AuthenticateOnly) != 0)
        {
            throw new MalformedMessageException($"Unknown handshake flags 0x{(byte)flags:x2}.");
        }

        return flags;
    }

    internal static uint ReadWindow(ref WireReader reader)
    {
        var window = reader.ReadUInt32();
        if (window is < TransportConstants.MinReceiveWindow or > TransportConstants.MaxReceiveWindow)
        {
            throw new MalformedMessageException($"Receive window {window} outside [{TransportConstants.MinReceiveWindow}, {TransportConstants.MaxReceiveWindow}].");
        }

        return window;
    }

    internal static byte[] ReadArray(ref WireReader reader, int size) => reader.ReadBytes(size).ToArray();

    /// <summary>What both hellos start with: flags, the sender's GUID and public key, its ephemeral key, its nonce.</summary>
    internal static void WriteHelloStart(ref WireWriter writer, HandshakeFlags flags, HostGuid guid, byte[] publicKey, byte[] ephemeralPublicKey, byte[] nonce)
    {
        writer.WriteByte((byte)flags);
        writer.WriteGuid(guid);
        writer.WriteBytes(publicKey);
        writer.WriteBytes(ephemeralPublicKey);
        writer.WriteBytes(nonce);
    }

    /// <inheritdoc cref="WriteHelloStart"/>
    internal static (HandshakeFlags Flags, HostGuid Guid, byte[] PublicKey, byte[] EphemeralPublicKey, byte[] Nonce) ReadHelloStart(ref WireReader reader)
    {
        var flags = ReadFlags(ref reader);
        var guid = reader.ReadGuid();
        var key = ReadArray(ref reader, HostKey.PublicKeySize);
        var eph = ReadArray(ref reader, TransportConstants.EphemeralKeySize);
        var nonce = ReadArray(ref reader, TransportConstants.NonceSize);
        return (flags, guid, key, eph, nonce);
    }

    /// <summary>
    /// The MAC of <paramref name="unsigned"/> (a message whose last field is its MAC, that field zero): HMAC-SHA256
    /// under <paramref name="resumeKey"/> and <paramref name="context"/> over every byte before the MAC, preamble included.
    /// </summary>
    private protected static byte[] ComputeMac(HandshakeMessage unsigned, ReadOnlySpan<byte> resumeKey, ReadOnlySpan<byte> context)
    {
        Span<byte> bytes = stackalloc byte[unsigned.Size];
        unsigned.WriteTo(bytes);
        var mac = new byte[TransportConstants.MacSize];
        ResumeMac.Compute(resumeKey, context, bytes[..^TransportConstants.MacSize], mac);
        return mac;
    }

    /// <summary>True when <paramref name="mac"/>, this message's last field, is valid under <paramref name="resumeKey"/> and <paramref name="context"/> (constant-time compare).</summary>
    private protected bool MacHolds(ReadOnlySpan<byte> resumeKey, ReadOnlySpan<byte> context, byte[] mac)
    {
        Span<byte> bytes = stackalloc byte[Size];
        WriteTo(bytes);
        return ResumeMac.Verify(resumeKey, context, bytes[..^TransportConstants.MacSize], mac);
    }

    /// <summary>Returns <paramref name="value"/> when it is <paramref name="size"/> bytes long (a fixed-size field of a message).</summary>
    internal static byte[] Require(byte[] value, int size, string name)
    {
        if (value is null || value.Length != size)
        {
            throw new ArgumentException($"{name} must be {size} bytes.", name);
        }

        return value;
    }
}

/// <summary>A message whose version byte is not ours; only the preamble was read.</summary>
public sealed record UnsupportedVersion(byte Version) : HandshakeMessage
{
    public override HandshakeMessageType Type => 0;

    public override int Size => TransportConstants.PreambleSize;

    private protected override void WriteBody(ref WireWriter writer) =>
        throw new NotSupportedException("An unsupported-version message is never written.");
}

/// <summary>First message of a new connection, client to server.</summary>
/// <param name="ExpectedServer">The server GUID the client expects, or <see cref="HostGuid.Empty"/> when connecting by address.</param>
public sealed record ClientHello(HandshakeFlags Flags, HostGuid ClientGuid, byte[] ClientPublicKey, byte[] EphemeralPublicKey,
    byte[] Nonce, UInt128 Token, HostGuid ExpectedServer, uint ReceiveWindow) : HandshakeMessage
{
    public const int EncodedSize = TransportConstants.PreambleSize + 1 + HostGuid.Size + HostKey.PublicKeySize
        + TransportConstants.EphemeralKeySize + TransportConstants.NonceSize + TransportConstants.TokenSize + HostGuid.Size + 4;

    public byte[] ClientPublicKey { get; } = Require(ClientPublicKey, HostKey.PublicKeySize, nameof(ClientPublicKey));

    public byte[] EphemeralPublicKey { get; } = Require(EphemeralPublicKey, TransportConstants.EphemeralKeySize, nameof(EphemeralPublicKey));

    public byte[] Nonce { get; } = Require(Nonce, TransportConstants.NonceSize, nameof(Nonce));

    public override HandshakeMessageType Type => HandshakeMessageType.ClientHello;

    public override int Size => EncodedSize;

    private protected override void WriteBody(ref WireWriter writer)
    {
        WriteHelloStart(ref writer, Flags, ClientGuid, ClientPublicKey, EphemeralPublicKey, Nonce);
        WriteToken(ref writer, Token);
        writer.WriteGuid(ExpectedServer);
        writer.WriteUInt32(ReceiveWindow);
    }

    internal static ClientHello ReadBody(ref WireReader reader)
    {
        var (flags, guid, key, eph, nonce) = ReadHelloStart(ref reader);
        var token = ReadToken(ref reader);
        var expected = reader.ReadGuid();
        var window = ReadWindow(ref reader);
        return new ClientHello(flags, guid, key, eph, nonce, token, expected, window);
    }
}

/// <summary>Server's answer to <see cref="ClientHello"/>, signed over the transcript.</summary>
public sealed record ServerHello(HandshakeFlags Flags, HostGuid ServerGuid, byte[] ServerPublicKey, byte[] EphemeralPublicKey,
    byte[] Nonce, uint ReceiveWindow, byte[] Signature) : HandshakeMessage
{
    /// <summary>Size of the part covered by the transcript hash (everything but the signature).</summary>
    public const int UnsignedSize = TransportConstants.PreambleSize + 1 + HostGuid.Size + HostKey.PublicKeySize
        + TransportConstants.EphemeralKeySize + TransportConstants.NonceSize + 4;

    public const int EncodedSize = UnsignedSize + HostKey.SignatureSize;

    public byte[] ServerPublicKey { get; } = Require(ServerPublicKey, HostKey.PublicKeySize, nameof(ServerPublicKey));

    public byte[] EphemeralPublicKey { get; } = Require(EphemeralPublicKey, TransportConstants.EphemeralKeySize, nameof(EphemeralPublicKey));

    public byte[] Nonce { get; } = Require(Nonce, TransportConstants.NonceSize, nameof(Nonce));

    public byte[] Signature { get; } = Require(Signature, HostKey.SignatureSize, nameof(Signature));

    public override HandshakeMessageType Type => HandshakeMessageType.ServerHello;

    public override int Size => EncodedSize;

    /// <summary>A copy with another signature (the server encodes, hashes, signs, then fills it in).</summary>
    public ServerHello WithSignature(byte[] signature)
        => new(Flags, ServerGuid, ServerPublicKey, EphemeralPublicKey, Nonce, ReceiveWindow, signature);

    private protected override void WriteBody(ref WireWriter writer)
    {
        WriteHelloStart(ref writer, Flags, ServerGuid, ServerPublicKey, EphemeralPublicKey, Nonce);
        writer.WriteUInt32(ReceiveWindow);
        writer.WriteBytes(Signature);
    }

    internal static ServerHello ReadBody(ref WireReader reader)
    {
        var (flags, guid, key, eph, nonce) = ReadHelloStart(ref reader);
        var window = ReadWindow(ref reader);
        var signature = ReadArray(ref reader, HostKey.SignatureSize);
        return new ServerHello(flags, guid, key, eph, nonce, window, signature);
    }
}

/// <summary>Client's proof of identity: its signature over the transcript.</summary>
public sealed record ClientFinish(byte[] Signature) : HandshakeMessage
{
    public const int EncodedSize = TransportConstants.PreambleSize + HostKey.SignatureSize;

    public byte[] Signature { get; } = Require(Signature, HostKey.SignatureSize, nameof(Signature));

    public override HandshakeMessageType Type => HandshakeMessageType.ClientFinish;

    public override int Size => EncodedSize;

    private protected override void WriteBody(ref WireWriter writer) => writer.WriteBytes(Signature);

    internal static ClientFinish ReadBody(ref WireReader reader) => new(ReadArray(ref reader, HostKey.SignatureSize));
}

/// <summary>A server's refusal of a flow. Unauthenticated: a client treats it as a hint, never as proof.</summary>
public sealed record HandshakeReject(RejectReason Reason) : HandshakeMessage
{
    public const int EncodedSize = TransportConstants.PreambleSize + 1;

    public override HandshakeMessageType Type => HandshakeMessageType.Reject;

    public override int Size => EncodedSize;

    private protected override void WriteBody(ref WireWriter writer) => writer.WriteByte((byte)Reason);

    internal static HandshakeReject ReadBody(ref WireReader reader)
    {
        var reason = (RejectReason)reader.ReadByte();
        if (!Enum.IsDefined(reason))
        {
            throw new MalformedMessageException($"Unknown reject reason {(byte)reason}.");
        }

        return new HandshakeReject(reason);
    }
}

/// <summary>
/// First message of a flow that continues an existing connection. The MAC (HMAC-SHA256 under the
/// session's resume key, context <see cref="SigningContext.TransportResume"/>) covers every byte
/// before it, preamble included.
/// </summary>
/// <param name="Counter">Strictly increasing per connection; the server refuses a counter it has seen.</param>
/// <param name="ReceivedOffset">The client's cumulative receive position (stream bytes, plus one once FIN is received).</param>
/// <remarks>
/// With <see cref="Standby"/> the same body is a Join (type 10): the flow joins the connection as a
/// standby path instead of replacing its path. The type byte is in the MAC'd bytes, so a Join cannot
/// be replayed as a Resume or the other way round, and both draw on the one counter.
/// </remarks>
public sealed record ResumeRequest(HostGuid ClientGuid, HostGuid ServerGuid, UInt128 Token, ulong Counter, ulong ReceivedOffset, byte[] Mac)
    : HandshakeMessage
{
    public const int MacOffset = TransportConstants.PreambleSize + HostGuid.Size + HostGuid.Size + TransportConstants.TokenSize + 8 + 8;

    public const int EncodedSize = MacOffset + TransportConstants.MacSize;

    public byte[] Mac { get; } = Require(Mac, TransportConstants.MacSize, nameof(Mac));

    /// <summary>A Join (type 10: a standby path) rather than a Resume (type 5).</summary>
    public bool Standby { get; init; }

    public override HandshakeMessageType Type => Standby ? HandshakeMessageType.Join : HandshakeMessageType.Resume;

    public override int Size => EncodedSize;

    /// <summary>Builds a request (a Join with <paramref name="standby"/>) and computes its MAC.</summary>
    public static ResumeRequest Create(ReadOnlySpan<byte> resumeKey, HostGuid clientGuid, HostGuid serverGuid, UInt128 token, ulong counter, ulong receivedOffset, bool standby = false)
    {
        var unsigned = new ResumeRequest(clientGuid, serverGuid, token, counter, receivedOffset, new byte[TransportConstants.MacSize]) { Standby = standby };
        var mac = ComputeMac(unsigned, resumeKey, SigningContext.TransportResume);
        return new ResumeRequest(clientGuid, serverGuid, token, counter, receivedOffset, mac) { Standby = standby };
    }

    /// <summary>True when the MAC is valid under <paramref name="resumeKey"/> (constant-time compare).</summary>
    public bool VerifyMac(ReadOnlySpan<byte> resumeKey) => MacHolds(resumeKey, SigningContext.TransportResume, Mac);

    private protected override void WriteBody(ref WireWriter writer)
    {
        writer.WriteGuid(ClientGuid);
        writer.WriteGuid(ServerGuid);
        WriteToken(ref writer, Token);
        writer.WriteUInt64(Counter);
        writer.WriteUInt64(ReceivedOffset);
        writer.WriteBytes(Mac);
    }

    internal static ResumeRequest ReadBody(ref WireReader reader)
    {
        var client = reader.ReadGuid();
        var server = reader.ReadGuid();
        var token = ReadToken(ref reader);
        var counter = reader.ReadUInt64();
        var received = reader.ReadUInt64();
        var mac = ReadArray(ref reader, TransportConstants.MacSize);
        return new ResumeRequest(client, server, token, counter, received, mac);
    }
}

/// <summary>Server's acceptance of a <see cref="ResumeRequest"/>; echoes its counter, MAC under the resume key.</summary>
public sealed record ResumeAck(UInt128 Token, ulong Counter, ulong ReceivedOffset, byte[] Mac) : HandshakeMessage
{
    public const int MacOffset = TransportConstants.PreambleSize + TransportConstants.TokenSize + 8 + 8;

    public const int EncodedSize = MacOffset + TransportConstants.MacSize;

    public byte[] Mac { get; } = Require(Mac, TransportConstants.MacSize, nameof(Mac));

    /// <summary>A JoinAck (type 11: answers a Join) rather than a ResumeAck (type 6).</summary>
    public bool Standby { get; init; }

    public override HandshakeMessageType Type => Standby ? HandshakeMessageType.JoinAck : HandshakeMessageType.ResumeAck;

    public override int Size => EncodedSize;

    public static ResumeAck Create(ReadOnlySpan<byte> resumeKey, UInt128 token, ulong counter, ulong receivedOffset, bool standby = false)
    {
        var unsigned = new ResumeAck(token, counter, receivedOffset, new byte[TransportConstants.MacSize]) { Standby = standby };
        var mac = ComputeMac(unsigned, resumeKey, SigningContext.TransportResumeAck);
        return new ResumeAck(token, counter, receivedOffset, mac) { Standby = standby };
    }

    public bool VerifyMac(ReadOnlySpan<byte> resumeKey) => MacHolds(resumeKey, SigningContext.TransportResumeAck, Mac);

    private protected override void WriteBody(ref WireWriter writer)
    {
        WriteToken(ref writer, Token);
        writer.WriteUInt64(Counter);
        writer.WriteUInt64(ReceivedOffset);
        writer.WriteBytes(Mac);
    }

    internal static ResumeAck ReadBody(ref WireReader reader)
    {
        var token = ReadToken(ref reader);
        var counter = reader.ReadUInt64();
        var received = reader.ReadUInt64();
        var mac = ReadArray(ref reader, TransportConstants.MacSize);
        return new ResumeAck(token, counter, received, mac);
    }
}

/// <summary>
/// First message of a flow the server opens to its client's listener: a <see cref="CallBackRequest"/> (type 12) or a
/// <see cref="ReverseRequest"/> (type 13). Both start with the GUIDs, the token and the server's own counter of that kind
/// (1, 2, ...; 0 is malformed: the client acts only on one above the last it acted on), and end with an HMAC-SHA256 under
/// the session's resume key, in each kind's own context, over every byte before it, preamble (and so the type) included:
/// it proves the sender holds the session's secret, and one kind cannot be relabelled as the other.
/// </summary>
public abstract record ServerDialRequest(HostGuid ClientGuid, HostGuid ServerGuid, UInt128 Token, ulong Counter, byte[] Mac) : HandshakeMessage
{
    /// <summary>Size of the fields every kind starts with: the GUIDs, the token, the counter.</summary>
    private protected const int StartSize = HostGuid.Size + HostGuid.Size + TransportConstants.TokenSize + 8;

    public byte[] Mac { get; } = Require(Mac, TransportConstants.MacSize, nameof(Mac));

    /// <summary>The MAC's signing context (<see cref="SigningContext"/>), one per kind.</summary>
    private protected abstract ReadOnlySpan<byte> MacContext { get; }

    /// <summary>True when the MAC is valid under <paramref name="resumeKey"/> (constant-time compare).</summary>
    public bool VerifyMac(ReadOnlySpan<byte> resumeKey) => MacHolds(resumeKey, MacContext, Mac);

    private protected sealed override void WriteBody(ref WireWriter writer)
    {
        writer.WriteGuid(ClientGuid);
        writer.WriteGuid(ServerGuid);
        WriteToken(ref writer, Token);
        writer.WriteUInt64(Counter);
        WriteBeforeMac(ref writer);
        writer.WriteBytes(Mac);
    }

    /// <summary>The fields a kind has between the counter and the MAC (none by default).</summary>
    private protected virtual void WriteBeforeMac(ref WireWriter writer)
    {
    }

    /// <summary>Reads the fields every kind starts with; a counter 0 is malformed (<paramref name="kind"/> names the message in the error).</summary>
    private protected static (HostGuid Client, HostGuid Server, UInt128 Token, ulong Counter) ReadStart(ref WireReader reader, string kind)
    {
        var client = reader.ReadGuid();
        var server = reader.ReadGuid();
        var token = ReadToken(ref reader);
        var counter = reader.ReadUInt64();
        if (counter == 0)
        {
            throw new MalformedMessageException($"{kind} counter 0 (counters start at 1).");
        }

        return (client, server, token, counter);
    }
}

/// <summary>
/// First message of a flow the server opens to the client's listener after the server's own address changed:
/// the client resumes on this flow (its Resume and data go back on it at once). The MAC (HMAC-SHA256 under the
/// session's resume key, context <see cref="SigningContext.TransportCallBack"/>) covers every byte before it,
/// preamble included, so it proves the sender holds the session's secret; <paramref name="Counter"/> is the
/// server's own call-back counter (1, 2, ...), and the client acts only on one above the last it acted on.
/// <paramref name="ReceivedOffset"/> is the server's receive position, so the client resends from exactly there.
/// See docs/protocol.md, "Mobile TCP call back (type 12)".
/// </summary>
public sealed record CallBackRequest(HostGuid ClientGuid, HostGuid ServerGuid, UInt128 Token, ulong Counter, ulong ReceivedOffset, byte[] Mac)
    : ServerDialRequest(ClientGuid, ServerGuid, Token, Counter, Mac)
{
    public const int MacOffset = TransportConstants.PreambleSize + StartSize + 8;

    public const int EncodedSize = MacOffset + TransportConstants.MacSize;

    public override HandshakeMessageType Type => HandshakeMessageType.CallBack;

    public override int Size => EncodedSize;

    private protected override ReadOnlySpan<byte> MacContext => SigningContext.TransportCallBack;

    /// <summary>Builds a call back and computes its MAC.</summary>
    public static CallBackRequest Create(ReadOnlySpan<byte> resumeKey, HostGuid clientGuid, HostGuid serverGuid, UInt128 token, ulong counter, ulong receivedOffset)
    {
        var unsigned = new CallBackRequest(clientGuid, serverGuid, token, counter, receivedOffset, new byte[TransportConstants.MacSize]);
        return new CallBackRequest(clientGuid, serverGuid, token, counter, receivedOffset, ComputeMac(unsigned, resumeKey, unsigned.MacContext));
    }

    private protected override void WriteBeforeMac(ref WireWriter writer) => writer.WriteUInt64(ReceivedOffset);

    internal static CallBackRequest ReadBody(ref WireReader reader)
    {
        var (client, server, token, counter) = ReadStart(ref reader, "Call back");
        var received = reader.ReadUInt64();
        var mac = ReadArray(ref reader, TransportConstants.MacSize);
        return new CallBackRequest(client, server, token, counter, received, mac);
    }
}

/// <summary>
/// First message of a flow the server opens to the client's listener while their connection runs through a relay
/// (connection reversal): the client answers on this flow with a Join, so the flow becomes a direct standby path
/// and then the active one. The MAC (HMAC-SHA256 under the session's resume key, context
/// <see cref="SigningContext.TransportReverse"/>, so a CallBack cannot be relabelled as one) covers every byte before
/// it, preamble included; <paramref name="Counter"/> is the server's own reversal counter (1, 2, ...), and the client
/// acts only on one above the last it acted on. See docs/protocol.md, "Mobile TCP connection reversal (type 13)".
/// </summary>
public sealed record ReverseRequest(HostGuid ClientGuid, HostGuid ServerGuid, UInt128 Token, ulong Counter, byte[] Mac)
    : ServerDialRequest(ClientGuid, ServerGuid, Token, Counter, Mac)
{
    public const int MacOffset = TransportConstants.PreambleSize + StartSize;

    public const int EncodedSize = MacOffset + TransportConstants.MacSize;

    public override HandshakeMessageType Type => HandshakeMessageType.Reverse;

    public override int Size => EncodedSize;

    private protected override ReadOnlySpan<byte> MacContext => SigningContext.TransportReverse;

    /// <summary>Builds a reversal and computes its MAC.</summary>
    public static ReverseRequest Create(ReadOnlySpan<byte> resumeKey, HostGuid clientGuid, HostGuid serverGuid, UInt128 token, ulong counter)
    {
        var unsigned = new ReverseRequest(clientGuid, serverGuid, token, counter, new byte[TransportConstants.MacSize]);
        return new ReverseRequest(clientGuid, serverGuid, token, counter, ComputeMac(unsigned, resumeKey, unsigned.MacContext));
    }

    internal static ReverseRequest ReadBody(ref WireReader reader)
    {
        var (client, server, token, counter) = ReadStart(ref reader, "Reverse");
        var mac = ReadArray(ref reader, TransportConstants.MacSize);
        return new ReverseRequest(client, server, token, counter, mac);
    }
}
