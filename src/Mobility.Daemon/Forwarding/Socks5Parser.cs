using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Text;

namespace Mobility.Daemon.Forwarding;

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
/// Parses the two client messages of a SOCKS5 handshake from a buffer it is given. Every length is
/// one byte, so no message exceeds <see cref="MaxRequestSize"/>; each is still checked before use.
/// False means "need more bytes"; <see cref="Socks5FormatException"/> means malformed.
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
        if (!reader.TryCopyTo(head))
        {
            if (reader.TryPeek(out var v))
            {
                CheckVersion(v);
            }

            return false;
        }

        CheckVersion(head[0]);
        if (head[2] != 0)
        {
            throw new Socks5FormatException("The reserved byte of the request is not zero.");
        }

        var command = (Socks5Command)head[1];
        reader.Advance(4);
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
