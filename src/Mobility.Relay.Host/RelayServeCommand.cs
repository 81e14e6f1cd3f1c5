using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Mobility.Hosting;
using Mobility.Net.Processes;
using Mobility.Relay.Connections;

namespace Mobility.Relay.Host;

/// <summary><c>mobility-relay serve</c>: a generic host whose Kestrel endpoints run the relay's connection handler.</summary>
internal static class RelayServeCommand
{
    /// <summary>The program's name and the prefix of the environment variables it reads besides the standard ones: RELAY_Relay__Listen=[::]:7395.</summary>
    public static readonly ServerHost Executable = new("mobility-relay", "RELAY_");

    public static async Task<int> RunAsync(IReadOnlyDictionary<string, string?> overrides, CancellationToken cancellationToken)
    {
        var builder = Executable.CreateBuilder(overrides);
        var section = builder.Configuration.GetSection(RelayOptions.SectionName);
        var host = section.Get<RelayHostOptions>() ?? new RelayHostOptions();
        var limits = section.GetSection("Limits").Get<RelayLimits>() ?? new RelayLimits();
        if (host.Validate() is { } problem)
        {
            return await Executable.UsageErrorAsync(problem);
        }

        IReadOnlySet<Mobility.Protocol.Identity.HostGuid>? allowed;
        X509Certificate2? certificate = null;
        try
        {
            allowed = host.ReadAllowList();
            if (host.TlsEndPoint is not null)
            {
                certificate = X509Certificate2.CreateFromPemFile(host.TlsCert, host.TlsKey);
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            return await Executable.UsageErrorAsync(e.Message);
        }

        using var _ = certificate;
        ListenOptions? plainListen = null;
        ListenOptions? tlsListen = null;
        ListenOptions? metricsListen = null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            if (host.ListenEndPoint is { } plain)
            {
                kestrel.Listen(plain, o =>
                {
                    o.UseConnectionHandler<RelayConnectionHandler>();
                    plainListen = o;
                });
            }

            if (host.TlsEndPoint is { } tls)
            {
                kestrel.Listen(tls, o =>
                {
                    // A host registered over TLS publishes this endpoint as its relay locator, and diallers speak plain TCP
                    // to it: the first byte tells them apart (a TLS record starts with 0x16, a relay message with 'M').
                    var handler = o.ApplicationServices.GetRequiredService<RelayConnectionHandler>();
                    o.Use(next => connection => PlainOrTlsAsync(connection, next, handler, limits.FirstMessageTimeout));
                    o.UseHttps(certificate!);
                    o.UseConnectionHandler<RelayConnectionHandler>();
                    tlsListen = o;
                });
            }

            if (host.MetricsEndPoint is { } metrics)
            {
                kestrel.Listen(metrics, o =>
                {
                    o.Protocols = HttpProtocols.Http1;
                    metricsListen = o;
                });
            }
        });

        builder.Services.AddRelayServer(o =>
        {
            o.Allowed = allowed;
            o.Advertised = host.AdvertisedEndPoints;
            o.Limits = limits;
        });

        await using var app = builder.Build();
        if (metricsListen is not null || host.MetricsEndPoint is not null)
        {
            var counters = app.Services.GetRequiredService<RelayCounters>();
            app.MapGet("/metrics", () => Results.Text(counters.ToPrometheusText(), "text/plain; version=0.0.4"));
        }

        return await Executable.RunAsync(app, () =>
            $"{ReadyLine.RelayPrefix} tcp={ServerHost.EndPoint(plainListen)} tls={ServerHost.EndPoint(tlsListen)} " +
            $"metrics={ServerHost.Url(metricsListen)} admission={(allowed is null ? "any" : $"allow-list:{allowed.Count}")}",
            cancellationToken);
    }

    /// <summary>Hands a connection to TLS (then the handler) when its first byte starts a TLS record, else straight to the handler.</summary>
    private static async Task PlainOrTlsAsync(ConnectionContext connection, ConnectionDelegate tls, RelayConnectionHandler plain, TimeSpan timeout)
    {
        var input = connection.Transport.Input;
        System.IO.Pipelines.ReadResult read;
        using (var silence = new CancellationTokenSource(timeout))
        {
            try
            {
                read = await input.ReadAsync(silence.Token);
            }
            catch (OperationCanceledException)
            {
                // Silent past the first-message timeout, as the handler would close it.
                return;
            }
        }

        var empty = read.Buffer.IsEmpty;
        var tlsRecord = !empty && read.Buffer.FirstSpan[0] == 0x16;
        input.AdvanceTo(read.Buffer.Start);
        if (empty)
        {
            return;
        }

        await (tlsRecord ? tls(connection) : plain.OnConnectedAsync(connection));
    }
}
