using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Globalization;
using System.Reflection;

namespace Mobility.Daemon.Hosting;

/// <summary>
/// mobilityd's command line (System.CommandLine): every flag names one configuration key of
/// <see cref="MobilitydOptions"/> (<c>--state-dir X</c> is <c>StateDir=X</c>, repeatable flags become list
/// items), and <c>--Section:Key VALUE</c> sets any other key, which must exist. Anything else is a
/// usage error, reported in one line; <c>--help</c> is generated from the same definitions.
/// </summary>
public static class CommandLine
{
    /// <summary>Exit code of a bad command line or bad option value (sysexits EX_USAGE, as mob).</summary>
    public const int UsageExitCode = 64;

    /// <summary>Exit code when the daemon could not start (port taken, key file too open, state folder in use).</summary>
    public const int StartFailureExitCode = 1;

    private static readonly Flag[] Flags =
    [
        new("--state-dir", "DIR", nameof(MobilitydOptions.StateDir), "Host key, state files, embedded GNS [default: /var/lib/mobility]"),
        new("--gns", "ENDPOINTS", nameof(MobilitydOptions.Gns),
            "GNS datagram endpoint(s): IP:PORT, [IPv6]:PORT, NAME:PORT or NAME (port 7353), comma-separated; several are raced at start, first answer wins, and again when the host's addresses change (required unless --embedded-gns)"),
        new("--gns-grpc", "URL", nameof(MobilitydOptions.GnsGrpc), "GNS gRPC address, http://IP:PORT (watches, large replies); when IP is one of --gns's addresses, each of them gets PORT on its own address"),
        new("--gns-resolver", "ENDPOINTS", nameof(MobilitydOptions.GnsResolver),
            "DNS server(s) IP:PORT, comma-separated, for --gns's names (resolved again on address changes and when their TTL runs out) [default: /etc/resolv.conf's, then the system's resolver]"),
        new("--gns-tls", "tls://IP:PORT", nameof(MobilitydOptions.GnsTls),
            "The GNS's TLS endpoint (gns serve --tls-listen), for networks that let only HTTPS out: a request whose first datagram got no answer goes there, and requests stay there until UDP answers again or the host's addresses change [default: none]"),
        new("--gns-pin", "SHA256S", nameof(MobilitydOptions.GnsPin),
            "SHA-256 fingerprint(s) of the certificates --gns-tls may present, comma-separated (needed with --gns-tls)"),
        new("--gns-tls-only", null, nameof(MobilitydOptions.GnsTlsOnly), "Send every GNS request over --gns-tls, none over UDP"),
        new("--embedded-gns", null, nameof(MobilitydOptions.EmbeddedGns), "Run a GNS inside the daemon, SQLite in <state-dir>/gns"),
        new("--embedded-gns-udp", "IP:PORT", nameof(MobilitydOptions.EmbeddedGnsUdp), $"Datagram endpoint of the embedded GNS; [::] serves IPv4 and IPv6 [default: {MobilitydOptions.DefaultEmbeddedGnsUdp}]"),
        new("--socket", "PATH", nameof(MobilitydOptions.Socket),
            "Unix socket, HTTP/1.1 JSON; \"off\" [default: /run/mobility/mobilityd.sock, else $XDG_RUNTIME_DIR/mobilityd.sock]"),
        new("--grpc-socket", "PATH", nameof(MobilitydOptions.GrpcSocket), "Unix socket of the gRPC API (h2c); \"off\" [default: beside --socket, <name>-grpc.sock]"),
        new("--socket-group", "GROUP", nameof(MobilitydOptions.SocketGroup), "Group of both sockets (mode 0660) [default: the daemon's group]"),
        new("--http", "IP:PORT", nameof(MobilitydOptions.Http), $"Loopback HTTP/1.1 JSON endpoint; \"off\" [default: {MobilitydOptions.DefaultHttp}]"),
        new("--grpc", "IP:PORT", nameof(MobilitydOptions.Grpc), $"Loopback gRPC endpoint (h2c); \"off\" [default: {MobilitydOptions.DefaultGrpc}]"),
        new("--control", "IP:PORT", nameof(MobilitydOptions.Control),
            $"UDP control (challenge) endpoint; repeatable [default: port {MobilitydOptions.DefaultControlPort} on each --address, else 0.0.0.0 and [::]]", Repeatable: true),
        new("--address", "IP", nameof(MobilitydOptions.Addresses), "Fixed host address; repeatable [default: the interfaces' addresses]", Repeatable: true),
        new("--transport-port", "PORT", nameof(MobilitydOptions.TransportPort), $"Port published in Host locators [default: {MobilitydOptions.DefaultTransportPort}]"),
        new("--transport", "IP:PORT", nameof(MobilitydOptions.Transport),
            "Mobile transport listener; port 0 picks one; [::] serves IPv4 and IPv6 [default: --transport-port on the first --address, else [::] (0.0.0.0 without IPv6)]"),
        new("--relay", "ENDPOINTS", nameof(MobilitydOptions.Relay),
            "Home relay(s), IP:PORT or tls://IP:PORT comma-separated: register at the first that accepts, publish it as a relay locator, move on when it dies [default: none]"),
        new("--relay-pin", "SHA256S", nameof(MobilitydOptions.RelayPin),
            "SHA-256 fingerprint(s) of the certificates tls:// relays may present, comma-separated (needed with a tls:// relay)"),
        new("--socks", "IP:PORT", nameof(MobilitydOptions.Socks), $"SOCKS5 endpoint for unmodified applications; \"off\" [default: {MobilitydOptions.DefaultSocks}]"),
        new("--name", "NAME", nameof(MobilitydOptions.Name), "Name bound to the GUID in the GNS"),
        new("--allow-loopback", null, nameof(MobilitydOptions.AllowLoopback), "Publish loopback interface addresses"),
        new("--allow-link-local", null, nameof(MobilitydOptions.AllowLinkLocal), "Publish link-local interface addresses"),
        new("--allow-state-changes-over-tcp", null, nameof(MobilitydOptions.AllowStateChangesOverTcp), "Accept SetAddresses on the loopback TCP endpoints"),
    ];

