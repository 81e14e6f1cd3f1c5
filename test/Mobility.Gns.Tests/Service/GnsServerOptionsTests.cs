using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Mobility.Gns.Tests.Service;

public sealed class GnsServerOptionsTests
{
    private static IHost Build(Dictionary<string, string?> settings)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddGnsServer(builder.Configuration);
        return builder.Build();
    }

    [Fact]
    public void Defaults_are_valid()
        => Assert.True(new GnsServerOptionsValidator().Validate(null, new GnsServerOptions()).Succeeded);

    [Theory]
    [InlineData("Udp", "localhost:7353")]
    [InlineData("Udp", "127.0.0.1")]
    [InlineData("Store", "mongodb")]
    [InlineData("MaxTtl", "00:00:00")]
    [InlineData("Burst", "0")]
    [InlineData("RequestsPerSecond", "0")]
    [InlineData("ReverseDefaultLimit", "5000")]
    [InlineData("MaxWatchGuids", "0")]
    [InlineData("MaxInFlightUpdates", "0")]
    public async Task Host_start_fails_on_an_invalid_setting_and_names_it(string key, string value)
    {
        using var host = Build(new() { ["Gns:Store"] = "memory", ["Gns:Udp"] = "127.0.0.1:0", [$"Gns:{key}"] = value });
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync()).WithTimeout();
        Assert.Contains($"Gns:{key}", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Settings_are_bound_from_the_gns_section_and_the_store_follows_the_store_kind()
    {
        using var host = Build(new()
        {
            ["Gns:Store"] = "memory",
            ["Gns:Udp"] = "[::1]:0",
            ["Gns:MaxWatchGuids"] = "17",
            ["Gns:MaxTtl"] = "02:00:00",
        });
        var options = host.Services.GetRequiredService<IOptions<GnsServerOptions>>().Value;
        Assert.Equal(17, options.MaxWatchGuids);
        Assert.Equal(TimeSpan.FromHours(2), options.MaxTtl);
        Assert.Equal(System.Net.IPAddress.IPv6Loopback, options.UdpEndPoint!.Address);
        Assert.IsType<InMemoryGnsStore>(host.Services.GetRequiredService<IGnsStore>());
    }

    [Fact]
    public async Task Sqlite_store_is_opened_in_the_configured_data_directory()
    {
        var directory = Path.Combine(Path.GetTempPath(), "gns-options-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var host = Build(new() { ["Gns:DataDirectory"] = directory, ["Gns:Udp"] = "" }))
            {
                var store = host.Services.GetRequiredService<IGnsStore>();
                Assert.IsType<SqliteGnsStore>(store);
                Assert.True(File.Exists(Path.Combine(directory, SqliteGnsStoreOptions.DatabaseFileName)));
                await store.DisposeAsync().WithTimeout();
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
