using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Mobility.Gns;
using Mobility.Gns.Dns;
using Mobility.Gns.Dns.Server;
using Mobility.Gns.Udp;

namespace Mobility.Daemon.FunctionalTests.Infrastructure;

/// <summary>The real GNS server (Mobility.Gns) in the test process: in-memory store, UDP and h2c gRPC on free loopback ports.</summary>
public sealed class GnsServerInstance : IAsyncDisposable
{
    private GnsServerInstance(WebApplication app, IPEndPoint udp, Uri grpc, IPEndPoint? dns)
    {
        App = app;
        Udp = udp;
        Grpc = grpc;
        Dns = dns;
    }

    /// <summary>The DNS front end's UDP endpoint (with a zone given to <see cref="StartAsync"/>), else null.</summary>
    public IPEndPoint? Dns { get; }

    public WebApplication App { get; }

    public IPEndPoint Udp { get; }

    public Uri Grpc { get; }

    /// <summary>
    /// Starts a server; on the given ports when they are not 0 (a restart on the same ports, with an empty store);
    /// with <paramref name="reflect"/> (<c>IP:PORT</c>), its reflect endpoint for NAT discovery too; with
    /// <paramref name="dnsZone"/>, its DNS front end for that zone on a free loopback port (<see cref="Dns"/>).
    /// </summary>
    public static async Task<GnsServerInstance> StartAsync(int udpPort = 0, int grpcPort = 0, string reflect = "", string address = "127.0.0.1",
        string? dnsZone = null)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        // Open watch streams do not end when the server stops: Kestrel cuts them off after this, as a crash would.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        builder.Services.AddGnsServer(o =>
        {
            o.Udp = $"{address}:{udpPort}";
            o.UdpReflect = reflect;
            o.Store = GnsServerOptions.MemoryStore;
            // Tests hammer it from one address.
            o.RequestsPerSecond = 10_000;
            o.Burst = 10_000;
        });
        if (dnsZone is not null)
        {
            builder.Services.AddGnsDns(new IPEndPoint(IPAddress.Loopback, 0), dnsZone);
        }

        ListenOptions? grpcListen = null;
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, grpcPort, l =>
        {
            l.Protocols = HttpProtocols.Http2;
            grpcListen = l;
        }));
        var app = builder.Build();
        app.MapGnsService();
        await app.StartAsync().WithTimeout();
        var udp = app.Services.GetRequiredService<GnsUdpServer>().LocalEndPoint!;
        var grpcEndPoint = (IPEndPoint)grpcListen!.EndPoint;
        return new GnsServerInstance(app, udp, new Uri($"http://{grpcEndPoint}/"),
            dnsZone is null ? null : app.Services.GetRequiredService<GnsDnsServer>().UdpEndPoint);
    }

    /// <summary>A real GNS client of this server.</summary>
    /// <summary>Waits until the GNS has a record of each of <paramref name="daemons"/>.</summary>
    public async Task RegisteredAsync(params DaemonInstance[] daemons)
    {
        await using var direct = CreateClient(cache: false);
        foreach (var daemon in daemons)
        {
            await TestTimeout.Eventually(async () => await direct.LookupAsync(daemon.Guid) is not null, $"{daemon.Guid} registered");
        }
    }

    public GnsClient CreateClient(bool cache = true) => new(new GnsClientOptions
    {
        Server = Udp,
        GrpcAddress = Grpc,
        CacheEnabled = cache,
        RequestTimeout = TimeSpan.FromMilliseconds(200),
    });

    public async ValueTask DisposeAsync()
    {
        try
        {
            await App.StopAsync().WithTimeout();
        }
        finally
        {
            await App.DisposeAsync();
        }
    }
}
