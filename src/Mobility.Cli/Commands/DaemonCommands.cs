using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Mobility.Daemon.Client;

namespace Mobility.Cli.Commands;

/// <summary>
/// <c>mob guid | ip | guids | challenge | status | netcheck | addresses | transparent</c>: ask the local mobilityd, over its
/// Unix socket (HTTP/1.1 + JSON; <c>--socket PATH</c>, else $MOBILITYD_SOCKET, else
/// /run/mobility/mobilityd.sock, else $XDG_RUNTIME_DIR/mobilityd.sock). <c>--json</c> prints the
/// daemon's JSON answer as one line. These are top-level commands: register each factory of
/// <see cref="All"/> (e.g. <c>[IdCommands.Create, GnsCommands.Create, .. DaemonCommands.All]</c> in
/// <c>CommandGroups.All</c>), or every command of <see cref="Create"/>.
/// </summary>
public static class DaemonCommands
{
    public const string SocketEnvironmentVariable = "MOBILITYD_SOCKET";
    public const string DefaultSocket = "/run/mobility/mobilityd.sock";

    /// <summary>Longest wait for the daemon; a challenge that times out takes about a second.</summary>
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(15);

    /// <summary>One factory per top-level command, in the shape of <c>CommandGroups.All</c>.</summary>
    public static IReadOnlyList<Func<Command>> All { get; } = [Guid, Ip, Guids, Challenge, Status, Netcheck, Addresses, Transparent];

    /// <summary>A new instance of every daemon command.</summary>
    public static IEnumerable<Command> Create() => All.Select(create => create());

    /// <summary>The <c>--socket</c> option of every command that talks to mobilityd's API (resolved by <see cref="CallAsync"/>).</summary>
    internal static Option<string?> SocketOption() => new("--socket")
    {
        Description = $"mobilityd's Unix socket (default: ${SocketEnvironmentVariable}, else {DefaultSocket}, else $XDG_RUNTIME_DIR/mobilityd.sock)",
        HelpName = "PATH",
    };

    private static Command Guid()
    {
        var socket = SocketOption();
        var command = new Command("guid", "Print this host's GUID (get_self_guid)") { socket };
        command.SetHandler(async context =>
        {
            var reply = await CallAsync(context, socket, (d, ct) => d.GetSelfAsync(ct));
            return Print(context, reply, () => context.Output.Line(reply.GetProperty("guid").GetString()!));
        });
        return command;
    }

    private static Command Ip()
    {
        var socket = SocketOption();
        var target = new Argument<string>("guid|name") { Description = "A GUID (40 hex characters) or a name" };
        var command = new Command("ip", "Print every address of a GUID's or name's record (get_ip)") { socket, target };
        command.SetHandler(async context =>
        {
            var reply = await CallAsync(context, socket, (d, ct) => d.GetIpAsync(context.Get(target)!, ct));
            return Print(context, reply, () =>
            {
                foreach (var address in reply.GetProperty("addresses").EnumerateArray())
                {
                    context.Output.Line(address.GetString()!);
                }
            });
        });
        return command;
    }

    private static Command Guids()
    {
        var socket = SocketOption();
        var address = new Argument<string>("address") { Description = "An IP address" };
        var command = new Command("guids", "Print the GUIDs verified at an address: GNS reverse lookup, each claim challenged (get_guid_from_ip)") { socket, address };
        command.SetHandler(async context =>
        {
            var text = context.Get(address)!;
            if (!IPAddress.TryParse(text, out _))
            {
                throw new CliException(ExitCodes.Usage, $"'{text}' is not an IP address");
            }

            var reply = await CallAsync(context, socket, (d, ct) => d.GetGuidsAsync(text, ct));
            var guids = reply.GetProperty("guids").EnumerateArray().Select(g => g.GetString()!).ToArray();
            if (context.Output.Json)
            {
                context.Output.Line(reply.GetRawText());
            }
            else
            {
                foreach (var guid in guids)
                {
                    context.Output.Line(guid);
                }
            }

            return guids.Length > 0 ? ExitCodes.Success : context.Output.Fail(ExitCodes.NotFound, $"no GUID verified at {text}");
        });
        return command;
    }

