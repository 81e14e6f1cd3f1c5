namespace Mobility.Protocol.Transport;

/// <summary>
/// Fixed numbers of the mobile transport wire format (docs/transport.md). Limits that a peer could
/// use to make us allocate are here with the reason for their value.
/// </summary>
public static class TransportConstants
{
    /// <summary>"MOBT": first four bytes of every handshake message, so a plain TCP peer is told apart at once.</summary>
    public static ReadOnlySpan<byte> Magic => "MOBT"u8;

    public const int MagicSize = 4;

    /// <summary>The only version this code speaks.</summary>
    public const byte Version = 1;

    /// <summary>magic (4) + version (1) + type (1).</summary>
    public const int PreambleSize = MagicSize + 2;

    public const int TokenSize = 16;

    public const int NonceSize = 32;

    public const int EphemeralKeySize = 32;

    public const int MacSize = 32;

    /// <summary>
    /// A handshake cookie (CookieReply, CookieEcho): a truncated HMAC-SHA256. 128 bits cannot be
    /// guessed within the two minutes a cookie secret lives, and keeps both messages at 22 bytes.
    /// </summary>
    public const int CookieSize = 16;

    public const int AeadTagSize = 16;

    /// <summary>Symmetric key length (ChaCha20-Poly1305 and the HMAC-SHA256 resume key).</summary>
    public const int SymmetricKeySize = 32;

    /// <summary>
    /// Largest DATA payload in one frame. 32 KiB keeps per-frame overhead (29 bytes) under 0.1%
    /// while a frame still fits comfortably in a pooled buffer; a receiver never buffers more than
    /// one frame of this size before authenticating it.
    /// </summary>
    public const int MaxFramePayload = 32 * 1024;

    /// <summary>
    /// Largest DATAGRAM payload: one DATA frame's payload, so a datagram frame is never larger than a
    /// DATA frame (the receiver's one-frame buffer bound holds) and any UDP datagram of the common
    /// sizes (DNS, QUIC, RTP, anything under a 1500-byte MTU) fits whole.
    /// </summary>
    public const int MaxDatagramPayload = MaxFramePayload;

    /// <summary>length (4) + type (1) + counter (8): authenticated as associated data.</summary>
    public const int FrameHeaderSize = 13;

    /// <summary>Bytes of the frame after the length field that are not body: type + counter + tag.</summary>
    public const int FrameFixedOverhead = 1 + 8 + AeadTagSize;

    /// <summary>Largest body: DATA's 8-byte offset plus the largest payload.</summary>
    public const int MaxFrameBody = 8 + MaxFramePayload;

    /// <summary>Largest value of the length field (covers type, counter, body and tag).</summary>
    public const int MaxFrameLength = FrameFixedOverhead + MaxFrameBody;

    /// <summary>Largest whole frame on the wire, length field included.</summary>
    public const int MaxFrameWireSize = 4 + MaxFrameLength;

    /// <summary>
    /// Receive windows a peer may announce: at least one full frame (or the sender could never
    /// send), at most 64 MiB (what one connection may make its peer buffer).
    /// </summary>
    public const uint MinReceiveWindow = MaxFramePayload;

    public const uint MaxReceiveWindow = 64 * 1024 * 1024;
}

/// <summary>Type byte of a handshake message (after magic and version).</summary>
public enum HandshakeMessageType : byte
{
    ClientHello = 1,
    ServerHello = 2,
    ClientFinish = 3,
    Reject = 4,
    Resume = 5,
    ResumeAck = 6,

    // 7 is left unassigned: peers of the first release treat it as unknown (their tests pin that).

    /// <summary>Server to client under load, instead of a ServerHello: retry on a new flow with this cookie.</summary>
    CookieReply = 8,

    /// <summary>Client to server: the cookie of a CookieReply, followed on the same flow by the same ClientHello.</summary>
    CookieEcho = 9,

    /// <summary>Client to server on an extra flow: join an existing connection as a standby path (a Resume's body and MAC, this type).</summary>
    Join = 10,

    /// <summary>Server's acceptance of a <see cref="Join"/> (a ResumeAck's body and MAC, this type).</summary>
    JoinAck = 11,

    /// <summary>
    /// Server to client, first message of a flow the server opened to the client's listener after its own move:
    /// "resume on this flow" (MAC'd with the resume key, on its own counter; docs/protocol.md, "Mobile TCP call back").
    /// </summary>
    CallBack = 12,

    /// <summary>
    /// Server to client, first message of a flow the server opened to the client's listener while their connection
    /// runs through a relay (connection reversal): "join on this flow" (MAC'd with the resume key under its own
    /// context, on its own counter; docs/protocol.md, "Mobile TCP connection reversal").
    /// </summary>
    Reverse = 13,
}

/// <summary>Why a server refused a flow (sent in a plaintext, unauthenticated Reject).</summary>
public enum RejectReason : byte
{
    UnsupportedVersion = 1,
    Unauthorized = 2,
    Busy = 3,
    UnknownConnection = 4,
    ResumeRefused = 5,
    DuplicateToken = 6,
    BadHandshake = 7,
}

/// <summary>Flag bits of ClientHello and ServerHello.</summary>
[Flags]
public enum HandshakeFlags : byte
{
    None = 0,

    /// <summary>Frames are authenticated but not encrypted (body in clear, tag over header and body).</summary>
    AuthenticateOnly = 1,
}
