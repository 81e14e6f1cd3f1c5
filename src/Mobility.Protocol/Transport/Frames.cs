using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using Mobility.Protocol.Wire;

namespace Mobility.Protocol.Transport;

/// <summary>Type byte of a data-phase frame.</summary>
public enum FrameType : byte
{
    /// <summary>body: offset u64 | payload (1 .. MaxFramePayload bytes).</summary>
    Data = 1,

    /// <summary>body: received u64 | consumed u64.</summary>
    Ack = 2,

    /// <summary>body: final offset u64 (the stream length in this direction).</summary>
    Fin = 3,

    /// <summary>body: id u64; the peer answers with Pong carrying the same id.</summary>
    Ping = 4,

    /// <summary>body: id u64.</summary>
    Pong = 5,

    /// <summary>body: code u32; the connection is aborted.</summary>
    Reset = 6,

    /// <summary>
    /// body: payload (1 .. MaxDatagramPayload bytes), one application datagram: sealed under the
    /// same counter sequence as every frame, but never retransmitted and outside the stream's
    /// offsets and receive window.
    /// </summary>
    Datagram = 7,

    /// <summary>
    /// body: flags u8 | count u8 | count x (kind u8 | family u8 | port u16 | address 4 or 16): the
    /// sender's direct candidates (<see cref="DirectCandidates"/>), 2 .. <see cref="DirectCandidates.MaxBodyLength"/> bytes.
    /// </summary>
    Candidates = 8,

    /// <summary>
    /// body: attempt u32 (1 or more): "punch now": the sender (the session's client) starts a TCP
    /// simultaneous open from its transport port to the receiver's reflexive candidates, and asks the
    /// receiver to connect from its own to the sender's at the same time (<see cref="TransportFrame.ReadPunch"/>).
    /// Sent only to a peer whose CANDIDATES flags have <see cref="DirectCandidates.PunchFramesFlag"/>.
    /// </summary>
    Punch = 9,
}

/// <summary>
/// A frame as read from the wire, not yet authenticated:
/// <c>length u32 | type u8 | counter u64 | body (sealed) | tag[16]</c>. <see cref="Sealed"/> is
/// body + tag and refers to the reader's buffer (valid until the reader advances).
/// </summary>
public readonly struct RawFrame
{
    public RawFrame(FrameType type, ulong counter, ReadOnlySequence<byte> sealedPart)
    {
        Type = type;
        Counter = counter;
        Sealed = sealedPart;
    }

    public FrameType Type { get; }

    public ulong Counter { get; }

    public ReadOnlySequence<byte> Sealed { get; }

    /// <summary>Length of the body once opened.</summary>
    public int BodyLength => (int)Sealed.Length - TransportConstants.AeadTagSize;
}

public static class TransportFrame
{
    /// <summary>Encoded size of a frame with a body of <paramref name="bodyLength"/> bytes.</summary>
    public static int WireSize(int bodyLength) => 4 + TransportConstants.FrameFixedOverhead + bodyLength;

    /// <summary>
    /// Reads one frame envelope. False: need more bytes (nothing consumed). Throws
    /// <see cref="MalformedMessageException"/> for a length outside [minimum, <paramref name="maxFrameLength"/>]
    /// (checked before waiting for or buffering the body), an unknown type, or a body size the
    /// type does not allow.
    /// </summary>
    public static bool TryRead(ref SequenceReader<byte> reader, int maxFrameLength, out RawFrame frame)
    {
        frame = default;
        Span<byte> header = stackalloc byte[TransportConstants.FrameHeaderSize];
        if (reader.Remaining < 4)
        {
            return false;
        }

        reader.TryCopyTo(header[..4]);
        var length = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (length < TransportConstants.FrameFixedOverhead || length > (uint)maxFrameLength)
        {
            throw new MalformedMessageException($"Frame length {length} outside [{TransportConstants.FrameFixedOverhead}, {maxFrameLength}].");
        }

        if (reader.Remaining < TransportConstants.FrameHeaderSize)
        {
            return false;
        }

        reader.TryCopyTo(header);
        var type = (FrameType)header[4];
        var bodyLength = (int)length - TransportConstants.FrameFixedOverhead;
        CheckBodyLength(type, bodyLength);
        if (reader.Remaining < 4 + length)
        {
            return false;
        }

        var counter = BinaryPrimitives.ReadUInt64BigEndian(header[5..]);
        var sealedPart = reader.UnreadSequence.Slice(TransportConstants.FrameHeaderSize, bodyLength + TransportConstants.AeadTagSize);
        reader.Advance(4 + length);
        frame = new RawFrame(type, counter, sealedPart);
        return true;
    }

