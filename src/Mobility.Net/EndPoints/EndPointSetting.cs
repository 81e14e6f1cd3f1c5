using System.Diagnostics.CodeAnalysis;
using System.Net;

namespace Mobility.Net.EndPoints;

/// <summary>
/// An endpoint option of a host (mobilityd's <c>Http</c>, <c>Socks</c>, <c>Transport</c>..., the GNS's
/// <c>Gns:Udp</c>, <c>Gns:Dns</c>...): <c>IP:PORT</c> or <c>[IPv6]:PORT</c> (through <see cref="EndPointParser"/>),
/// or <c>off</c> (and, where the option says so, empty) for no listener, which is a null endpoint. The
/// error names the option and quotes the value, so a host prints it as its one start-up line.
/// </summary>
public static class EndPointSetting
{
    /// <summary>The value that turns a listener off.</summary>
    public const string Off = "off";

    /// <summary>True when <paramref name="text"/> is <c>off</c> (any case), or empty when <paramref name="emptyIsOff"/>.</summary>
    public static bool IsOff([NotNullWhen(false)] string? text, bool emptyIsOff = true)
        => string.IsNullOrWhiteSpace(text) ? emptyIsOff : string.Equals(text.Trim(), Off, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Parses <paramref name="text"/>: true with the endpoint, or true with null when it is off; false with
    /// <paramref name="error"/> (naming <paramref name="option"/>) otherwise. Port 0 (a free port) is allowed:
    /// these are endpoints to bind.
    /// </summary>
    public static bool TryParse(string? text, string option, out IPEndPoint? endPoint, [NotNullWhen(false)] out string? error, bool emptyIsOff = true)
    {
        endPoint = null;
        error = null;
        if (IsOff(text, emptyIsOff))
        {
            return true;
        }

        if (EndPointParser.TryParse(text?.Trim(), out endPoint, allowPortZero: true))
        {
            return true;
        }

        error = $"{option}: {EndPointParser.Explain(text, allowPortZero: true)[..^1]}{(emptyIsOff ? ", or \"off\"" : "")}.";
        return false;
    }

    /// <summary>Like <see cref="TryParse"/>, but throws a <see cref="FormatException"/> with the error.</summary>
    public static IPEndPoint? Parse(string? text, string option, bool emptyIsOff = true)
        => TryParse(text, option, out var endPoint, out var error, emptyIsOff) ? endPoint : throw new FormatException(error);
}
