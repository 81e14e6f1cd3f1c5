namespace Mobility.Protocol;

/// <summary>
/// Raised by a reader when bytes from the network or a file are not a valid message.
/// Callers drop the message (and log at Debug); this never means "need more bytes".
/// </summary>
public sealed class MalformedMessageException : Exception
{
    public MalformedMessageException(string message) : base(message) { }

    public MalformedMessageException() : base("Malformed message.") { }

    public MalformedMessageException(string message, Exception innerException) : base(message, innerException) { }
}