    private static Command Challenge()
    {
        var socket = SocketOption();
        var address = new Argument<string>("address") { Description = "IP, or IP:PORT for a control port other than 7390" };
        var guid = new Argument<string>("guid") { Description = "The GUID that should answer there" };
        var command = new Command("challenge", "Check that the holder of a GUID's key answers at an address; exits 1 with the reason when not") { socket, address, guid };
        command.SetHandler(async context =>
        {
            var reply = await CallAsync(context, socket, (d, ct) => d.ChallengeAsync(context.Get(address)!, context.Get(guid)!, ct));
            var verified = reply.TryGetProperty("verified", out var v) && v.GetBoolean();
            var reason = reply.TryGetProperty("reason", out var r) ? r.GetString() : "unknown";
            var detail = reply.TryGetProperty("detail", out var d) ? d.GetString() : "";
            var rtt = reply.TryGetProperty("rttMs", out var t) ? t.GetDouble() : 0;
            if (context.Output.Json)
            {
                context.Output.Line(reply.GetRawText());
            }
            else if (verified)
            {
                context.Output.Line(string.Create(CultureInfo.InvariantCulture,
                    $"verified {context.Get(guid)} at {context.Get(address)} ({rtt:0.###} ms{(reply.TryGetProperty("cached", out var c) && c.GetBoolean() ? ", cached" : "")})"));
            }

            return verified ? ExitCodes.Success : context.Output.Fail(ExitCodes.Failure, $"challenge failed: {reason} ({detail})");
        });
        return command;
    }

    private static Command Status()
    {
        var socket = SocketOption();
        var command = new Command("status", "Show the daemon's GUID, addresses, GNS state, NAT check, verified peers and the path of each mobile connection (direct or through which relay)") { socket };
        command.SetHandler(async context =>
        {
            var reply = await CallAsync(context, socket, (d, ct) => d.GetStatusAsync(ct));
            return Print(context, reply, () => context.Output.Rows(
            [
                ("guid", Text(reply, "guid")),
                ("addresses", List(reply, "addresses") + (Bool(reply, "addressesFixed") ? " (fixed)" : "")),
                ("gns", Bool(reply, "gnsReachable") ? "reachable" : $"unreachable {Text(reply, "gnsError")}".TrimEnd()),
                ("record version", Text(reply, "recordVersion")),
                ("published", Text(reply, "publishedAt")),
                ("observed", Text(reply, "observedAddress")),
                ("peers verified", Text(reply, "peersVerified")),
                ("control", List(reply, "control")),
                ("transport port", Text(reply, "transportPort")),
                ("mobile connections", reply.TryGetProperty("connectionsTotal", out var total) ? total.GetRawText() : "0"),
                .. ConnectionPathRows(reply),
                .. NatSummary(reply.TryGetProperty("nat", out var nat) ? nat : default),
                .. PortMappingRows(nat),
                ("transparent", reply.TryGetProperty("transparent", out var transparent) ? TransparentLine(transparent) : "-"),
            ]));
        });
        return command;
    }

    private static Command Netcheck()
    {
        var socket = SocketOption();
        var command = new Command("netcheck",
            "Ask the daemon to check its NAT now against the GNS and print, per address family, the reflexive address, " +
            "whether there is a NAT, its mapping and filtering, and the ports the home gateway mapped (PCP, NAT-PMP or UPnP IGD; docs/nat.md); " +
            "exits 1 when no GNS endpoint answered") { socket };
        command.SetHandler(async context =>
        {
            var reply = await CallAsync(context, socket, (d, ct) => d.NetcheckAsync(ct));
            var families = reply.TryGetProperty("families", out var list) && list.ValueKind == JsonValueKind.Array ? list.EnumerateArray().ToArray() : [];
            Print(context, reply, () =>
            {
                var rows = new List<(string, string)>();
                foreach (var family in families)
                {
                    var name = Text(family, "family");
                    rows.Add(($"{name} reflexive", Text(family, "reflexive") is { Length: > 0 } r ? r : "-"));
                    rows.Add(($"{name} local", Text(family, "local")));
                    rows.Add(($"{name} nat", Text(family, "nat")));
                    rows.Add(($"{name} mapping", Text(family, "mapping")));
                    rows.Add(($"{name} filtering", Text(family, "filtering")));
                    rows.Add(($"{name} gns", Text(family, "server")));
                    if (Text(family, "detail") is { Length: > 0 } detail and not "-")
                    {
                        rows.Add(($"{name} note", detail));
                    }
                }

                rows.Add(("checked", Text(reply, "checkedAt")));
                rows.AddRange(PortMappingRows(reply));
                context.Output.Rows(rows);
            });
            if (families.Any(f => Text(f, "reflexive") is { Length: > 0 } and not "-"))
            {
                return ExitCodes.Success;
            }

            var why = Text(reply, "error") is { Length: > 0 } error and not "-" ? error : "no GNS endpoint answered";
            return context.Output.Fail(ExitCodes.Failure, $"netcheck: {why}");
        });
        return command;
    }

