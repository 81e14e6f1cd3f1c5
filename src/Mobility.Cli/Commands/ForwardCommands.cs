using System.Buffers;
using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Mobility.Daemon.Client;
using Mobility.Net.EndPoints;
using Mobility.Net.Socks5;
using Mobility.Protocol.Forwarding;

namespace Mobility.Cli.Commands;

/// <summary>
/// Serving and reaching unmodified applications through mobilityd: <c>mob expose | unexpose |
/// exposed</c> (the daemon's API over its Unix socket; exposing is for the socket's owner or root),
/// <c>mob connect</c> (stdin/stdout through the daemon's SOCKS5 endpoint, to a GUID, a name or an
/// address — the daemon decides mobile or plain TCP for an address — for
/// <c>ssh -o ProxyCommand='mob connect %h %p'</c>) and <c>mob forward</c> (a local TCP port whose
/// connections go through it). The SOCKS5 endpoint: <c>--socks IP:PORT</c>, else $MOBILITYD_SOCKS,
/// else 127.0.0.1:1080.
/// </summary>
public static class ForwardCommands
{
    public const string SocksEnvironmentVariable = "MOBILITYD_SOCKS";
    public const string DefaultSocks = "127.0.0.1:1080";

    /// <summary>Longest wait for the daemon (API call or SOCKS5 handshake, which includes reaching the peer).</summary>
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(15);

    /// <summary>One factory per top-level command, in the shape of <c>CommandGroups.All</c>.</summary>
    public static IReadOnlyList<Func<Command>> All { get; } = [Expose, Unexpose, Exposed, Connect, Forward];

    public static IEnumerable<Command> Create() => All.Select(create => create());

    private static Option<string?> SocksOption() => new("--socks")
    {
        Description = $"mobilityd's SOCKS5 endpoint (default: ${SocksEnvironmentVariable}, else {DefaultSocks})",
        HelpName = "IP:PORT",
    };

    private static Argument<int> PortArgument(string name, string description) => new(name) { Description = description };

    private static Option<bool> UdpOption(string description) => new("--udp") { Description = description };

