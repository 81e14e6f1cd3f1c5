using System.CommandLine;
using System.CommandLine.Parsing;
using System.Net;
using Mobility.Gns.Client;
using Mobility.Net.EndPoints;
using Mobility.Protocol.Identity;

namespace Mobility.Cli;

/// <summary>Options and parsers shared by command groups. Factories return a new option per command.</summary>
public static class CommonOptions
{
    public const string GnsEnvironmentVariable = "MOB_GNS";
    public const string GrpcEnvironmentVariable = "MOB_GNS_GRPC";

    /// <summary>Machine-readable output; recursive, so every command has it.</summary>
    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Write JSON (one object per line) instead of text",
        Recursive = true,
    };

    /// <summary>Set by <see cref="Program"/>: the writer that is the process's terminal, if stdout is one.</summary>
    internal static TextWriter? TerminalOut { get; set; }

    public static bool IsTerminal(TextWriter writer) => TerminalOut is not null && ReferenceEquals(writer, TerminalOut);

    public static Option<string> KeyFile(string description = "Key file (PEM, PKCS#8 Ed25519, mode 0600)") => new("--key")
    {
        Description = description,
        HelpName = "FILE",
        Required = true,
    };

    /// <summary>--gns IP:PORT; default from MOB_GNS, else 127.0.0.1:7353.</summary>
    public static Option<IPEndPoint> GnsEndPoint() => new("--gns")
    {
        Description = $"GNS datagram endpoint (default: ${GnsEnvironmentVariable}, else 127.0.0.1:{GnsClientOptions.DefaultUdpPort})",
        HelpName = "IP:PORT",
        CustomParser = result => ParseEndPoint(result, result.Tokens.Count > 0 ? result.Tokens[^1].Value : "", "--gns"),
        DefaultValueFactory = result =>
        {
            var text = Environment.GetEnvironmentVariable(GnsEnvironmentVariable);
            return string.IsNullOrWhiteSpace(text)
                ? new IPEndPoint(IPAddress.Loopback, GnsClientOptions.DefaultUdpPort)
                : ParseEndPoint(result, text, $"${GnsEnvironmentVariable}")!;
        },
    };

    /// <summary>--grpc URL; resolved with <see cref="ResolveGrpc"/> because its default depends on --gns.</summary>
    public static Option<Uri?> GrpcAddress() => new("--grpc")
    {
        Description = $"GNS gRPC address, for records too large for a datagram and when UDP gets no answer (default: ${GrpcEnvironmentVariable}, else none; watch: else http://<gns-ip>:{GnsClientOptions.DefaultGrpcPort})",
        HelpName = "URL",
        CustomParser = result => ParseUri(result, result.Tokens.Count > 0 ? result.Tokens[^1].Value : "", "--grpc"),
    };

    /// <summary>The gRPC address for a command that needs gRPC (watch): the one given, else the conventional port on the GNS's host.</summary>
    public static Uri ResolveGrpc(Uri? given, IPEndPoint gns) => GivenGrpc(given) ?? GnsClientOptions.DefaultGrpcAddressFor(gns);

    /// <summary>
    /// The gRPC address the user gave (--grpc, else $MOB_GNS_GRPC), or null. Lookups and updates fall back to
    /// gRPC only then: a port guessed from --gns may be another GNS, whose answer would be reported as this one's.
    /// </summary>
    public static Uri? GivenGrpc(Uri? given)
    {
        if (given is not null)
        {
            return given;
        }

        var text = Environment.GetEnvironmentVariable(GrpcEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(text))
        {
            return TryParseUri(text, out var uri)
                ? uri
                : throw new CliException(ExitCodes.Usage, $"${GrpcEnvironmentVariable} '{text}' is not an http:// or https:// address");
        }

        return null;
    }

    /// <summary>"GNS 127.0.0.1:7353", with the gRPC address when there is one: the endpoints an answer can have come from.</summary>
    public static string Describe(IPEndPoint gns, Uri? grpc) => grpc is null ? $"GNS {gns}" : $"GNS {gns} (gRPC {grpc})";

    public static IPEndPoint? ParseEndPoint(ArgumentResult result, string text, string what)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (TryParseEndPoint(text, out var endPoint))
        {
            return endPoint;
        }

        result.AddError($"{what} '{text}' is not IP:PORT (for example 127.0.0.1:{GnsClientOptions.DefaultUdpPort} or [::1]:{GnsClientOptions.DefaultUdpPort})");
        return null;
    }

    public static bool TryParseEndPoint(string? text, out IPEndPoint endPoint)
    {
        endPoint = null!;
        var ok = EndPointParser.TryParse(text, out var parsed);
        endPoint = parsed!;
        return ok;
    }

    public static Uri? ParseUri(ArgumentResult result, string text, string what)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (TryParseUri(text, out var uri))
        {
            return uri;
        }

        result.AddError($"{what} '{text}' is not an http:// or https:// address");
        return null;
    }

    private static bool TryParseUri(string text, out Uri uri)
        => Uri.TryCreate(text, UriKind.Absolute, out uri!) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);

    /// <summary>Loads a key file, turning every problem with it into exit code <see cref="ExitCodes.KeyFile"/>.</summary>
    public static HostKey LoadKey(string path)
    {
        try
        {
            return HostKeyFile.Load(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new CliException(ExitCodes.KeyFile, e.Message, e);
        }
    }

    /// <summary>A version that grows across runs without state: the current Unix time in microseconds.</summary>
    public static ulong DefaultVersion(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        return (ulong)((time.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond);
    }

    /// <summary>A client for one command: no cache (one-shot); gRPC (null: none) for fallback and watch.</summary>
    public static GnsClient CreateClient(IPEndPoint gns, Uri? grpc) => new(new GnsClientOptions
    {
        Server = gns,
        GrpcAddress = grpc,
        CacheEnabled = false,
    });
}
