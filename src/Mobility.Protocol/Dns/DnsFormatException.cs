namespace Mobility.Protocol.Dns;

/// <summary>
/// A message is not a well-formed DNS query. When <see cref="Id"/> is known (the header was read)
/// and <see cref="Answerable"/>, the server answers FORMERR; otherwise it drops the message.
/// </summary>
public sealed class DnsFormatException : Exception
{
    public DnsFormatException(string message) : base(message) { }

    public DnsFormatException(string message, ushort id, bool answerable = true) : base(message)
    {
        Id = id;
        Answerable = answerable;
    }

    public DnsFormatException() : base("Malformed DNS message.") { }

    public DnsFormatException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>The query id, when the header could be read.</summary>
    public ushort? Id { get; }

    /// <summary>False when the message must not be answered (too short for a header, or itself a response).</summary>
    public bool Answerable { get; }
}
