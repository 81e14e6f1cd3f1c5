using System.Buffers;
using Mobility.Protocol.Forwarding;

namespace Mobility.Fuzz;

public static partial class Targets
{
    private static readonly Type[] Socks5Malformed = [typeof(Socks5FormatException)];

    private static readonly Type[] OpenHeaderMalformed = [typeof(InvalidDataException)];

    /// <summary>The two client messages of a SOCKS5 handshake, as mobilityd's SOCKS5 endpoint reads them.</summary>
    private static FuzzTarget Socks5() => new("socks5",
        "Socks5Parser.TryReadGreeting then Socks5Parser.TryReadRequest over a stream",
        Socks5Malformed,
        input => StreamCheck.Drain(input, Socks5Malformed, 2, (ref SequenceReader<byte> reader, int index) =>
        {
            if (index == 0)
            {
                if (!Socks5Parser.TryReadGreeting(ref reader, out var greeting))
                {
                    return null;
                }

                Require(greeting.MethodCount is > 0 and <= 255, "A greeting's method count is out of range.");
                return $"greeting {greeting}";
            }

            if (!Socks5Parser.TryReadRequest(ref reader, out var request))
            {
                return null;
            }

            Require((request.Host is null) != (request.Address is null), "A request names both or neither of a host and an address.");
            Require(request.Host is null || request.Host.Length is > 0 and <= 255, "A request's host is empty or too long.");
            return $"request {request.Command} {request.Host ?? request.Address!.ToString()} {request.Port}";
        }),
        Socks5Seeds);

    /// <summary>The header a forwarded mobile connection starts with, as the exposing side reads it.</summary>
    private static FuzzTarget OpenHeaderTarget() => new("open-header",
        "OpenHeader.TryRead over a stream",
        OpenHeaderMalformed,
        input => StreamCheck.Drain(input, OpenHeaderMalformed, 1, (ref SequenceReader<byte> reader, int index) =>
        {
            var start = reader.Position;
            if (!OpenHeader.TryRead(ref reader, out var port, out var udp))
            {
                return null;
            }

            Require(OpenHeader.Create(port, udp).AsSpan().SequenceEqual(reader.Sequence.Slice(start, reader.Position).ToArray()),
                "An open header does not re-encode to its bytes.");
            return udp ? $"udp port {port}" : $"port {port}";
        }),
        OpenHeaderSeeds);

    private static IEnumerable<FuzzSeed> Socks5Seeds()
    {
        byte[] greeting = [5, 2, 0, 2];
        yield return new("valid-connect-ipv4", SeedKit.Concat(greeting, [5, 1, 0, 1, 192, 0, 2, 10, 0x11, 0x30]));
        yield return new("valid-connect-ipv6", SeedKit.Concat([5, 1, 0], [5, 1, 0, 4], SeedKit.Filled(16, 0x20), [0, 22]));
        var host = "bob.example"u8.ToArray();
        yield return new("valid-connect-domain", SeedKit.Concat(greeting, [5, 1, 0, 3, (byte)host.Length], host, [0, 80]));
        var guid = "0123456789abcdef0123456789abcdef01234567"u8.ToArray();
        yield return new("valid-connect-guid", SeedKit.Concat([5, 1, 0], [5, 1, 0, 3, (byte)guid.Length], guid, [0x1F, 0x90]));
        yield return new("valid-greeting-only", greeting);
        yield return new("valid-udp-associate", SeedKit.Concat([5, 1, 0], [5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
    }

    private static IEnumerable<FuzzSeed> OpenHeaderSeeds()
    {
        yield return new("valid-ssh", OpenHeader.Create(22));
        yield return new("valid-high-port-then-data", SeedKit.Concat(OpenHeader.Create(65535), "GET / HTTP/1.1\r\n"u8.ToArray()));
        yield return new("valid-partial", OpenHeader.Create(8080)[..3]);
        yield return new("valid-udp", OpenHeader.Create(53, udp: true));
    }
}
