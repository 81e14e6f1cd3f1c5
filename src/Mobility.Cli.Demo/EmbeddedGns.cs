using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Mobility.Gns;
using Mobility.Gns.Udp;

namespace Mobility.Cli.Demo;

/// <summary>
/// The real GNS server in this process, wired as <c>gns serve</c> wires it: <see cref="GnsServerServiceCollectionExtensions.AddGnsServer(IServiceCollection, Action{GnsServerOptions})"/>
/// on the SQLite store in <paramref name="dataDirectory"/>, the UDP datagram endpoint and the gRPC
/// service (watches) on h2c, both on 127.0.0.1 with ports the OS picks.
/// </summary>
public sealed class EmbeddedGns : IAsyncDisposable
{
    /// <summary>Kestrel waits this long for open calls (watch streams) at stop; the hosts close theirs first.</summary>
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(1);

    private readonly WebApplication _app;

    private EmbeddedGns(WebApplication app) => _app = app;

    /// <summary>The datagram endpoint (lookups, signed updates).</summary>
    public required IPEndPoint Udp { get; init; }

    /// <summary>The gRPC base address (watches).</summary>
    public required Uri Grpc { get; init; }

    public required string DataDirectory { get; init; }

    public static async Task<EmbeddedGns> StartAsync(string dataDirectory, DemoLog log, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(dataDirectory);
        // The content root is the empty data folder, so no appsettings.json of the current directory applies.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = dataDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(log);
        builder.Logging.SetMinimumLevel(log.MinimumLevel);
        // Kestrel and gRPC log every request at Information (as in gns serve).
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ShutdownTimeout);
        // Not the console lifetime: it would take Ctrl-C and SIGTERM for itself and stop the GNS under a
        // running demo. The demo handles the signals and stops the GNS last.
        builder.Services.AddSingleton<IHostLifetime, EmbeddedLifetime>();
        ListenOptions? grpcListen = null;
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, o =>
        {
            o.Protocols = HttpProtocols.Http2;
            grpcListen = o;
        }));
        builder.Services.AddGnsServer(o =>
        {
            o.Store = GnsServerOptions.SqliteStore;
            o.DataDirectory = dataDirectory;
            o.Udp = "127.0.0.1:0";
        });

        var app = builder.Build();
        try
        {
            app.MapGnsService();
            await app.StartAsync(cancellationToken);
            var udp = app.Services.GetRequiredService<GnsUdpServer>().LocalEndPoint
                      ?? throw new InvalidOperationException("The embedded GNS did not bind its UDP endpoint.");
            var grpc = grpcListen?.IPEndPoint ?? throw new InvalidOperationException("The embedded GNS did not bind its gRPC endpoint.");
            return new EmbeddedGns(app) { Udp = udp, Grpc = new Uri($"http://{grpc}/"), DataDirectory = dataDirectory };
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var stop = new CancellationTokenSource(ShutdownTimeout * 2);
            await _app.StopAsync(stop.Token);
        }
        finally
        {
            await _app.DisposeAsync();
        }
    }

    /// <summary>A host lifetime that leaves signals alone: the embedding command starts and stops the host.</summary>
    private sealed class EmbeddedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
