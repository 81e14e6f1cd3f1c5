using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Mobility.Gns.Dns.Tests.Server;

public sealed class GnsDnsOptionsTests
{
    [Fact]
    public void Validation_names_each_bad_setting()
    {
        var options = new GnsDnsOptions { Endpoint = "nowhere", Zone = "bad zone!", MaxUdpResponseSize = 100, UdpReceiveLoops = 0 };
        options.NameServers.Add("ns..bad");

        var result = new GnsDnsOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        foreach (var setting in new[] { "Endpoint", "Zone", "NameServers", "MaxUdpResponseSize", "UdpReceiveLoops" })
        {
            Assert.Contains(result.Failures!, f => f.Contains(setting, StringComparison.Ordinal));
        }

        Assert.True(new GnsDnsOptionsValidator().Validate(null, new GnsDnsOptions { Zone = "gns.example.org." }).Succeeded);
    }

    [Fact]
    public async Task A_host_with_a_missing_zone_fails_to_start()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IGnsStore, InMemoryGnsStore>();
        builder.Services.AddGnsDns(o => o.Endpoint = "127.0.0.1:0");
        using var host = builder.Build();

        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync().WithTimeout());
        Assert.Contains("Gns:Dns:Zone", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddGnsDns_twice_registers_one_server()
    {
        var services = new ServiceCollection();
        services.AddGnsDns(new IPEndPoint(IPAddress.Loopback, 0), "gns.test");
        services.AddGnsDns(new IPEndPoint(IPAddress.Loopback, 0), "gns.test");

        Assert.Single(services, d => d.ServiceType == typeof(GnsDnsServer));
        Assert.Single(services, d => d.ServiceType == typeof(IHostedService));
    }
}
