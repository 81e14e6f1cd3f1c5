using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Text;

namespace Mobility.Protocol.Forwarding;

/// <summary>The client's method selection message (RFC 1928 section 3).</summary>
public readonly record struct Socks5Greeting(bool OffersNoAuthentication, int MethodCount);

public enum Socks5Command : byte
{
    Connect = 1,
    Bind = 2,
    UdpAssociate = 3,
}

/// <summary>A SOCKS5 request (RFC 1928 section 4): either <see cref="Host"/> (ATYP domain) or <see cref="Address"/> is set.</summary>
public readonly record struct Socks5Request(Socks5Command Command, string? Host, IPAddress? Address, ushort Port);

/// <summary>A malformed SOCKS5 message; the connection is closed (after a failure reply when one is possible).</summary>
public sealed class Socks5FormatException : IOException
{
    public Socks5FormatException(string message) : base(message)
    {
    }

    public Socks5FormatException()
    {
    }

    public Socks5FormatException(string message, Exception innerException) : base(message, innerException)
    {
    }
}

/// <summary>
/// The SOCKS5 messages (RFC 1928, no authentication, CONNECT) that mobilityd's SOCKS5 endpoint and
/// every client in this repository speak, byte by byte in docs/protocol.md. The server side parses the
/// two client messages from a buffer it is given; the client side writes them and parses the two
/// server answers. Every length is one byte, so no message exceeds <see cref="MaxRequestSize"/>;
/// each is still checked before use. False means "need more bytes"; <see cref="Socks5FormatException"/> means malformed.
/// </summary>
public static class Socks5Parser
{
    public const byte Version = 5;
    public const byte NoAuthentication = 0;
    public const byte NoAcceptableMethods = 0xFF;
    public const byte AtypIPv4 = 1;
    public const byte AtypDomain = 3;
    public const byte AtypIPv6 = 4;

    /// <summary>VER NMETHODS METHODS[255].</summary>
    public const int MaxGreetingSize = 2 + 255;

    /// <summary>VER CMD RSV ATYP LEN DOMAIN[255] PORT.</summary>
    public const int MaxRequestSize = 4 + 1 + 255 + 2;

    public static bool TryReadGreeting(ref SequenceReader<byte> reader, out Socks5Greeting greeting)
    {
        greeting = default;
        var start = reader;
        if (!reader.TryRead(out var version))
        {
            return false;
        }

        CheckVersion(version);
        if (!reader.TryRead(out var count))
        {
            reader = start;
            return false;
        }

        if (count == 0)
        {
            throw new Socks5FormatException("The greeting offers no authentication method.");
        }

        if (reader.Remaining < count)
        {
            reader = start;
            return false;
        }

        Span<byte> methods = stackalloc byte[count];
        reader.TryCopyTo(methods);
        reader.Advance(count);
        greeting = new Socks5Greeting(methods.Contains(NoAuthentication), count);
        return true;
    }

    public static bool TryReadRequest(ref SequenceReader<byte> reader, out Socks5Request request)
    {
        request = default;
        var start = reader;
        Span<byte> head = stackalloc byte[4];
        if (!TryReadHead(ref reader, head, "request"))
        {
            return false;
        }

        var command = (Socks5Command)head[1];
        string? host = null;
        IPAddress? address = null;
        switch (head[3])
        {
            case AtypIPv4:
            case AtypIPv6:
                {
                    var size = head[3] == AtypIPv4 ? 4 : 16;
                    Span<byte> bytes = stackalloc byte[16];
                    if (!reader.TryCopyTo(bytes[..size]))
                    {
                        reader = start;
                        return false;
                    }

                    reader.Advance(size);
                    address = new IPAddress(bytes[..size]);
                    break;
                }

            case AtypDomain:
                {
                    if (!reader.TryRead(out var length))
                    {
                        reader = start;
                        return false;
                    }

                    if (length == 0)
                    {
                        throw new Socks5FormatException("The request names an empty domain.");
                    }

                    if (reader.Remaining < length)
                    {
                        reader = start;
                        return false;
                    }

                    Span<byte> name = stackalloc byte[length];
                    reader.TryCopyTo(name);
                    reader.Advance(length);
                    foreach (var b in name)
                    {
                        // Host names and GUIDs only: letters, digits, '-', '.', '_'.
                        if (!(char.IsAsciiLetterOrDigit((char)b) || b is (byte)'-' or (byte)'.' or (byte)'_'))
                        {
                            throw new Socks5FormatException("The requested domain contains a character that no host name has.");
                        }
                    }

                    host = Encoding.ASCII.GetString(name);
                    break;
                }

            default:
                throw new Socks5FormatException($"Unknown address type {head[3]}.");
        }

        Span<byte> port = stackalloc byte[2];
        if (!reader.TryCopyTo(port))
        {
            reader = start;
            return false;
        }

        reader.Advance(2);
        request = new Socks5Request(command, host, address, BinaryPrimitives.ReadUInt16BigEndian(port));
        return true;
    }

    /// <summary>VER REP RSV ATYP(IPv4) 0.0.0.0 0: clients ignore the bound address of a CONNECT here.</summary>
    public static byte[] Reply(Socks5Reply reply) => [Version, (byte)reply, 0, AtypIPv4, 0, 0, 0, 0, 0, 0];

