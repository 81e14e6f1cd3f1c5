using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Mobility.Gns.Dns.Server;
using Mobility.Gns.Redis;
using Mobility.Gns.Dns;
using Mobility.Gns.Streams;
using Mobility.Gns.Udp;
using Mobility.Hosting;

namespace Mobility.Gns.Host;

/// <summary><c>gns serve</c>: a generic host with Kestrel (HTTP/JSON, gRPC) and the UDP endpoint.</summary>
internal static class GnsServeCommand
{
    /// <summary>The program's name and the prefix of the environment variables it reads besides the standard ones: GNS_Gns__Udp=127.0.0.1:7353.</summary>
    public static readonly ServerHost Executable = new("gns", "GNS_");

    /// <summary>gRPC logs every refused call (RpcException) at Information: a peer must not be able to fill the log.</summary>
    private static readonly Dictionary<string, string?> Defaults = new() { ["Logging:LogLevel:Grpc"] = "Warning" };

    public static async Task<int> RunAsync(IReadOnlyDictionary<string, string?> overrides, CancellationToken cancellationToken)
    {
        var builder = Executable.CreateBuilder(overrides, Defaults);
        var endpoints = builder.Configuration.GetSection(GnsServerOptions.SectionName).Get<GnsHostOptions>() ?? new GnsHostOptions();
        if (endpoints.Validate() is { } problem)
        {
            return await Executable.UsageErrorAsync(problem);
        }

        X509Certificate2? certificate = null;
        try
        {
            if (endpoints.TlsEndPoint is not null)
            {
                certificate = X509Certificate2.CreateFromPemFile(endpoints.TlsCert, endpoints.TlsKey);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            return await Executable.UsageErrorAsync($"{GnsHostOptions.TlsListenOption}: {e.Message}");
        }

        using var _ = certificate;
        ListenOptions? httpListen = null;
        ListenOptions? grpcListen = null;
        ListenOptions? tlsListen = null;
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

            if (endpoints.TlsEndPoint is { } tls)
            {
                // The datagram protocol, length-prefixed, inside TLS (docs/protocol.md, "GNS over TLS").
                kestrel.Listen(tls, o =>
                {
                    o.UseHttps(certificate!);
                    o.UseConnectionHandler<GnsStreamConnectionHandler>();
                    tlsListen = o;
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
                return await Executable.UsageErrorAsync("the redis store needs a connection string (--redis HOST:PORT or Gns:Redis:Configuration).");
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

        return await Executable.RunAsync(app, () =>
        {
            var options = app.Services.GetRequiredService<IOptions<GnsServerOptions>>().Value;
            var udpServer = app.Services.GetRequiredService<GnsUdpServer>();
            var store = options.Store switch
            {
                GnsServerOptions.MemoryStore => "memory",
                GnsServerOptions.RedisStore => $"redis:{builder.Configuration[$"{GnsServerOptions.SectionName}:Redis:Configuration"]}",
                _ => $"sqlite:{Path.GetFullPath(options.DataDirectory)}",
            };
            var dns = app.Services.GetService<GnsDnsServer>()?.UdpEndPoint;
            return $"gns listening udp={udpServer.LocalEndPoint?.ToString() ?? "off"} http={ServerHost.Url(httpListen)} grpc={ServerHost.Url(grpcListen)} store={store}" +
                (dns is null ? "" : $" dns={dns}") + (udpServer.ReflectEndPoint is { } reflect ? $" reflect={reflect}" : "") +
                (tlsListen is null ? "" : $" tls={ServerHost.EndPoint(tlsListen)}");
        }, cancellationToken);
    }
}
