namespace Mobility.Daemon.Hosting;

/// <summary>
/// Turns mobilityd's flags into configuration keys: <c>--state-dir X</c> becomes <c>StateDir=X</c>,
/// repeatable flags (<c>--address</c>, <c>--control</c>) become list items, switches without a value
/// (<c>--embedded-gns</c>) become <c>true</c>, and <c>--Section:Key=value</c> passes any other option.
/// </summary>
public static class CommandLine
{
    private static readonly Dictionary<string, string> Repeatable = new(StringComparer.Ordinal)
    {
        ["address"] = "Addresses",
        ["control"] = "Control",
    };

    private static readonly HashSet<string> Switches = new(StringComparer.Ordinal)
    {
        "embedded-gns", "allow-loopback", "allow-link-local", "allow-state-changes-over-tcp",
    };

    /// <summary>Flags mobilityd knows, for --help.</summary>
    public const string Usage = """
        Usage: mobilityd [options]
          --state-dir DIR        host key, state files, embedded GNS (default /var/lib/mobility)
          --gns IP:PORT          GNS datagram endpoint
          --gns-grpc URL         GNS gRPC address (watches, large replies)
          --embedded-gns         run a GNS inside the daemon on <state-dir>/gns (UDP: --embedded-gns-udp, default 0.0.0.0:7353)
          --socket PATH          Unix socket (default /run/mobility/mobilityd.sock, or $XDG_RUNTIME_DIR); "off"
          --socket-group GROUP   group of the socket (mode 0660)
          --grpc-socket PATH     Unix socket of the gRPC API (h2c; default beside --socket, *-grpc.sock); "off"
          --http IP:PORT         loopback HTTP/JSON endpoint, HTTP/1.1 (default 127.0.0.1:7392); "off"
          --grpc IP:PORT         loopback gRPC endpoint, h2c (default 127.0.0.1:7393); "off"
          --control IP:PORT      control (challenge) endpoint; repeatable (default port 7390 on each address)
          --address IP           fixed host address; repeatable (default: the interfaces' addresses)
          --transport-port PORT  port published in Host locators (default 7391)
          --transport IP:PORT    mobile transport listener (default: the port on the fixed address, else 0.0.0.0; port 0 picks one)
          --socks IP:PORT        SOCKS5 endpoint for unmodified applications (default 127.0.0.1:1080); "off"
          --name NAME            name bound to the GUID in the GNS
          --allow-loopback, --allow-link-local   publish such interface addresses
          --config FILE          extra JSON configuration file
          --Section:Key VALUE    any other option (see docs/mobilityd.md)
        Environment: MOBILITYD_StateDir, MOBILITYD_Gns, MOBILITYD_Addresses__0, ... (flags win).
        """;

    /// <summary>Translates <paramref name="args"/>; <paramref name="configFiles"/> receives --config values.</summary>
    public static string[] Translate(IReadOnlyList<string> args, out List<string> configFiles)
    {
        ArgumentNullException.ThrowIfNull(args);
        configFiles = [];
        var result = new List<string>();
        var counters = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
            {
                throw new ArgumentException($"Unexpected argument '{arg}'.\n{Usage}");
            }

            var name = arg[2..];
            string? value = null;
            var eq = name.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }

            if (Switches.Contains(name) && value is null)
            {
                if (i + 1 < args.Count && args[i + 1] is "true" or "false")
                {
                    value = args[++i];
                }
                else
                {
                    value = "true";
                }
            }

            if (value is null)
            {
                if (i + 1 >= args.Count)
                {
                    throw new ArgumentException($"Flag --{name} needs a value.\n{Usage}");
                }

                value = args[++i];
            }

            if (name == "config")
            {
                configFiles.Add(value);
                continue;
            }

            string key;
            if (Repeatable.TryGetValue(name, out var listKey))
            {
                var index = counters.TryGetValue(listKey, out var n) ? n : 0;
                counters[listKey] = index + 1;
                key = $"{listKey}:{index}";
            }
            else
            {
                key = name.Contains(':', StringComparison.Ordinal) ? name : Pascal(name);
            }

            result.Add($"--{key}={value}");
        }

        return [.. result];
    }

    private static string Pascal(string kebab)
        => string.Concat(kebab.Split('-', StringSplitOptions.RemoveEmptyEntries).Select(p => char.ToUpperInvariant(p[0]) + p[1..]));
}
