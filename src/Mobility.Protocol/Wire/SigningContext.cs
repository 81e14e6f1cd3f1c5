using System.Text;

namespace Mobility.Protocol.Wire;

/// <summary>
/// Domain-separation contexts. Every signature covers <c>u8 length || ASCII context || body</c>, so
/// a signature made for one kind of message can never be replayed as another kind.
/// </summary>
public static class SigningContext
{
    public static ReadOnlySpan<byte> GnsRecord => "mobility/gns-record/v1"u8;

    public static ReadOnlySpan<byte> GnsRemove => "mobility/gns-remove/v1"u8;

    public static ReadOnlySpan<byte> Challenge => "mobility/challenge-response/v1"u8;

    public static ReadOnlySpan<byte> HandshakeClient => "mobility/handshake-client/v1"u8;

    public static ReadOnlySpan<byte> HandshakeServer => "mobility/handshake-server/v1"u8;

    /// <summary>A host's proof of its GUID to a relay (docs/protocol.md, "Relay").</summary>
    public static ReadOnlySpan<byte> RelayRegister => "mobility/relay-register/v1"u8;

    /// <summary>HKDF info prefix for the mobile transport's session keys (not a signature context).</summary>
    public static ReadOnlySpan<byte> TransportKeys => "mobility/transport-keys/v1"u8;

    /// <summary>HMAC context of a transport Resume message (keyed with the session's resume key).</summary>
    public static ReadOnlySpan<byte> TransportResume => "mobility/transport-resume/v1"u8;

    /// <summary>HMAC context of a transport ResumeAck message (keyed with the session's resume key).</summary>
    public static ReadOnlySpan<byte> TransportResumeAck => "mobility/transport-resume-ack/v1"u8;

    /// <summary>HMAC context of a transport CallBack message (server to client, keyed with the session's resume key).</summary>
    public static ReadOnlySpan<byte> TransportCallBack => "mobility/transport-callback/v1"u8;

    /// <summary>HMAC context of a transport Reverse message (server to client, keyed with the session's resume key).</summary>
    public static ReadOnlySpan<byte> TransportReverse => "mobility/transport-reverse/v1"u8;

    /// <summary>Bytes that are signed: length-prefixed context followed by the body.</summary>
    public static byte[] Compose(ReadOnlySpan<byte> context, ReadOnlySpan<byte> body)
    {
        var bytes = new byte[1 + context.Length + body.Length];
        bytes[0] = checked((byte)context.Length);
        context.CopyTo(bytes.AsSpan(1));
        body.CopyTo(bytes.AsSpan(1 + context.Length));
        return bytes;
    }

    public static string Describe(ReadOnlySpan<byte> context) => Encoding.ASCII.GetString(context);
}
