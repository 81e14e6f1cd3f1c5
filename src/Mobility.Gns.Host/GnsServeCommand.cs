using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Gns.Dns.Server;
using Mobility.Gns.Redis;
using Mobility.Gns.Dns;
using Mobility.Gns.Udp;
using Mobility.Hosting;

namespace Mobility.Gns.Host;

/// <summary><c>gns serve</c>: a generic host with Kestrel (HTTP/JSON, gRPC) and the UDP endpoint.</summary>
internal static class GnsServeCommand
{
    /// <summary>Prefix of the environment variables read besides the standard ones: GNS_Gns__Udp=127.0.0.1:7353.</summary>
    public const string EnvironmentPrefix = "GNS_";

    /// <summary>Exit code of a bad setting (sysexits EX_USAGE, as mob and mobilityd).</summary>
    public const int UsageExitCode = 64;

    /// <summary>Exit code when the server could not start (a port taken, the store folder in use).</summary>
    public const int StartFailureExitCode = 1;

    private static readonly Dictionary<string, string?> Defaults = new()
    {
        ["Logging:LogLevel:Default"] = "Information",
        // Kestrel and routing log every request at Information: a peer must not be able to fill the log.
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        // gRPC logs every refused call (RpcException) at Information: same reason.
        ["Logging:LogLevel:Grpc"] = "Warning",
    };

    public static async Task<int> RunAsync(IReadOnlyDictionary<string, string?> overrides, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] });
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = Defaults });
        builder.Configuration.AddEnvironmentVariables(EnvironmentPrefix);
        builder.Configuration.AddInMemoryCollection(overrides);

        builder.Logging.ClearProviders();
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        StartupErrors.ReportOnce(builder.Logging, StartupErrors.StackTracesEnabled(builder.Configuration));
        builder.Host.UseSystemd();

        var endpoints = builder.Configuration.GetSection(GnsServerOptions.SectionName).Get<GnsHostOptions>() ?? new GnsHostOptions();
        if (endpoints.Validate() is { } problem)
        {
            await Console.Error.WriteLineAsync($"gns: {problem}");
            return UsageExitCode;
        }

        ListenOptions? httpListen = null;
        ListenOptions? grpcListen = null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(endpoints.HttpEndPoint, o =>
            {
                o.Protocols = HttpProtocols.Http1;
                httpListen = o;
            });
            if (endpoints.GrpcEndPoint is { } grpc)
            {
                kestrel.Listen(grpc, o =>
                {
                    o.Protocols = HttpProtocols.Http2;
                    grpcListen = o;
                });
            }
        });

        builder.Services.AddGnsServer(builder.Configuration);
        var storeKind = builder.Configuration[$"{GnsServerOptions.SectionName}:Store"];
        if (string.Equals(storeKind, GnsServerOptions.RedisStore, StringComparison.OrdinalIgnoreCase))
        {
            var connection = builder.Configuration[$"{GnsServerOptions.SectionName}:Redis:Configuration"];
            if (string.IsNullOrWhiteSpace(connection))
            {
                await Console.Error.WriteLineAsync("gns: the redis store needs a connection string (--redis HOST:PORT or Gns:Redis:Configuration).");
                return UsageExitCode;
            }

            builder.Services.AddRedisGnsStore(connection);
        }

        if (endpoints.DnsEndPoint is { } dnsEndPoint)
        {
            builder.Services.AddGnsDns(o =>
            {
                o.Endpoint = dnsEndPoint.ToString();
                o.EndpointOptionName = GnsHostOptions.DnsOption;
                o.Zone = endpoints.Zone;
            });
        }
        await using var app = builder.Build();
        app.MapGnsService();

        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (Exception ex) when (StartupErrors.IsStartFailure(ex) || ex is ArgumentException)
        {
            // One line naming what failed (e.g. "cannot bind UDP 127.0.0.1:7353 (GNS datagram endpoint): Address already in use"); the stack trace only at Debug.
            await Console.Error.WriteLineAsync($"gns: {StartupErrors.Describe(ex)}");
            if (app.Services.GetRequiredService<StartupErrors>().StackTraces)
            {
                await Console.Error.WriteLineAsync(ex.ToString());
            }

            return ex is OptionsValidationException or ArgumentException ? UsageExitCode : StartFailureExitCode;
        }

        var options = app.Services.GetRequiredService<IOptions<GnsServerOptions>>().Value;
        var udpServer = app.Services.GetRequiredService<GnsUdpServer>();
        var udp = udpServer.LocalEndPoint;
        var store = options.Store switch
        {
            GnsServerOptions.MemoryStore => "memory",
            GnsServerOptions.RedisStore => $"redis:{builder.Configuration[$"{GnsServerOptions.SectionName}:Redis:Configuration"]}",
            _ => $"sqlite:{Path.GetFullPath(options.DataDirectory)}",
        };
        var dns = app.Services.GetService<GnsDnsServer>()?.UdpEndPoint;
        // The one line on stdout: scripts and tests wait for it and read the real ports from it.
        Console.Out.WriteLine(
            $"gns listening udp={Describe(udp)} http={Url(httpListen)} grpc={Url(grpcListen)} store={store}" +
            (dns is null ? "" : $" dns={dns}") + (udpServer.ReflectEndPoint is { } reflect ? $" reflect={reflect}" : ""));
        Console.Out.Flush();

        await app.WaitForShutdownAsync(CancellationToken.None);
        return 0;
    }

    private static string Describe(IPEndPoint? endPoint) => endPoint?.ToString() ?? "off";

    private static string Url(ListenOptions? listen) => listen?.IPEndPoint is { } endPoint ? $"http://{endPoint}" : "off";
}