    private const string ConfigFlag = "--config";

    /// <summary>Width of --help, whatever the terminal.</summary>
    private const int HelpWidth = 150;

    /// <summary>The command with every flag, for parsing and for the generated --help.</summary>
    public static Command BuildRoot()
    {
        // A Command named "mobilityd" rather than a RootCommand, whose name would be the process's (dotnet's
        // host or a test runner's): --help reads the same however it is started.
        var root = new Command("mobilityd",
            "mobilityd: the per-host mobility daemon (docs/mobilityd.md). Prints one ready line on stdout once listening; logs go to stderr.\n" +
            "Settings come from appsettings.json beside the binary, --config files, MOBILITYD_ environment variables " +
            "(MOBILITYD_StateDir, MOBILITYD_Addresses__0, MOBILITYD_Challenge__Attempts) and these flags, later ones winning.\n" +
            "--Section:Key VALUE sets any other option, e.g. --Challenge:Attempts 5 (see deploy/mobilityd.json).\n" +
            $"Exit status: 0 stopped cleanly, {StartFailureExitCode} could not start, {UsageExitCode} bad command line or option value.")
        {
            new HelpOption(),
            new VersionOption(),
        };
        foreach (var flag in Flags)
        {
            root.Options.Add(flag.Create());
        }

        // One width everywhere, so that docs/mobilityd.md can show exactly what --help prints.
        foreach (var help in root.Options.OfType<HelpOption>())
        {
            if (help.Action is HelpAction action)
            {
                action.MaxWidth = HelpWidth;
            }
        }

        root.Options.Add(new Option<string[]>(ConfigFlag)
        {
            HelpName = "FILE",
            Description = "Extra JSON configuration file; repeatable, later files win",
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = false,
        });
        return root;
    }

