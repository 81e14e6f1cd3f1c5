using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Net.EndPoints;

/// <summary>
/// The one parser of <c>IP:PORT</c> text in options, flags, ready lines and API arguments: IPv4 as
/// <c>192.0.2.1:7000</c>, IPv6 in brackets as <c>[2001:db8::1]:7000</c>. The port is always required
/// (<see cref="IPEndPoint.TryParse(string, out IPEndPoint)"/> alone takes "192.0.2.1" as port 0 and "::1:80" as
/// an address without a port); port 0 only where the caller allows it (an endpoint to bind).
/// </summary>
public static class EndPointParser
{
    /// <summary>Parses <paramref name="text"/>; false for anything that is not IP:PORT or [IPv6]:PORT.</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, [NotNullWhen(true)] out IPEndPoint? endPoint, bool allowPortZero = false)
    {
        endPoint = null;
        if (string.IsNullOrWhiteSpace(text) || text.Length > 64 || !IPEndPoint.TryParse(text, out var parsed))
        {
            return false;
        }

        var hasPort = parsed.AddressFamily == AddressFamily.InterNetworkV6
            ? text.Contains("]:", StringComparison.Ordinal)
            : text.Contains(':', StringComparison.Ordinal);
        var portText = text[(text.LastIndexOf(':') + 1)..];
        if (!hasPort || !int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out _) || (parsed.Port == 0 && !allowPortZero))
        {
            return false;
        }

        endPoint = parsed;
        return true;
    }

    /// <summary>Parses <paramref name="text"/> or throws a <see cref="FormatException"/> that quotes it and says what is expected.</summary>
    public static IPEndPoint Parse(string? text, bool allowPortZero = false)
        => TryParse(text, out var endPoint, allowPortZero) ? endPoint : throw new FormatException(Explain(text, allowPortZero));

    /// <summary>The error for text that <see cref="TryParse"/> refused, with an example of each form.</summary>
    public static string Explain(string? text, bool allowPortZero = false)
        => $"'{text}' is not IP:PORT or [IPv6]:PORT (for example 127.0.0.1:7000 or [::1]:7000{(allowPortZero ? "; port 0 picks a free port" : ", port 1 to 65535")}).";
}
