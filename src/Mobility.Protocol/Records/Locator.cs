using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Protocol.Records;

/// <summary>What a locator is: an address of the host itself, one the GNS saw, or a relay.</summary>
public enum LocatorKind : byte
{
    /// <summary>An address configured on one of the host's interfaces.</summary>
    Host = 1,

    /// <summary>The source address and port a GNS observed (the host's reflexive address, e.g. behind NAT).</summary>
    Observed = 2,

    /// <summary>A relay that forwards to the host.</summary>
    Relay = 3,
}

/// <summary>An address and port where a host can be reached, and what kind of address it is.</summary>
public readonly record struct Locator(IPAddress Address, ushort Port, LocatorKind Kind = LocatorKind.Host)
{
    public IPEndPoint EndPoint => new(Address, Port);

    public override string ToString()
    {
        var kind = Kind switch
        {
            LocatorKind.Host => "host",
            LocatorKind.Observed => "observed",
            LocatorKind.Relay => "relay",
            _ => ((byte)Kind).ToString(CultureInfo.InvariantCulture),
        };
        return $"{EndPoint}/{kind}";
    }

    /// <summary>
    /// Parses <c>IP:PORT</c> or <c>[IPv6]:PORT</c>, optionally followed by <c>/host</c>,
    /// <c>/observed</c> or <c>/relay</c>.
    /// </summary>
    public static bool TryParse(string? text, out Locator locator)
    {
        locator = default;
        if (string.IsNullOrWhiteSpace(text) || text.Length > 100)
        {
            return false;
        }

        var kind = LocatorKind.Host;
        var slash = text.LastIndexOf('/');
        if (slash >= 0)
        {
            var kindText = text[(slash + 1)..];
            if (!TryParseKind(kindText, out kind))
            {
                return false;
            }

            text = text[..slash];
        }

        if (!IPEndPoint.TryParse(text, out var endPoint) || endPoint.Port is <= 0 or > ushort.MaxValue)
        {
            return false;
        }

        // IPEndPoint.TryParse accepts "1.2.3.4" without a port (port 0): a locator needs a port.
        if (!text.Contains(':', StringComparison.Ordinal) ||
            (endPoint.AddressFamily == AddressFamily.InterNetworkV6 && !text.Contains("]:", StringComparison.Ordinal)))
        {
            return false;
        }

        // IPAddress also reads the inet_aton shorthands ("10.1" is 10.0.0.1, "010.0.0.1" is octal
        // 8.0.0.1): accept IPv4 only in its plain dotted-decimal form, so no typo changes the address.
        if (endPoint.AddressFamily == AddressFamily.InterNetwork &&
            !text.AsSpan(0, text.LastIndexOf(':')).SequenceEqual(endPoint.Address.ToString()))
        {
            return false;
        }

        locator = new Locator(Normalize(endPoint.Address), (ushort)endPoint.Port, kind);
        return true;
    }

    public static bool TryParseKind(string text, out LocatorKind kind)
    {
        kind = text.ToLowerInvariant() switch
        {
            "host" => LocatorKind.Host,
            "observed" => LocatorKind.Observed,
            "relay" => LocatorKind.Relay,
            _ => 0,
        };
        return kind != 0;
    }

    /// <summary>IPv4-mapped IPv6 addresses are stored and compared as IPv4; scope ids are dropped.</summary>
    public static IPAddress Normalize(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4();
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0)
        {
            return new IPAddress(address.GetAddressBytes());
        }

        return address;
    }
}