    /// <summary>Throws when <paramref name="bodyLength"/> is not allowed for <paramref name="type"/>.</summary>
    public static void CheckBodyLength(FrameType type, int bodyLength)
    {
        var ok = type switch
        {
            FrameType.Data => bodyLength is > 8 and <= TransportConstants.MaxFrameBody,
            FrameType.Ack => bodyLength == 16,
            FrameType.Fin or FrameType.Ping or FrameType.Pong => bodyLength == 8,
            FrameType.Reset or FrameType.Punch => bodyLength == 4,
            FrameType.Datagram => bodyLength is > 0 and <= TransportConstants.MaxDatagramPayload,
            FrameType.Candidates => bodyLength is >= 2 and <= DirectCandidates.MaxBodyLength,
            _ => throw new MalformedMessageException($"Unknown frame type {(byte)type}."),
        };
        if (!ok)
        {
            throw new MalformedMessageException($"A {type} frame cannot have a {bodyLength}-byte body.");
        }
    }

    /// <summary>Writes the 13-byte header (the associated data) for a frame.</summary>
    public static void WriteHeader(Span<byte> destination, FrameType type, ulong counter, int bodyLength)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)(TransportConstants.FrameFixedOverhead + bodyLength));
        destination[4] = (byte)type;
        BinaryPrimitives.WriteUInt64BigEndian(destination[5..], counter);
    }

    public static (ulong Offset, ReadOnlyMemory<byte> Payload) ReadData(ReadOnlyMemory<byte> body)
    {
        CheckBodyLength(FrameType.Data, body.Length);
        return (BinaryPrimitives.ReadUInt64BigEndian(body.Span), body[8..]);
    }

    public static (ulong Received, ulong Consumed) ReadAck(ReadOnlySpan<byte> body)
    {
        CheckBodyLength(FrameType.Ack, body.Length);
        var received = BinaryPrimitives.ReadUInt64BigEndian(body);
        var consumed = BinaryPrimitives.ReadUInt64BigEndian(body[8..]);
        if (consumed > received)
        {
            throw new MalformedMessageException("ACK consumed offset beyond its received offset.");
        }

        return (received, consumed);
    }

    public static ulong ReadU64(FrameType type, ReadOnlySpan<byte> body)
    {
        CheckBodyLength(type, body.Length);
        if (body.Length != 8)
        {
            throw new MalformedMessageException($"A {type} frame has no 8-byte value.");
        }

        return BinaryPrimitives.ReadUInt64BigEndian(body);
    }

    public static uint ReadReset(ReadOnlySpan<byte> body)
    {
        CheckBodyLength(FrameType.Reset, body.Length);
        return BinaryPrimitives.ReadUInt32BigEndian(body);
    }

    /// <summary>A PUNCH body: its attempt number (0 is malformed: attempts count from 1).</summary>
    public static uint ReadPunch(ReadOnlySpan<byte> body)
    {
        CheckBodyLength(FrameType.Punch, body.Length);
        var attempt = BinaryPrimitives.ReadUInt32BigEndian(body);
        if (attempt == 0)
        {
            throw new MalformedMessageException("A PUNCH frame's attempt is 0.");
        }

        return attempt;
    }
}

/// <summary>
/// Seals or opens frames of one direction with ChaCha20-Poly1305 under one key. Nonce =
/// 4 zero bytes || counter u64 big-endian; the caller guarantees a counter is never used twice
/// under the key (counters start at 1 and only grow, across flows). In authenticate-only mode the
/// body travels in clear and the tag is the AEAD of an empty plaintext with header || body as
/// associated data.
/// </summary>
/// <remarks>
/// The AEAD is the platform's (<see cref="ChaCha20Poly1305"/>: OpenSSL on Linux), which runs 32 KiB
/// frames about three times as fast as libsodium's portable build here. Its context is not
/// thread-safe and neither is this class: give each owner its own instance (a connection seals
/// under its lock; each flow's receive loop opens with an instance of its own).
/// </remarks>
public sealed class FrameProtector : IDisposable
{
    private readonly ChaCha20Poly1305 _aead;

    public FrameProtector(ReadOnlySpan<byte> key, bool encrypt)
    {
        _aead = new ChaCha20Poly1305(key);
        Encrypt = encrypt;
    }

    public bool Encrypt { get; }