    private static Command Expose()
    {
        var socket = DaemonCommands.SocketOption();
        var port = PortArgument("port", "Local port (on 127.0.0.1) that peers may reach through the mobile transport");
        var allow = new Option<string[]>("--allow")
        {
            Description = "Only this peer may open the port (a GUID, or a name resolved now and kept as its GUID); repeat for more. Default: every authenticated peer. Exposing a port again replaces its list",
            HelpName = "guid|name",
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        var udp = UdpOption("Expose the UDP port (datagrams, one UDP session per peer connection) instead of the TCP port");
        var source = new Option<string?>("--source")
        {
            Description = "The source address the application sees for a peer: virtual (the peer's stable virtual address, as transparent mode " +
                "resolves it; needs a daemon with CAP_NET_ADMIN, else 127.0.0.1 with a warning in its log) or local (127.0.0.1). " +
                "Default: virtual while transparent mode is on, local otherwise",
            HelpName = "virtual|local",
        };
        source.AcceptOnlyFromAmong("virtual", "local");
        var command = new Command("expose", "Let peers reach a local port through mobilityd (socket owner or root only)") { socket, port, allow, udp, source };
        command.SetHandler(async context =>
        {
            return PrintPorts(context, await DaemonCommands.CallAsync(context, socket,
                (d, ct) => d.ExposeAsync(CheckPort(context.Get(port)), context.Get(allow) ?? [], context.Get(udp), context.Get(source), ct)));
        });
        return command;
    }

    private static Command Unexpose()
    {
        var socket = DaemonCommands.SocketOption();
        var port = PortArgument("port", "An exposed port");
        var udp = UdpOption("The exposed UDP port");
        var command = new Command("unexpose", "Stop exposing a local port (socket owner or root only)") { socket, port, udp };
        command.SetHandler(async context =>
            PrintPorts(context, await DaemonCommands.CallAsync(context, socket, (d, ct) => d.UnexposeAsync(CheckPort(context.Get(port)), context.Get(udp), ct))));
        return command;
    }

    private static Command Exposed()
    {
        var socket = DaemonCommands.SocketOption();
        var command = new Command("exposed", "List the local ports peers may reach") { socket };
        command.SetHandler(async context => PrintPorts(context, await DaemonCommands.CallAsync(context, socket, (d, ct) => d.ListExposedAsync(ct))));
        return command;
    }

    private static Command Connect()
    {
        var socks = SocksOption();
        var target = new Argument<string>("host") { Description = "The host: a GUID, <guid>.guid, a GNS name, or an IP address (mobile when its owner proves a GUID, plain TCP otherwise)" };
        var port = PortArgument("port", "The port the host exposes");
        var command = new Command("connect", "Relay stdin/stdout to a host's port through mobilityd (ssh -o ProxyCommand='mob connect %h %p')") { socks, target, port };
        command.SetHandler(async context =>
        {
            using var socket = await SocksConnectAsync(ResolveSocks(context.Get(socks)), context.Get(target)!, CheckPort(context.Get(port)), context.CancellationToken);
            using var stdin = Console.OpenStandardInput();
            using var stdout = Console.OpenStandardOutput();
            await RelayAsync(socket, stdin, stdout, context.CancellationToken);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Forward()
    {
        var socks = SocksOption();
        var local = PortArgument("local-port", "Port to listen on, on 127.0.0.1 (0 picks one, printed)");
        var remote = new Argument<string>("host:port") { Description = "The host (GUID, name, IPv4 or [IPv6]; with --udp a GUID or name) and the port" };
        var udp = UdpOption("Forward UDP: mobilityd itself listens on UDP 127.0.0.1:<local-port> and carries each local source's datagrams " +
            "to the host's exposed UDP port over its own mobile connection (no relaying process); removed when mob exits");
        var socket = DaemonCommands.SocketOption();
        var command = new Command("forward", "Listen on 127.0.0.1:<local-port> and send each connection through mobilityd to a host's port") { socks, local, remote, udp, socket };
        command.SetHandler(async context =>
        {
            var spec = context.Get(remote)!;
            var colon = spec.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(spec[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var remotePort))
            {
                throw new CliException(ExitCodes.Usage, $"'{spec}' is not <host>:<port>");
            }

            var host = spec[..colon];
            if (host.StartsWith('[') && host.EndsWith(']'))
            {
                host = host[1..^1];
            }
            var port = CheckPort(remotePort);
            var localPort = context.Get(local);
            if (localPort is < 0 or > ushort.MaxValue)
            {
                throw new CliException(ExitCodes.Usage, $"{localPort} is not a port");
            }

            if (context.Get(udp))
            {
                return await ForwardUdpAsync(context, socket, localPort, host, port);
            }

            var endpoint = ResolveSocks(context.Get(socks));

            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, localPort));
            listener.Listen(128);
            context.Output.Line($"forwarding {listener.LocalEndPoint} to {host}:{port}");
            var relays = new List<Task>();
            try
            {
                while (true)
                {
                    var client = await listener.AcceptAsync(context.CancellationToken);
                    relays.RemoveAll(t => t.IsCompleted);
                    relays.Add(ForwardOneAsync(context, client, endpoint, host, port));
                }
            }
            finally
            {
                await Task.WhenAll(relays);
            }
        });
        return command;
    }

    /// <summary>
    /// <c>mob forward --udp</c>: asks mobilityd to run the forward, prints where it listens, and keeps
    /// it until mob is stopped (Ctrl-C, SIGTERM), then removes it.
    /// </summary>
    private static async Task<int> ForwardUdpAsync(CommandContext context, Option<string?> socket, int localPort, string host, ushort port)
    {
        var reply = await DaemonCommands.CallAsync(context, socket, (d, ct) => d.StartUdpForwardAsync(localPort, host, port, ct));
        if (!reply.TryGetProperty("started", out var started) || !started.TryGetProperty("local", out var local)
            || !EndPointParser.TryParse(local.GetString() ?? "", out var forward))
        {
            throw new CliException(ExitCodes.Failure, "mobilityd did not say where the UDP forward listens");
        }

        context.Output.Line($"forwarding udp {forward} to {host}:{port} (in mobilityd)");
        try
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, context.CancellationToken);
        }
        catch (OperationCanceledException)
        {
        }

        using var daemon = new DaemonClient(DaemonCommands.ResolveSocket(context.Get(socket)), TimeSpan.FromSeconds(5));
        try
        {
            await daemon.StopUdpForwardAsync(forward.Port, CancellationToken.None);
        }
        catch (DaemonApiException e)
        {
            await context.Output.Error.WriteLineAsync($"mob: could not remove the UDP forward {forward}: {e.Message}");
        }

        // Stopped like the TCP form: by a signal.
        return ExitCodes.Interrupted;
    }