    /// <summary>
    /// Parses <paramref name="args"/> into configuration keys and --config files. A usage error
    /// (unknown flag, missing value, unknown --Section:Key) throws <see cref="CommandLineException"/> with a one-line message.
    /// </summary>
    public static ParsedCommandLine Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Contains("--"))
        {
            // System.CommandLine would take what follows as arguments; mobilityd has none.
            throw new CommandLineException("Unexpected argument '--'.");
        }

        var root = BuildRoot();
        var result = root.Parse(args.ToArray());
        if (result.Action is not null and not ParseErrorAction)
        {
            // --help or --version: nothing else runs.
            return new ParsedCommandLine(new Dictionary<string, string?>(), [], result);
        }

        // Unmatched tokens are errors to System.CommandLine (so its help shows no "additional arguments"); they
        // may be --Section:Key VALUE, checked below. Any other error is reported as it is.
        var unmatched = result.UnmatchedTokens;
        if (result.Errors.FirstOrDefault(e => !unmatched.Any(t => e.Message.Contains($"'{t}'", StringComparison.Ordinal))) is { } error)
        {
            throw new CommandLineException(error.Message);
        }

        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var option in root.Options)
        {
            if (Array.Find(Flags, f => f.Name == option.Name) is not { } flag || result.GetResult(option) is not { Implicit: false } optionResult)
            {
                continue;
            }

            var tokens = optionResult.Tokens.Select(t => t.Value).ToArray();
            if (flag.Repeatable)
            {
                for (var i = 0; i < tokens.Length; i++)
                {
                    settings[$"{flag.Key}:{i}"] = tokens[i];
                }
            }
            else
            {
                settings[flag.Key] = flag.Switch ? (tokens.Length == 0 ? "true" : tokens[^1]) : tokens[^1];
            }
        }

        AddPassThrough(unmatched, settings);
        var configFiles = result.GetValue<string[]>(ConfigFlag) ?? [];
        return new ParsedCommandLine(settings, configFiles, null);
    }

    /// <summary><c>--Section:Key VALUE</c> or <c>--Section:Key=VALUE</c>, for keys that exist in <see cref="MobilitydOptions"/> (or under Logging).</summary>
    private static void AddPassThrough(IReadOnlyList<string> tokens, Dictionary<string, string?> settings)
    {
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            if (!token.StartsWith("--", StringComparison.Ordinal) || token.Length == 2)
            {
                throw new CommandLineException($"Unexpected argument '{token}'.");
            }

            var key = token[2..];
            string? value = null;
            var eq = key.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                value = key[(eq + 1)..];
                key = key[..eq];
            }

            if (!IsKnownKey(key))
            {
                throw new CommandLineException(Suggest(token[..(eq >= 0 ? eq + 2 : token.Length)]));
            }

            if (value is null)
            {
                if (i + 1 >= tokens.Count)
                {
                    throw new CommandLineException($"Option '--{key}' needs a value.");
                }

                value = tokens[++i];
            }

            settings[key] = value;
        }
    }

    private static string Suggest(string flag)
    {
        var known = Flags.Select(f => f.Name).Append(ConfigFlag).Append("--help");
        var best = known.Select(k => (Name: k, Distance: Distance(flag, k))).MinBy(p => p.Distance);
        var hint = best.Distance <= 2 ? $" Did you mean '{best.Name}'?" : "";
        return $"Unknown option '{flag}'.{hint}";
    }

    /// <summary>True when <paramref name="key"/> (Section:Key, case-insensitive) names a setting of <see cref="MobilitydOptions"/> or a Logging key.</summary>
    public static bool IsKnownKey(string key)
    {
        var segments = key.Split(':');
        if (segments.Any(string.IsNullOrWhiteSpace))
        {
            return false;
        }

        return string.Equals(segments[0], "Logging", StringComparison.OrdinalIgnoreCase) ? segments.Length >= 2 : IsKnownPath(typeof(MobilitydOptions), segments);
    }

    private static bool IsKnownPath(Type type, ReadOnlySpan<string> segments)
    {
        if (segments.IsEmpty)
        {
            return IsLeaf(type) || type.IsArray;
        }

        if (type.IsArray)
        {
            return int.TryParse(segments[0], NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index < 100_000
                && IsKnownPath(type.GetElementType()!, segments[1..]);
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            return IsKnownPath(type.GetGenericArguments()[1], segments[1..]);
        }

        if (IsLeaf(type))
        {
            return false;
        }

        var property = type.GetProperty(segments[0], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
        return property is { CanWrite: true } && IsKnownPath(property.PropertyType, segments[1..]);
    }

    private static bool IsLeaf(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        return type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(TimeSpan) || type == typeof(decimal);
    }

    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }

    /// <summary>A flag and the configuration key it sets. A switch (no value name) is a bool that takes an optional true/false.</summary>
    private sealed record Flag(string Name, string? ValueName, string Key, string Description, bool Repeatable = false)
    {
        public bool Switch => ValueName is null;

        public Option Create() => Switch
            ? new Option<bool>(Name) { Description = $"{Description} ({Key})" }
            : Repeatable
                ? new Option<string[]>(Name) { HelpName = ValueName, Description = $"{Description} ({Key})", Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false }
                : new Option<string>(Name) { HelpName = ValueName, Description = $"{Description} ({Key})" };
    }
}

/// <summary>mobilityd's command line as configuration: <see cref="Settings"/> (keys as in appsettings.json) and the --config files.</summary>
/// <param name="Immediate">Set for --help (-h, -?) and --version: invoke it instead of running the daemon; nothing else is set then.</param>
public sealed record ParsedCommandLine(IReadOnlyDictionary<string, string?> Settings, IReadOnlyList<string> ConfigFiles, ParseResult? Immediate);

/// <summary>A bad command line or a bad option value: the message is one line, for stderr.</summary>
public sealed class CommandLineException : Exception
{
    public CommandLineException()
    {
    }

    public CommandLineException(string message) : base(message)
    {
    }

    public CommandLineException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
