using System.Net;
using Mobility.Net.EndPoints;

namespace Mobility.Net.Processes;

/// <summary>
/// The one line a server prints on stdout once it listens, as <c>PREFIX name=value name=value ...</c>:
/// <c>gns listening udp=IP:PORT http=URL grpc=URL store=...</c> and <c>mobilityd ready guid=... transport=IP:PORT socks=IP:PORT ...</c>
/// (docs/mobilityd.md, <c>gns --help</c>). The one parser of it for the netlab, the benchmarks and the tests;
/// a field is a word without spaces, "-" or "off" means off.
/// </summary>
public sealed class ReadyLine
{
    /// <summary>The prefix of gns's ready line.</summary>
    public const string GnsPrefix = "gns listening";

    /// <summary>The prefix of mobility-relay's ready line.</summary>
    public const string RelayPrefix = "mobility-relay listening";

    /// <summary>The prefix of mobilityd's ready line.</summary>
    public const string MobilitydPrefix = "mobilityd ready";

    private readonly Dictionary<string, string> _fields;

    private ReadyLine(string text, Dictionary<string, string> fields)
    {
        Text = text;
        _fields = fields;
    }

    /// <summary>The line as printed.</summary>
    public string Text { get; }

    /// <summary>A field's value, or null when the line has no such field.</summary>
    public string? this[string name] => _fields.TryGetValue(name, out var value) ? value : null;

    /// <summary>The first line of <paramref name="output"/> that starts with <paramref name="prefix"/> (then a space), parsed.</summary>
    public static bool TryFind(string? output, string prefix, out ReadyLine line)
    {
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        line = null!;
        foreach (var text in (output ?? "").Split('\n'))
        {
            var trimmed = text.TrimEnd('\r');
            if (trimmed.StartsWith(prefix + " ", StringComparison.Ordinal))
            {
                var fields = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var part in trimmed[(prefix.Length + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    var equals = part.IndexOf('=', StringComparison.Ordinal);
                    if (equals > 0)
                    {
                        fields.TryAdd(part[..equals], part[(equals + 1)..]);
                    }
                }

                line = new ReadyLine(trimmed, fields);
                return true;
            }
        }

        return false;
    }

    /// <summary>As <see cref="TryFind"/>, or a <see cref="FormatException"/> that quotes the output.</summary>
    public static ReadyLine Find(string? output, string prefix)
        => TryFind(output, prefix, out var line) ? line : throw new FormatException($"No '{prefix} ...' line in: {output}");

    /// <summary>A field that must be there.</summary>
    public string Require(string name)
        => this[name] ?? throw new FormatException($"The ready line has no {name}=: {Text}");

    /// <summary>A field that is IP:PORT (the first of a comma-separated list); null when absent, "-" or "off".</summary>
    public IPEndPoint? EndPoint(string name)
    {
        var value = this[name];
        if (value is null or "-" or "off")
        {
            return null;
        }

        var first = value.Split(',')[0];
        return EndPointParser.TryParse(first, out var endPoint)
            ? endPoint
            : throw new FormatException($"The ready line's {name}= is not IP:PORT: {Text}");
    }

    /// <summary>A field that is an http:// URL; null when absent, "-" or "off".</summary>
    public Uri? Url(string name)
        => this[name] is { } value && value is not ("-" or "off")
            ? Uri.TryCreate(value, UriKind.Absolute, out var uri) ? uri : throw new FormatException($"The ready line's {name}= is not a URL: {Text}")
            : null;
}
