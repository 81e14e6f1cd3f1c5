using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Service;
using Mobility.Daemon.Control;
using Mobility.Daemon.GnsServers;
using Mobility.Daemon.Identity;
using Mobility.Daemon.Internal;
using Mobility.Gns;
using Mobility.Gns.Client;
using Mobility.Hosting;

namespace Mobility.Daemon.Hosting;

/// <summary>Where the daemon's Kestrel endpoints ended up (real ports once started).</summary>
public sealed class DaemonEndpoints
{
    internal ListenOptions? HttpListen { get; set; }

    internal ListenOptions? GrpcListen { get; set; }

    public string? SocketPath { get; internal set; }

    public string? GrpcSocketPath { get; internal set; }

    /// <summary>The loopback HTTP endpoint with its bound port, or null when off.</summary>
    public IPEndPoint? Http => (HttpListen?.EndPoint as IPEndPoint) ?? HttpListen?.IPEndPoint;

    /// <summary>The h2c-only gRPC endpoint, or null.</summary>
    public IPEndPoint? Grpc => (GrpcListen?.EndPoint as IPEndPoint) ?? GrpcListen?.IPEndPoint;
}

/// <summary>
/// Builds and runs mobilityd as a generic host (WebApplication: Kestrel serves the HTTP/JSON and gRPC
/// API on loopback TCP and on the Unix socket; the UDP control endpoint and the record upkeep are
/// hosted services). Configuration: appsettings.json beside the binary, --config files, MOBILITYD_
/// environment variables, then flags (<see cref="CommandLine"/>), later ones winning.
/// </summary>
public static partial class MobilitydHost
{
    public const string EnvironmentPrefix = "MOBILITYD_";

    /// <summary>
    /// Builds the daemon: parses <paramref name="args"/>, binds and validates <see cref="MobilitydOptions"/>
    /// once (a bad command line or bad value throws <see cref="CommandLineException"/>, one line).
    /// <paramref name="configure"/> runs last (tests replace services there, e.g. the GNS client).
    /// </summary>
    public static WebApplication Build(IReadOnlyList<string> args, Action<WebApplicationBuilder>? configure = null)
    {
        var commandLine = CommandLine.Parse(args);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        var configuration = builder.Configuration;
        configuration.Sources.Clear();
        configuration.AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true, reloadOnChange: false);
        foreach (var file in commandLine.ConfigFiles)
        {
            var path = Path.GetFullPath(file);
            if (!File.Exists(path))
            {
                throw new CommandLineException($"--config {file}: no such file.");
            }

            configuration.AddJsonFile(path, optional: false, reloadOnChange: false);
        }

        configuration.AddEnvironmentVariables(EnvironmentPrefix);
        configuration.AddInMemoryCollection(commandLine.Settings);

        var stackTraces = StartupErrors.StackTracesEnabled(configuration);
        builder.Logging.ClearProviders();
        builder.Logging.AddConfiguration(configuration.GetSection("Logging"));
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        StartupErrors.ReportOnce(builder.Logging, stackTraces);
        builder.Host.UseSystemd();

        var options = BindAndValidate(configuration);
        builder.Services.AddSingleton(Options.Create(options));
        var endpoints = new DaemonEndpoints { SocketPath = options.ResolveSocketPath(), GrpcSocketPath = options.ResolveGrpcSocketPath() };
        builder.Services.AddSingleton(endpoints);
        // A factory, not an instance: the container disposes what it created (removing the sockets, releasing the locks).
        builder.Services.AddSingleton(_ => new DaemonOwnership(options.StateDir, new[] { endpoints.SocketPath, endpoints.GrpcSocketPath }.OfType<string>()));
        if (options.EmbeddedGns)
        {
            // Registered first, so that its UDP endpoint is bound before the daemon publishes to it.
            builder.Services.AddEmbeddedGns(options);
        }