    private static async Task ForwardOneAsync(CommandContext context, Socket client, IPEndPoint socks, string host, ushort port)
    {
        using (client)
        {
            try
            {
                using var upstream = await SocksConnectAsync(socks, host, port, context.CancellationToken);
                using var stream = new NetworkStream(client, ownsSocket: false);
                await RelayAsync(upstream, stream, stream, context.CancellationToken, () => client.Shutdown(SocketShutdown.Send));
            }
            catch (Exception e) when (e is CliException or IOException or SocketException or OperationCanceledException)
            {
                await context.Output.Error.WriteLineAsync($"mob: {client.RemoteEndPoint}: {e.Message}");
            }
        }
    }

    /// <summary>The SOCKS5 endpoint: --socks, $MOBILITYD_SOCKS, or 127.0.0.1:1080.</summary>
    public static IPEndPoint ResolveSocks(string? given)
    {
        var text = !string.IsNullOrWhiteSpace(given) ? given
            : Environment.GetEnvironmentVariable(SocksEnvironmentVariable) is { Length: > 0 } env ? env
            : DefaultSocks;
        return EndPointParser.TryParse(text, out var endpoint)
            ? endpoint
            : throw new CliException(ExitCodes.Usage, EndPointParser.Explain(text));
    }

    /// <summary>The SOCKS5 domain for a target: a bare GUID becomes <c>&lt;guid&gt;.guid</c>; names pass as they are.</summary>
    public static string SocksHost(string target)
    {
        ArgumentNullException.ThrowIfNull(target);
        return Protocol.Identity.HostGuid.TryParse(target, out var guid) ? $"{guid}.guid" : target;
    }

    /// <summary>
    /// An IP address target (IPv6 with or without brackets) is asked for as an address (ATYP 1 or 4: the
    /// daemon decides mobile or plain TCP by the address's verified owner); anything else is a domain.
    /// </summary>
    public static IPAddress? SocksAddress(string target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var literal = target.StartsWith('[') && target.EndsWith(']') ? target[1..^1] : target;
        return (literal.Contains(':', StringComparison.Ordinal) || literal.Count(c => c == '.') == 3) && IPAddress.TryParse(literal, out var address)
            ? address
            : null;
    }

