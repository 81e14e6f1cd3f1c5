using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Mobility.Daemon.Client;
using Mobility.Daemon.Control;
using Mobility.Daemon.Forwarding;
using Mobility.Daemon.Hosting;
using Mobility.Daemon.Service;

namespace Mobility.Daemon.FunctionalTests.Infrastructure;

/// <summary>
/// A mobilityd running in the test process, on its own loopback address (127.x.y.z, usable without
/// setup), with its state in a temporary folder and every endpoint on a free port.
/// </summary>
public sealed class DaemonInstance : IAsyncDisposable
{
    private static int _next = Random.Shared.Next(0, 200) * 250;

    // A state folder this instance made (none was given) goes with it: a run of the suites left hundreds in /tmp.
    private bool _ownsStateDir;

    private DaemonInstance(WebApplication app, string stateDir, IPAddress address, string readyLine, RecordingLoggerProvider logs)
    {
        App = app;
        StateDir = stateDir;
        Address = address;
        ReadyLine = readyLine;
        Logs = logs;
    }

    public WebApplication App { get; }

    public string StateDir { get; }

    public IPAddress Address { get; }

    public string ReadyLine { get; }

    public RecordingLoggerProvider Logs { get; }

    public IServiceProvider Services => App.Services;

    public DaemonApi Api => Services.GetRequiredService<DaemonApi>();

    public ControlEndpoint Control => Services.GetRequiredService<ControlEndpoint>();

    public HostGuid Guid => Api.GetSelfGuid();

    public DaemonEndpoints Endpoints => Services.GetRequiredService<DaemonEndpoints>();

    public string SocketPath => Endpoints.SocketPath!;

    public string GrpcSocketPath => Endpoints.GrpcSocketPath!;

    public Uri HttpBase => new($"http://{Endpoints.Http}/");

    public Uri GrpcBase => new($"http://{Endpoints.Grpc}/");

    /// <summary>The SOCKS5 endpoint's bound address (the daemon was started with <c>--socks</c>).</summary>
    public IPEndPoint Socks => Services.GetRequiredService<Socks5Endpoint>().LocalEndPoint!;

    /// <summary>The mobile TCP side of forwarding: the transport listener and the outgoing connections.</summary>
    public MobileForwarder Forwarder => Services.GetRequiredService<MobileForwarder>();

    /// <summary>A fresh loopback address no other test uses (127.91.x.y).</summary>
    public static IPAddress NewAddress()
    {
        var n = Interlocked.Increment(ref _next);
        return new IPAddress([127, 91, (byte)(n / 250 % 250), (byte)((n % 250) + 2)]);
    }

    public static async Task<DaemonInstance> StartAsync(IGnsClient gns, IPAddress? address = null, string? stateDir = null,
        IEnumerable<string>? extraArgs = null, Action<WebApplicationBuilder>? configure = null)
    {
        address ??= NewAddress();
        var ownsStateDir = stateDir is null;
        stateDir ??= NewFolder();
        var logs = new RecordingLoggerProvider();
        var args = new List<string>
        {
            "--state-dir", stateDir,
            "--address", address.ToString(),
            "--http", "127.0.0.1:0",
            "--grpc", "127.0.0.1:0",
            "--socket", Path.Combine(stateDir, "mobilityd.sock"),
            "--Challenge:AttemptTimeout", "00:00:00.150",
            "--Challenge:Attempts", "2",
            "--Record:TtlSeconds", "60",
            "--Nat:PortMapping", "false", // never the real gateway from this machine's own namespace
            // The start's move rehearsal costs CPU the many daemons of these tests do not need (MoveRehearsalTests turns it on).
            "--Forwarding:Transport:RehearseMove", "false",
        };
        args.AddRange(extraArgs ?? []);
        var app = MobilitydHost.Build(args, builder =>
        {
            builder.Services.AddSingleton(gns);
            builder.Logging.ClearProviders();
            builder.Logging.SetMinimumLevel(LogLevel.Debug);
            builder.Logging.AddProvider(logs);
            configure?.Invoke(builder);
        });
        try
        {
            var ready = await MobilitydHost.StartAsync(app).WithTimeout();
            return new DaemonInstance(app, stateDir, address, ready, logs) { _ownsStateDir = ownsStateDir };
        }
        catch
        {
            await app.DisposeAsync();
            if (ownsStateDir)
            {
                RemoveFolder(stateDir);
            }

            throw;
        }
    }

    /// <summary>
    /// A daemon that forwards: on a fresh address, its mobile transport on that address and its
    /// SOCKS5 endpoint on 127.0.0.1, both on free ports.
    /// </summary>
    public static Task<DaemonInstance> StartForwardingAsync(IGnsClient gns, params string[] extraArgs)
    {
        var address = NewAddress();
        return StartAsync(gns, address, extraArgs: ["--transport", $"{address}:0", "--socks", "127.0.0.1:0", .. extraArgs]);
    }

    /// <summary>
    /// A temporary folder others can traverse (the socket tests connect as nobody), directly in the
    /// sticky temporary folder: mobilityd refuses a state folder whose parent others could write.
    /// </summary>
    public static string NewFolder()
    {
        var folder = Directory.CreateTempSubdirectory("mobilityd-tests-").FullName;
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(folder, (UnixFileMode)0x1ED);
        }

        return folder;
    }

    /// <summary>An HttpClient that talks to <paramref name="socketPath"/> (HTTP/1.1, or h2c when <paramref name="http2"/>).</summary>
    public static HttpClient UnixClient(string socketPath, bool http2 = false) => UnixSocketHttp.CreateClient(socketPath, TestTimeout.Default, http2);

    /// <summary>Stops the daemon; fails the test when it logged an error (an unexpected error is a bug even if the test passed).</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await App.StopAsync().WithTimeout();
        }
        finally
        {
            await App.DisposeAsync();
            if (_ownsStateDir)
            {
                RemoveFolder(StateDir);
            }
        }

        Logs.AssertNoErrors();
    }

    private static void RemoveFolder(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left behind: a temporary folder, not worth failing a test over.
        }
    }
}
