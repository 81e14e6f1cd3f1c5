using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>Record refresh on (virtual) time, and addresses read from the interfaces.</summary>
public sealed class UpkeepTests
{
    [Fact]
    public async Task The_record_is_refreshed_before_its_ttl_runs_out()
    {
        var gns = new FakeGns();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var host = await DaemonInstance.StartAsync(gns.CreateClient(),
            extraArgs: ["--Record:TtlSeconds", "10", "--Record:RefreshFraction", "0.5", "--AddressWatch:Debounce", "00:00:00"],
            configure: b => b.Services.Replace(ServiceDescriptor.Singleton<TimeProvider>(time)));
        await TestTimeout.Eventually(() => gns.Get(host.Guid) is not null, "registered");
        var first = gns.Get(host.Guid)!.Version;
        var registeredAt = time.GetUtcNow();

        // Step virtual time until the record is re-published: it must happen at half the TTL, never after it ran out.
        var steps = 0;
        while (gns.Get(host.Guid)!.Version == first && steps++ < 40)
        {
            time.Advance(TimeSpan.FromMilliseconds(500));
            await Task.Delay(20);
        }

        var refreshedAfter = time.GetUtcNow() - registeredAt;
        Assert.True(gns.Get(host.Guid)!.Version > first, "the record was never re-published");
        Assert.InRange(refreshedAfter, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(9.5));
    }

    [Fact]
    public async Task Without_fixed_addresses_the_interfaces_are_published_and_loopback_only_when_allowed()
    {
        var gns = new FakeGns();
        var dir = DaemonInstance.NewFolder();
        string[] Args(bool loopback) =>
        [
            "--state-dir", dir, "--gns", "127.0.0.1:9", "--http", "127.0.0.1:0", "--grpc", "off", "--socket", Path.Combine(dir, "d.sock"),
            "--control", "127.0.0.1:0", "--allow-loopback", loopback ? "true" : "false",
        ];
        var withLoopback = Hosting.MobilitydHost.Build(Args(true), b => b.Services.AddSingleton(gns.CreateClient()));
        await using (withLoopback)
        {
            await Hosting.MobilitydHost.StartAsync(withLoopback).WithTimeout();
            var api = withLoopback.Services.GetRequiredService<Service.DaemonApi>();
            Assert.Contains(IPAddress.Loopback, api.GetAddresses().Addresses);
            Assert.False(api.GetAddresses().Fixed);
            await TestTimeout.Eventually(() => gns.Get(api.GetSelfGuid())?.HasAddress(IPAddress.Loopback) == true, "the loopback address was published");
            await withLoopback.StopAsync().WithTimeout();
        }

        var without = Hosting.MobilitydHost.Build(Args(false), b => b.Services.AddSingleton(gns.CreateClient()));
        await using (without)
        {
            await Hosting.MobilitydHost.StartAsync(without).WithTimeout();
            var api = without.Services.GetRequiredService<Service.DaemonApi>();
            Assert.DoesNotContain(api.GetAddresses().Addresses, IPAddress.IsLoopback);
            await without.StopAsync().WithTimeout();
        }
    }
}