    /// <summary>Opens a stream to <paramref name="target"/>:<paramref name="port"/> through the SOCKS5 endpoint (no-auth, CONNECT).</summary>
    public static async Task<Socket> SocksConnectAsync(IPEndPoint socks, string target, ushort port, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(socks);
        var address = SocksAddress(target);
        var host = address is null ? SocksHost(target) : null;
        if (host is not null && (host.Length is 0 or > 255 || !host.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_')))
        {
            throw new CliException(ExitCodes.Usage, $"'{target}' is not a host name");
        }

        var socket = new Socket(socks.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(RequestTimeout);
        try
        {
            try
            {
                await socket.ConnectAsync(socks, timeout.Token);
            }
            catch (SocketException e)
            {
                throw new CliException(ExitCodes.Unreachable, $"mobilityd's SOCKS5 endpoint is not reachable at {socks}: {e.Message}", e);
            }

            Socks5Reply reply;
            try
            {
                reply = address is null
                    ? await Socks5Client.ConnectAsync(socket, host!, port, timeout.Token)
                    : await Socks5Client.ConnectAsync(socket, address, port, timeout.Token);
            }
            catch (Socks5FormatException e)
            {
                throw new CliException(ExitCodes.Failure, $"{socks} is not mobilityd's SOCKS5 endpoint: {e.Message}", e);
            }
            catch (IOException e)
            {
                throw new CliException(ExitCodes.Failure, $"mobilityd closed the SOCKS5 connection: {e.Message}", e);
            }

            return reply switch
            {
                Socks5Reply.Succeeded => socket,
                Socks5Reply.NotAllowed => throw new CliException(ExitCodes.Rejected, $"{target} does not expose port {port} (or not to this host)"),
                Socks5Reply.HostUnreachable => throw new CliException(ExitCodes.NotFound, address is null
                    ? $"no mobile peer {target}: it has no GNS record, publishes no transport endpoint, or cannot be reached (mobilityd's log says which)"
                    : $"{target} is unreachable"),
                Socks5Reply.ConnectionRefused => throw new CliException(ExitCodes.Rejected, $"{target} refused the connection to port {port}"),
                var code => throw new CliException(ExitCodes.Failure, $"mobilityd could not connect to {target}:{port} (SOCKS5 reply {(byte)code})"),
            };
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new CliException(ExitCodes.Unreachable, $"no answer from mobilityd's SOCKS5 endpoint {socks} within {RequestTimeout.TotalSeconds:0} s", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Copies <paramref name="input"/> to the socket (then half-closes it) and the socket to <paramref name="output"/>, until the socket ends.</summary>
    private static async Task RelayAsync(Socket socket, Stream input, Stream output, CancellationToken cancellationToken, Action? outputEnded = null)
    {
        using var network = new NetworkStream(socket, ownsSocket: false);
        var up = Task.Run(async () =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
            try
            {
                int read;
                while ((read = await input.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    await network.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }

                socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
            {
                // The other direction decides the end: a peer that closed is seen there.
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }, cancellationToken);
        var downBuffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            int read;
            while ((read = await network.ReadAsync(downBuffer, cancellationToken)) > 0)
            {
                await output.WriteAsync(downBuffer.AsMemory(0, read), cancellationToken);
                await output.FlushAsync(cancellationToken);
            }

            outputEnded?.Invoke();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(downBuffer);
        }

        // The peer finished: wait a moment for our side (a stdin that never ends must not keep us alive).
        await Task.WhenAny(up, Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None));
    }

    private static ushort CheckPort(int port)
        => port is >= 1 and <= ushort.MaxValue ? (ushort)port : throw new CliException(ExitCodes.Usage, $"{port} is not a port (1 to 65535)");

    private static int PrintPorts(CommandContext context, JsonElement reply)
    {
        if (context.Output.Json)
        {
            context.Output.Line(reply.GetRawText());
        }
        else if (reply.TryGetProperty("exposed", out _) || reply.TryGetProperty("udp", out _))
        {
            // One line per port: the port (UDP ports as PORT/udp), "source virtual|local" when chosen, then "allow" and the GUIDs
            // when only those peers may open it.
            foreach (var (name, suffix) in new[] { ("exposed", ""), ("udp", "/udp") })
            {
                if (!reply.TryGetProperty(name, out var entries) || entries.ValueKind != JsonValueKind.Array)
                {
                    continue;
                }

                foreach (var entry in entries.EnumerateArray())
                {
                    var port = entry.GetProperty("port").GetRawText() + suffix;
                    var allowed = entry.TryGetProperty("allow", out var allow) && allow.ValueKind == JsonValueKind.Array
                        ? allow.EnumerateArray().Select(g => g.GetString()).ToArray()
                        : [];
                    if (entry.TryGetProperty("source", out var chosen) && chosen.GetString() is { Length: > 0 } sourceName)
                    {
                        port += " source " + sourceName;
                    }

                    context.Output.Line(allowed.Length == 0 ? port : $"{port} allow {string.Join(' ', allowed)}");
                }
            }
        }
        else if (reply.TryGetProperty("ports", out var ports))
        {
            foreach (var port in ports.EnumerateArray())
            {
                context.Output.Line(port.GetRawText());
            }
        }

        return ExitCodes.Success;
    }
}