    /// <summary>Writes a whole frame (length field included) and returns its size.</summary>
    public int Seal(FrameType type, ulong counter, ReadOnlySpan<byte> body, Span<byte> destination)
    {
        var size = TransportFrame.WireSize(body.Length);
        if (destination.Length < size)
        {
            throw new ArgumentException("Destination too small for the frame.", nameof(destination));
        }

        var header = destination[..TransportConstants.FrameHeaderSize];
        TransportFrame.WriteHeader(header, type, counter, body.Length);
        Span<byte> nonce = stackalloc byte[12];
        WriteNonce(nonce, counter);
        var output = destination[TransportConstants.FrameHeaderSize..size];
        var tag = output[body.Length..];
        if (Encrypt)
        {
            _aead.Encrypt(nonce, body, output[..body.Length], tag, header);
        }
        else
        {
            body.CopyTo(output);
            var ad = destination[..(TransportConstants.FrameHeaderSize + body.Length)];
            _aead.Encrypt(nonce, ReadOnlySpan<byte>.Empty, Span<byte>.Empty, tag, ad);
        }

        return size;
    }

    /// <summary>
    /// Like <see cref="Seal"/> for a body already in place at
    /// <c>destination[FrameHeaderSize .. FrameHeaderSize + bodyLength]</c>: writes the header,
    /// encrypts the body where it lies and appends the tag (saves copying the body once per frame).
    /// </summary>
    public int SealInPlace(FrameType type, ulong counter, int bodyLength, Span<byte> destination)
    {
        var size = TransportFrame.WireSize(bodyLength);
        if (bodyLength < 0 || destination.Length < size)
        {
            throw new ArgumentException("Destination too small for the frame.", nameof(destination));
        }

        var header = destination[..TransportConstants.FrameHeaderSize];
        TransportFrame.WriteHeader(header, type, counter, bodyLength);
        Span<byte> nonce = stackalloc byte[12];
        WriteNonce(nonce, counter);
        var body = destination.Slice(TransportConstants.FrameHeaderSize, bodyLength);
        var tag = destination.Slice(TransportConstants.FrameHeaderSize + bodyLength, TransportConstants.AeadTagSize);
        if (Encrypt)
        {
            _aead.Encrypt(nonce, body, body, tag, header);
        }
        else
        {
            var ad = destination[..(TransportConstants.FrameHeaderSize + bodyLength)];
            _aead.Encrypt(nonce, ReadOnlySpan<byte>.Empty, Span<byte>.Empty, tag, ad);
        }

        return size;
    }

    /// <summary>
    /// Authenticates (and decrypts) <paramref name="frame"/> into <paramref name="body"/>, which must
    /// be <see cref="RawFrame.BodyLength"/> bytes. False when the tag does not verify.
    /// <paramref name="scratch"/> is used only when the frame spans several buffer segments.
    /// </summary>
    public bool TryOpen(in RawFrame frame, Span<byte> body, Span<byte> scratch)
    {
        var bodyLength = frame.BodyLength;
        if (body.Length != bodyLength || scratch.Length < TransportConstants.FrameHeaderSize + bodyLength + TransportConstants.AeadTagSize)
        {
            throw new ArgumentException("Buffer sizes do not match the frame.");
        }

        Span<byte> nonce = stackalloc byte[12];
        WriteNonce(nonce, frame.Counter);
        var whole = scratch[..(TransportConstants.FrameHeaderSize + bodyLength + TransportConstants.AeadTagSize)];
        TransportFrame.WriteHeader(whole, frame.Type, frame.Counter, bodyLength);
        ReadOnlySpan<byte> sealedPart;
        if (frame.Sealed.IsSingleSegment && Encrypt)
        {
            sealedPart = frame.Sealed.FirstSpan;
        }
        else
        {
            frame.Sealed.CopyTo(whole[TransportConstants.FrameHeaderSize..]);
            sealedPart = whole[TransportConstants.FrameHeaderSize..];
        }

        try
        {
            if (Encrypt)
            {
                _aead.Decrypt(nonce, sealedPart[..bodyLength], sealedPart[bodyLength..], body, whole[..TransportConstants.FrameHeaderSize]);
                return true;
            }

            var ad = whole[..(TransportConstants.FrameHeaderSize + bodyLength)];
            _aead.Decrypt(nonce, ReadOnlySpan<byte>.Empty, sealedPart[bodyLength..], Span<byte>.Empty, ad);
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }

        sealedPart[..bodyLength].CopyTo(body);
        return true;
    }

    private static void WriteNonce(Span<byte> nonce, ulong counter)
    {
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], counter);
    }

    public void Dispose() => _aead.Dispose();
}

/// <summary>Helpers shared by the handshake code.</summary>
public static class TransportRandom
{
    public static byte[] Nonce() => RandomNumberGenerator.GetBytes(TransportConstants.NonceSize);

    public static UInt128 Token()
    {
        Span<byte> bytes = stackalloc byte[TransportConstants.TokenSize];
        RandomNumberGenerator.Fill(bytes);
        return new UInt128(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
    }
}