    /// <summary>One row per port the home gateway mapped (PCP, NAT-PMP or UPnP IGD), or one row saying why there is none.</summary>
    private static IEnumerable<(string, string)> PortMappingRows(JsonElement nat)
    {
        var portMapping = nat.ValueKind == JsonValueKind.Object && nat.TryGetProperty("portMapping", out var p) && p.ValueKind == JsonValueKind.Object ? p : default;
        var mappings = portMapping.ValueKind == JsonValueKind.Object && portMapping.TryGetProperty("mappings", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().ToArray()
            : [];
        if (mappings.Length == 0)
        {
            var error = portMapping.ValueKind == JsonValueKind.Object ? Text(portMapping, "error") : "-";
            return [("port mapping", error is { Length: > 0 } and not "-" ? error : "none yet")];
        }

        var gateway = Text(portMapping, "gateway");
        return mappings.Select(m => ($"port mapping {Text(m, "transport")} {Text(m, "internalPort")}",
            $"{Text(m, "external")} protocol={Text(m, "protocol")} gateway={gateway} lifetime={Text(m, "lifetimeSeconds")}s renew={Text(m, "renewAt")}"));
    }

    /// <summary>One status row per family of the last NAT check, or one row saying why there is none.</summary>
    private static IEnumerable<(string, string)> NatSummary(JsonElement nat)
    {
        var families = nat.ValueKind == JsonValueKind.Object && nat.TryGetProperty("families", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().ToArray()
            : [];
        if (families.Length == 0)
        {
            var error = nat.ValueKind == JsonValueKind.Object ? Text(nat, "error") : "-";
            return [("nat", error is { Length: > 0 } and not "-" ? error : "not checked yet")];
        }

        return families.Select(f => ($"nat {Text(f, "family")}",
            $"{(Text(f, "reflexive") is { Length: > 0 } r and not "-" ? r : "no answer")} nat={Text(f, "nat")} mapping={Text(f, "mapping")} " +
            $"filtering={Text(f, "filtering")} checked={Text(f, "checkedAt")}"));
    }
    /// <summary><c>mob transparent on|off|status</c>: DNS names and interception for unmodified programs (docs/transparent.md).</summary>
    private static Command Transparent()
    {
        var command = new Command("transparent",
            "Transparent mode: <name>.mob and <guid>.guid resolve to virtual addresses, and TCP connections and UDP to them are carried over mobile connections");
        foreach (var (name, enabled, help) in new[]
                 {
                     ("on", (bool?)true, "Install the nftables rules, routes and resolver entry (root or the daemon's admitted users)"),
                     ("off", (bool?)false, "Remove them (also done when the daemon stops)"),
                     ("status", (bool?)null, "Show whether it is on, the DNS stub, the resolver entry and the mappings"),
                 })
        {
            var socket = SocketOption();
            var sub = new Command(name, help) { socket };
            var opportunistic = new Option<bool>("--opportunistic")
            {
                Description = "Also upgrade connections to ordinary addresses of verified mobile hosts, the rest plain TCP (default: the daemon's Transparent:Opportunistic)",
            };
            var noOpportunistic = new Option<bool>("--no-opportunistic") { Description = "Only connections to virtual addresses (.mob, .guid)" };
            if (enabled is true)
            {
                sub.Options.Add(opportunistic);
                sub.Options.Add(noOpportunistic);
            }

            sub.SetHandler(async context =>
            {
                bool? mode = enabled is true && context.Get(opportunistic) ? true : enabled is true && context.Get(noOpportunistic) ? false : null;
                var reply = await CallAsync(context, socket, (d, ct) => enabled is { } on ? d.SetTransparentAsync(on, mode, ct) : d.GetTransparentAsync(ct));
                return Print(context, reply, () => context.Output.Rows(
                [
                    ("transparent", Bool(reply, "enabled") ? "on" : "off"),
                    ("rules", Text(reply, "rules") is "" or "-" ? "none" : $"nft table {Text(reply, "rules")}"),
                    ("dns stub", Text(reply, "stub") is "" or "-" ? "off" : Text(reply, "stub")),
                    ("resolver", Text(reply, "resolver")),
                    ("virtual addresses", $"{Text(reply, "ipv4Pool")} {Text(reply, "ipv6Prefix")}"),
                    ("mappings", Text(reply, "mappings") is "-" ? "0" : Text(reply, "mappings")),
                    ("opportunistic", Bool(reply, "opportunistic")
                        ? $"on, {Count(reply, "opportunisticMobile")} mobile, {Count(reply, "opportunisticPlain")} plain, {Count(reply, "opportunisticOverBudget")} lookups over budget"
                        : "off"),
                ]));
            });
            command.Subcommands.Add(sub);
        }

        return command;
    }

    /// <summary>A uint64 counter of a reply: JSON carries it as a string, and leaves it out when 0.</summary>
    private static string Count(JsonElement reply, string name) => Text(reply, name) is "" or "-" ? "0" : Text(reply, name);

    /// <summary>One row per live mobile connection: its peer and the path it runs on (direct, or through which relay).</summary>
    private static IEnumerable<(string, string)> ConnectionPathRows(JsonElement reply)
    {
        if (!reply.TryGetProperty("connections", out var connections) || connections.ValueKind != JsonValueKind.Array)
        {
            yield break;
        }

        foreach (var connection in connections.EnumerateArray())
        {
            var path = Text(connection, "path") is { Length: > 0 } p and not "-" ? p : "pathless";
            var standby = Text(connection, "standbyRelay") is { Length: > 0 } s and not "-" ? $" ({s} standby)" : "";
            yield return ($"  {Text(connection, "peer")}", $"{path}{standby}");
        }
    }

    private static string TransparentLine(JsonElement t)
        => string.Create(CultureInfo.InvariantCulture,
            $"{(Bool(t, "enabled") ? "on" : "off")}, rules {(Text(t, "rules") is "" or "-" ? "none" : Text(t, "rules"))}, dns stub {(Text(t, "stub") is "" or "-" ? "off" : Text(t, "stub"))}, resolver {Text(t, "resolver")}, mappings {(Text(t, "mappings") is "-" ? "0" : Text(t, "mappings"))}");

    private static Command Addresses()
    {
        var socket = SocketOption();
        var command = new Command("addresses", "Show the host's published addresses") { socket };
        command.SetHandler(async context => PrintAddresses(context, await CallAsync(context, socket, (d, ct) => d.GetAddressesAsync(ct))));

        var setSocket = SocketOption();
        var list = new Argument<string[]>("ip") { Description = "The new addresses (none: follow the interfaces again)", Arity = ArgumentArity.ZeroOrMore };
        var set = new Command("set", "Fix the host's addresses and publish them at once (socket owner or root only)") { setSocket, list };
        set.SetHandler(async context =>
        {
            var addresses = context.Get(list) ?? [];
            foreach (var a in addresses)
            {
                if (!IPAddress.TryParse(a, out _))
                {
                    throw new CliException(ExitCodes.Usage, $"'{a}' is not an IP address");
                }
            }

            var reply = await CallAsync(context, setSocket, (d, ct) => d.SetAddressesAsync(addresses, ct));
            return PrintAddresses(context, reply);
        });
        command.Subcommands.Add(set);
        return command;
    }

    private static int PrintAddresses(CommandContext context, JsonElement reply)
        => Print(context, reply, () =>
        {
            foreach (var address in reply.GetProperty("addresses").EnumerateArray())
            {
                context.Output.Line(address.GetString()!);
            }
        });

    private static int Print(CommandContext context, JsonElement reply, Action text)
    {
        if (context.Output.Json)
        {
            context.Output.Line(reply.GetRawText());
        }
        else
        {
            text();
        }

        return ExitCodes.Success;
    }

    private static string Text(JsonElement reply, string name)
        => reply.TryGetProperty(name, out var value) ? value.ValueKind == JsonValueKind.String ? value.GetString() ?? "-" : value.GetRawText() : "-";

    private static bool Bool(JsonElement reply, string name) => reply.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.True;

    private static string List(JsonElement reply, string name)
        => reply.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0
            ? string.Join(' ', value.EnumerateArray().Select(e => e.GetString()))
            : "-";

    /// <summary>The socket: --socket, $MOBILITYD_SOCKET, the system socket, or the user's.</summary>
    public static string ResolveSocket(string? given)
    {
        if (!string.IsNullOrWhiteSpace(given))
        {
            return given;
        }

        var env = Environment.GetEnvironmentVariable(SocketEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(env))
        {
            return env;
        }

        var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        var user = string.IsNullOrEmpty(runtime) ? null : Path.Combine(runtime, "mobilityd.sock");
        return File.Exists(DefaultSocket) || user is null || !File.Exists(user) ? DefaultSocket : user;
    }

    /// <summary>Calls mobilityd's API over the Unix socket; maps its failures to exit codes with the daemon's message.</summary>
    internal static async Task<JsonElement> CallAsync(CommandContext context, Option<string?> socketOption, Func<DaemonClient, CancellationToken, Task<JsonElement>> call)
    {
        using var daemon = new DaemonClient(ResolveSocket(context.Get(socketOption)), RequestTimeout);
        try
        {
            return await call(daemon, context.CancellationToken);
        }
        catch (DaemonApiException e)
        {
            throw new CliException(e.Failure switch
            {
                DaemonApiFailure.Unreachable or DaemonApiFailure.Timeout => ExitCodes.Unreachable,
                DaemonApiFailure.Refused => e.StatusCode switch
                {
                    HttpStatusCode.NotFound => ExitCodes.NotFound,
                    HttpStatusCode.BadRequest => ExitCodes.Usage,
                    HttpStatusCode.ServiceUnavailable => ExitCodes.Unreachable,
                    _ => ExitCodes.Failure,
                },
                _ => ExitCodes.Failure,
            }, e.Message, e);
        }
    }
}
