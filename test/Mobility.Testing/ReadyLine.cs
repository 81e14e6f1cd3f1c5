using System.Net;

namespace Mobility.Testing;

/// <summary>
/// The one line a Mobility executable prints on stdout once every endpoint listens:
/// <c>&lt;prefix&gt; key=value key=value ...</c> (gns: <c>gns listening udp=IP:PORT http=http://IP:PORT
/// grpc=http://IP:PORT|off store=... [dns=IP:PORT]</c>; mobilityd: <c>mobilityd ready guid=... control=...
/// http=... socket=... grpc=... grpc-socket=... transport=... socks=... [gns=...]</c>, see docs/mobilityd.md).
/// </summary>
public sealed class ReadyLine
{
    public const string GnsPrefix = "gns listening ";
    public const string MobilitydPrefix = "mobilityd ready ";

    private readonly Dictionary<string, string> _fields;

    private ReadyLine(string line, Dictionary<string, string> fields)
    {
        Line = line;
        _fields = fields;
    }

    public string Line { get; }

    public IReadOnlyDictionary<string, string> Fields => _fields;

    /// <summary>Parses <paramref name="line"/>; a line without <paramref name="prefix"/> or with a field that is not key=value is an error.</summary>
    public static ReadyLine Parse(string line, string prefix)
    {
        ArgumentNullException.ThrowIfNull(line);
        if (!line.StartsWith(prefix, StringComparison.Ordinal))
        {
            throw new FormatException($"'{line}' is not a ready line (expected it to start with '{prefix}').");
        }

        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in line[prefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = part.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0 || !fields.TryAdd(part[..equals], part[(equals + 1)..]))
            {
                throw new FormatException($"Ready line field '{part}' is not a new key=value pair in '{line}'.");
            }
        }

        return new ReadyLine(line, fields);
    }

    /// <summary>The value of a field; a missing one is an error that shows the whole line.</summary>
    public string this[string name]
        => _fields.TryGetValue(name, out var value) ? value : throw new KeyNotFoundException($"The ready line has no field '{name}': {Line}");

    public bool Has(string name) => _fields.ContainsKey(name);

    /// <summary>An IP:PORT field.</summary>
    public IPEndPoint EndPoint(string name) => IPEndPoint.Parse(this[name]);

    /// <summary>An http://IP:PORT field, or null when it is "off".</summary>
    public Uri? Url(string name) => this[name] == "off" ? null : new Uri(this[name]);
}