    /// <summary>The client's greeting: VER 5, one method, "no authentication".</summary>
    public static byte[] Greeting() => [Version, 1, NoAuthentication];

    /// <summary>CONNECT to a domain name (ATYP 3): 1 to 255 ASCII bytes of host-name characters.</summary>
    public static byte[] ConnectRequest(string host, ushort port)
    {
        ArgumentNullException.ThrowIfNull(host);
        if (host.Length is 0 or > 255 || !host.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_'))
        {
            throw new ArgumentException($"'{host}' is not a SOCKS5 domain name (1 to 255 letters, digits, '-', '.', '_').", nameof(host));
        }

        var request = new byte[4 + 1 + host.Length + 2];
        request[0] = Version;
        request[1] = (byte)Socks5Command.Connect;
        request[3] = AtypDomain;
        request[4] = (byte)host.Length;
        Encoding.ASCII.GetBytes(host, request.AsSpan(5));
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(5 + host.Length), port);
        return request;
    }

    /// <summary>CONNECT to an address (ATYP 1 or 4); an IPv4-mapped IPv6 address is sent as IPv4.</summary>
    public static byte[] ConnectRequest(IPAddress address, ushort port)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        var size = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 4 : 16;
        var request = new byte[4 + size + 2];
        request[0] = Version;
        request[1] = (byte)Socks5Command.Connect;
        request[3] = size == 4 ? AtypIPv4 : AtypIPv6;
        address.TryWriteBytes(request.AsSpan(4, size), out _);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(4 + size), port);
        return request;
    }

    /// <summary>The server's method selection (VER METHOD); <paramref name="method"/> 0xFF: none acceptable.</summary>
    public static bool TryReadMethodSelection(ref SequenceReader<byte> reader, out byte method)
    {
        method = 0;
        if (reader.Remaining < 2)
        {
            if (reader.TryPeek(out var v))
            {
                CheckVersion(v);
            }

            return false;
        }

        reader.TryRead(out var version);
        CheckVersion(version);
        reader.TryRead(out method);
        return true;
    }

    /// <summary>Bytes of a reply to read before <see cref="ReplyLength"/> can tell the whole length.</summary>
    public const int ReplyPrefixSize = 5;

    /// <summary>
    /// The length of the reply that starts with <paramref name="prefix"/> (its first <see cref="ReplyPrefixSize"/>
    /// bytes), so that a client reads exactly the reply and not the application bytes after it.
    /// </summary>
    public static int ReplyLength(ReadOnlySpan<byte> prefix)
    {
        if (prefix.Length < ReplyPrefixSize)
        {
            throw new ArgumentException($"The first {ReplyPrefixSize} bytes of the reply are needed.", nameof(prefix));
        }

        CheckVersion(prefix[0]);
        return prefix[3] switch
        {
            AtypIPv4 => 4 + 4 + 2,
            AtypIPv6 => 4 + 16 + 2,
            AtypDomain => 4 + 1 + prefix[4] + 2,
            var atyp => throw new Socks5FormatException($"Unknown address type {atyp} in the reply."),
        };
    }

    /// <summary>The server's reply to a request: VER REP RSV ATYP BND.ADDR BND.PORT (the bound address is skipped).</summary>
    public static bool TryReadReply(ref SequenceReader<byte> reader, out Socks5Reply reply)
    {
        reply = default;
        var start = reader;
        Span<byte> head = stackalloc byte[4];
        if (!TryReadHead(ref reader, head, "reply"))
        {
            return false;
        }

        int rest;
        switch (head[3])
        {
            case AtypIPv4:
                rest = 4 + 2;
                break;
            case AtypIPv6:
                rest = 16 + 2;
                break;
            case AtypDomain:
                if (!reader.TryRead(out var length))
                {
                    reader = start;
                    return false;
                }

                rest = length + 2;
                break;
            default:
                throw new Socks5FormatException($"Unknown address type {head[3]} in the reply.");
        }

        if (reader.Remaining < rest)
        {
            reader = start;
            return false;
        }

        reader.Advance(rest);
        reply = (Socks5Reply)head[1];
        return true;
    }

    /// <summary>VER, CMD/REP, RSV, ATYP of a request or reply: false (nothing consumed) until all four are there.</summary>
    private static bool TryReadHead(ref SequenceReader<byte> reader, scoped Span<byte> head, string message)
    {
        if (!reader.TryCopyTo(head))
        {
            if (reader.TryPeek(out var version))
            {
                CheckVersion(version);
            }

            return false;
        }

        CheckVersion(head[0]);
        if (head[2] != 0)
        {
            throw new Socks5FormatException($"The reserved byte of the {message} is not zero.");
        }

        reader.Advance(head.Length);
        return true;
    }

    private static void CheckVersion(byte version)
    {
        if (version != Version)
        {
            throw new Socks5FormatException($"SOCKS version {version} is not 5.");
        }
    }
}

/// <summary>REP values of RFC 1928 section 6.</summary>
public enum Socks5Reply : byte
{
    Succeeded = 0,
    GeneralFailure = 1,
    NotAllowed = 2,
    NetworkUnreachable = 3,
    HostUnreachable = 4,
    ConnectionRefused = 5,
    TtlExpired = 6,
    CommandNotSupported = 7,
    AddressTypeNotSupported = 8,
}
