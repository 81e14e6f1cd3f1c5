namespace Mobility.Transport;

/// <summary>Why a mobile connection failed.</summary>
public enum MobileConnectionError
{
    /// <summary>The handshake failed (peer does not speak the protocol, wrong identity, refused, timeout).</summary>
    HandshakeFailed,

    /// <summary>No path to the peer could be (re)established within the pathless timeout.</summary>
    NoPath,

    /// <summary>The peer reset the connection.</summary>
    ResetByPeer,

    /// <summary>The peer broke the protocol after authenticating (a bug or a hostile peer).</summary>
    ProtocolViolation,

    /// <summary>The server no longer knows the connection (it restarted or gave up on it).</summary>
    UnknownToPeer,

    /// <summary>This side aborted or disposed the connection.</summary>
    Aborted,
}

/// <summary>A mobile connection failed; reads and writes throw this with the first reason.</summary>
public class MobileConnectionException : IOException
{
    public MobileConnectionException(MobileConnectionError error, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Error = error;
    }

    public MobileConnectionException() : this(MobileConnectionError.Aborted, "The mobile connection failed.") { }

    public MobileConnectionException(string message) : this(MobileConnectionError.Aborted, message) { }

    public MobileConnectionException(string message, Exception innerException) : this(MobileConnectionError.Aborted, message, innerException) { }

    public MobileConnectionError Error { get; }
}

/// <summary>The handshake of a new connection failed.</summary>
public sealed class MobileHandshakeException : MobileConnectionException
{
    public MobileHandshakeException(string message, Exception? innerException = null)
        : base(MobileConnectionError.HandshakeFailed, message, innerException) { }

    public MobileHandshakeException() : this("The handshake failed.") { }

    public MobileHandshakeException(string message) : this(message, null) { }
}