        builder.Services.AddMobilityDaemon();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            if (options.HttpEndPoint is { } http)
            {
                kestrel.Listen(http, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1;
                    endpoints.HttpListen = listen;
                });
            }

            if (options.GrpcEndPoint is { } grpc)
            {
                kestrel.Listen(grpc, listen =>
                {
                    listen.Protocols = HttpProtocols.Http2;
                    endpoints.GrpcListen = listen;
                });
            }

            // DaemonOwnership has made both paths ours (locked, nothing else listening) before Kestrel starts.
            if (endpoints.SocketPath is { } socketPath)
            {
                kestrel.ListenUnixSocket(socketPath, listen => listen.Protocols = HttpProtocols.Http1);
            }

            if (endpoints.GrpcSocketPath is { } grpcSocketPath)
            {
                kestrel.ListenUnixSocket(grpcSocketPath, listen => listen.Protocols = HttpProtocols.Http2);
            }
        });

        configure?.Invoke(builder);

        // The real GNS client, unless the caller registered another one (or the embedded GNS did).
        if (options.GnsServerList is null && !builder.Services.Any(d => d.ServiceType == typeof(IGnsClient)))
        {
            throw new CommandLineException("Gns (--gns IP:PORT[,...]) is required unless --embedded-gns is given.");
        }

        builder.Services.TryAddSingleton<IGnsClient>(sp => CreateGnsClient(options, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>()));

        var app = builder.Build();
        foreach (var key in UnknownSettings(configuration))
        {
            HostLog.UnknownSetting(app.Logger, key);
        }

        app.MapGrpcService<MobilitydGrpcService>();
        if (options.EmbeddedGns)
        {
            app.MapGnsService();
        }

        return app;
    }

    /// <summary>
    /// Keys of <paramref name="configuration"/> with a value that name no setting of mobilityd (nor a Logging key): a
    /// misspelling in appsettings.json, a --config file or a MOBILITYD_ variable (a flag that names none is refused by
    /// <see cref="CommandLine"/>). They are warned about at start, not refused, so that a file written for a later
    /// release, with a key this one lacks, still starts it.
    /// </summary>
    internal static IReadOnlyList<string> UnknownSettings(IConfiguration configuration)
        => [.. configuration.AsEnumerable()
            .Where(p => p.Value is not null && !CommandLine.IsKnownKey(p.Key))
            .Select(p => p.Key)
            .Order(StringComparer.OrdinalIgnoreCase)];

    /// <summary>Binds the options from <paramref name="configuration"/> and validates them: the one place both happen.</summary>
    internal static MobilitydOptions BindAndValidate(IConfiguration configuration)
    {
        var options = new MobilitydOptions();
        try
        {
            configuration.Bind(options);
        }
        catch (InvalidOperationException e)
        {
            // "Failed to convert configuration value 'x' at 'Challenge:Attempts' to type 'System.Int32'."
            throw new CommandLineException(e.Message, e);
        }

        var validation = new MobilitydOptionsValidator().Validate(null, options);
        if (validation.Failed)
        {
            throw new CommandLineException(string.Join(" ", validation.Failures));
        }

        return options;
    }

    /// <summary>Starts <paramref name="app"/>, fixes the socket's mode and group, and returns the ready line.</summary>
    public static async Task<string> StartAsync(WebApplication app, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(app);
        // Before anything binds or deletes a path: a second daemon on the same state folder or socket stops here.
        app.Services.GetRequiredService<DaemonOwnership>().Acquire();
        // The state folder, the key and the local access names are checked before the host starts, so
        // that a refusal is the one line RunAsync prints (not also the host's "failed to start" log entry).
        _ = app.Services.GetRequiredService<DaemonIdentity>();
        _ = app.Services.GetRequiredService<Access.LocalAccessPolicy>();
        await app.StartAsync(cancellationToken);
        var services = app.Services;
        var options = services.GetRequiredService<IOptions<MobilitydOptions>>().Value;
        var endpoints = services.GetRequiredService<DaemonEndpoints>();
        if (OperatingSystem.IsLinux())
        {
            foreach (var socket in new[] { endpoints.SocketPath, endpoints.GrpcSocketPath }.OfType<string>())
            {
                SecureSocket(socket, options.SocketGroup);
            }
        }

        return ReadyLine(services);
    }

    /// <summary>
    /// <c>mobilityd ready guid=&lt;guid&gt; control=IP:PORT[,IP:PORT] http=http://IP:PORT socket=PATH grpc=http://IP:PORT grpc-socket=PATH transport=IP:PORT socks=IP:PORT [gns=IP:PORT]</c>;
    /// "-" stands for an endpoint that is off; gns= appears with the embedded GNS (its UDP endpoint).
    /// </summary>
    public static string ReadyLine(IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);
        var identity = services.GetRequiredService<DaemonIdentity>();
        var control = services.GetRequiredService<ControlEndpoint>().LocalEndPoints;
        var endpoints = services.GetRequiredService<DaemonEndpoints>();
        var line = $"mobilityd ready guid={identity.Guid} control={(control.IsEmpty ? "-" : string.Join(',', control))} " +
                   $"http={(endpoints.Http is { } http ? $"http://{http}" : "-")} socket={endpoints.SocketPath ?? "-"} " +
                   $"grpc={(endpoints.Grpc is { } grpc ? $"http://{grpc}" : "-")} grpc-socket={endpoints.GrpcSocketPath ?? "-"}";
        var transport = services.GetRequiredService<Forwarding.MobileForwarder>().LocalEndPoint;
        var socks = services.GetRequiredService<Forwarding.Socks5Endpoint>().LocalEndPoint;
        line = $"{line} transport={transport} socks={(socks is null ? "-" : socks.ToString())}";
        return services.GetService<Gns.Udp.GnsUdpServer>()?.LocalEndPoint is { } gns ? $"{line} gns={gns}" : line;
    }

    /// <summary>
    /// Runs the daemon until SIGTERM/SIGINT: prints the ready line on stdout once listening. Returns the
    /// exit code: 0 after a clean stop, 64 for a bad command line or option value, 1 when it could not
    /// start; either failure is one line on stderr (with the stack trace when logging at Debug).
    /// </summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, Action<WebApplicationBuilder>? configure = null)
    {
        WebApplication app;
        try
        {
            var commandLine = CommandLine.Parse(args);
            if (commandLine.Immediate is { } immediate)
            {
                return await immediate.InvokeAsync();
            }

            app = Build(args, configure);
        }
        catch (CommandLineException e)
        {
            await Console.Error.WriteLineAsync($"mobilityd: {StartupErrors.OneLine(e.Message)} (see 'mobilityd --help')");
            return CommandLine.UsageExitCode;
        }

        await using (app)
        {
            try
            {
                var ready = await StartAsync(app);
                await Console.Out.WriteLineAsync(ready);
                await Console.Out.FlushAsync();
            }
            catch (Exception e) when (StartupErrors.IsStartFailure(e))
            {
                await Console.Error.WriteLineAsync($"mobilityd: {StartupErrors.Describe(e)}");
                if (app.Services.GetRequiredService<StartupErrors>().StackTraces)
                {
                    await Console.Error.WriteLineAsync(e.ToString());
                }

                return CommandLine.StartFailureExitCode;
            }

            await app.WaitForShutdownAsync();
        }

        return 0;
    }

    private static IGnsClient CreateGnsClient(MobilitydOptions options, TimeProvider time, ILoggerFactory loggers)
    {
        // The validator requires --gns unless --embedded-gns (which registers its own client).
        var servers = options.GnsServerList ?? throw new InvalidOperationException("Gns is not set.");

        // Several endpoints or a name: resolved and raced once, as the client is created at start (a few seconds at
        // most, GnsServerSelector.Budget); the one that answered first is used, the others are the client's alternates,
        // chosen again whenever the host's addresses change (a host that goes IPv6-only moves to the GNS's IPv6 address).
        // Names are resolved again by the client on every address change and when their TTL runs out (a host on another
        // network may find the GNS at other addresses, or only at those of the family that works there).
        var resolvers = options.GnsResolverEndPoints;
        var resolver = new GnsNameResolver { Servers = resolvers };
        IReadOnlyList<IPEndPoint> endPoints = servers.IsSingleAddress ? [servers.EndPoints[0]]
            : new GnsServerSelector { TimeProvider = time, NameResolver = resolvers.Count > 0 ? resolver : null }
                .ChooseAsync(servers, loggers.CreateLogger<GnsServerSelector>(), CancellationToken.None).GetAwaiter().GetResult();
        var grpc = string.IsNullOrWhiteSpace(options.GnsGrpc) ? null : new Uri(options.GnsGrpc);
        return new GnsClient(new GnsClientOptions
        {
            Server = endPoints[0],
            GrpcAddress = GnsServerList.GrpcFor(grpc, endPoints[0], endPoints),
            Alternates = [.. endPoints.Skip(1).Select(e => new GnsEndPoint(e, GnsServerList.GrpcFor(grpc, e, endPoints)))],
            Resolve = servers.Names.Count > 0 ? servers.Resolver(resolver, grpc) : null,
            TlsServer = options.GnsTlsEndPoint,
            TlsPins = options.GnsPins,
            TlsUse = options.GnsTlsOnly ? GnsTlsUse.Always : GnsTlsUse.Fallback,
            TimeProvider = time,
            LoggerFactory = loggers,
        });
    }

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static void SecureSocket(string path, string? group)
    {
        // 0660: owner and group may connect; the group decides who may read the API, SO_PEERCRED who may change state.
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        if (!string.IsNullOrWhiteSpace(group))
        {
            var gid = Native.LookupGroup(group) ?? throw new IOException($"Unknown group '{group}' for the socket.");
            Native.ChangeGroup(path, gid);
        }
    }

    private static partial class HostLog
    {
        [LoggerMessage(5900, LogLevel.Warning, "Setting '{Key}' names nothing mobilityd reads (a misspelling?): ignored. The settings are listed in docs/mobilityd.md.")]
        public static partial void UnknownSetting(ILogger logger, string key);
    }
}
