using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Mobility.Daemon.Forwarding;
using Mobility.Daemon.FunctionalTests.Infrastructure;
using Mobility.Daemon.Peers;
using Mobility.Gns.Watch;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>
/// Every record a daemon has looked up is watched, so get_ip and the hosts file follow a peer's move
/// push by push instead of after the record's TTL (60 s here, longer than any wait in these tests).
/// </summary>
public sealed class FreshAnswerTests
{
    [Fact]
    public async Task Get_ip_and_the_hosts_file_follow_a_peers_move_without_waiting_for_the_ttl()
    {
        var moved = DaemonInstance.NewAddress();
        await using var gns = await GnsServerInstance.StartAsync();
        await using var a = await DaemonInstance.StartAsync(gns.CreateClient());
        await using var b = await DaemonInstance.StartAsync(gns.CreateClient());
        await gns.RegisteredAsync(a);
        var before = await b.Api.GetIpAsync(a.Guid.ToString()).WithTimeout();
        Assert.True(before!.HasAddress(a.Address));
        Assert.True(b.Services.GetRequiredService<WatchedRecords>().IsWatched(a.Guid));
        await WatchesOpenAsync(gns, 1);

        await a.Api.SetAddressesAsync([moved]).WithTimeout();

        await TestTimeout.Eventually(async () => (await b.Api.GetIpAsync(a.Guid.ToString()))?.HasAddress(moved) == true,
            "get_ip at B answers A's new address");
        Assert.False((await b.Api.GetIpAsync(a.Guid.ToString()).WithTimeout())!.HasAddress(a.Address));
        var hosts = Path.Combine(b.StateDir, "state", "hosts");
        await TestTimeout.Eventually(() => File.ReadAllText(hosts).Contains($"{moved} {a.Guid}.guid", StringComparison.Ordinal),
            "B's hosts file lists A's new address");
        Assert.DoesNotContain($"{a.Address} {a.Guid}.guid", File.ReadAllText(hosts), StringComparison.Ordinal);
    }

    [Fact]
    public async Task At_the_cap_the_least_recently_looked_up_peer_is_unwatched_and_no_longer_cached()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var direct = gns.CreateClient(cache: false);
        await using var b = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--Forwarding:MaxWatchedPeers", "2"]);
        using var k1 = HostKey.Generate();
        using var k2 = HostKey.Generate();
        using var k3 = HostKey.Generate();
        foreach (var key in new[] { k1, k2, k3 })
        {
            await direct.RegisterAsync(Record(key, 1, DaemonInstance.NewAddress())).WithTimeout();
        }

        var records = b.Services.GetRequiredService<WatchedRecords>();
        await b.Api.GetIpAsync(k1.Guid.ToString()).WithTimeout();
        await b.Api.GetIpAsync(k2.Guid.ToString()).WithTimeout();
        // k1 is used again, so k2 is now the least recently looked up.
        await b.Api.GetIpAsync(k1.Guid.ToString()).WithTimeout();
        await b.Api.GetIpAsync(k3.Guid.ToString()).WithTimeout();

        Assert.Equal(2, records.Count);
        Assert.True(records.IsWatched(k1.Guid));
        Assert.False(records.IsWatched(k2.Guid));
        Assert.True(records.IsWatched(k3.Guid));
        await WatchesOpenAsync(gns, 2);

        // k2's cached record went with its watch: its next get_ip asks the GNS, so it is not stale either.
        var moved = DaemonInstance.NewAddress();
        await direct.RegisterAsync(Record(k2, 2, moved)).WithTimeout();
        Assert.True((await b.Api.GetIpAsync(k2.Guid.ToString()).WithTimeout())!.HasAddress(moved));
        Assert.True(records.IsWatched(k2.Guid));
        Assert.False(records.IsWatched(k1.Guid));
    }

    [Fact]
    public async Task After_a_gns_restart_the_reopened_watch_revalidates_what_get_ip_answers()
    {
        var udpPort = Ports.FreeUdp();
        var grpcPort = Ports.FreeTcp();
        var gns = await GnsServerInstance.StartAsync(udpPort, grpcPort);
        try
        {
            await using var b = await DaemonInstance.StartAsync(gns.CreateClient());
            using var key = HostKey.Generate();
            var guid = key.Guid.ToString();
            var first = DaemonInstance.NewAddress();
            var second = DaemonInstance.NewAddress();
            await using (var direct = gns.CreateClient(cache: false))
            {
                await direct.RegisterAsync(Record(key, 1, first)).WithTimeout();
                Assert.True((await b.Api.GetIpAsync(guid).WithTimeout())!.HasAddress(first));
                await WatchesOpenAsync(gns, 1);
                await direct.RegisterAsync(Record(key, 2, second)).WithTimeout();
                await TestTimeout.Eventually(async () => (await b.Api.GetIpAsync(guid))?.HasAddress(second) == true, "B follows version 2");
            }

            // The GNS restarts with an empty store, and the peer registers again, with a lower version
            // than B has cached: a push of it alone cannot replace version 2 in B's cache.
            await gns.DisposeAsync();
            gns = await GnsServerInstance.StartAsync(udpPort, grpcPort);
            var third = DaemonInstance.NewAddress();
            await using (var direct = gns.CreateClient(cache: false))
            {
                await direct.RegisterAsync(Record(key, 1, third)).WithTimeout();
            }

            await TestTimeout.Eventually(async () => (await b.Api.GetIpAsync(guid))?.HasAddress(third) == true,
                "get_ip at B answers what the restarted GNS holds");
            var hosts = Path.Combine(b.StateDir, "state", "hosts");
            await TestTimeout.Eventually(() => File.ReadAllText(hosts).Contains($"{third} {guid}.guid", StringComparison.Ordinal),
                "B's hosts file follows");
            Assert.DoesNotContain($"{second} {guid}.guid", File.ReadAllText(hosts), StringComparison.Ordinal);
        }
        finally
        {
            await gns.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_new_connection_starts_from_the_watched_record_once_its_watch_delivered_it()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var direct = gns.CreateClient(cache: false);
        await using var b = await DaemonInstance.StartAsync(gns.CreateClient());
        using var key = HostKey.Generate();
        var first = DaemonInstance.NewAddress();
        await direct.RegisterAsync(Record(key, 1, first)).WithTimeout();
        var locator = b.Services.GetRequiredService<GnsPeerLocator>();
        var records = b.Services.GetRequiredService<WatchedRecords>();

        // Not watched yet: asked of the GNS, and watched from now on.
        var located = await locator.LocateForConnectAsync(key.Guid, CancellationToken.None).AsTask().WithTimeout();
        Assert.False(located.FromCache);
        Assert.Equal(new IPEndPoint(first, 7391), Assert.Single(located.Endpoints));
        await WatchesOpenAsync(gns, 1);
        await TestTimeout.Eventually(() => records.IsCurrent(key.Guid), "the watch delivered the record");

        // Kept current by the watch: the cached record, no GNS round trip.
        located = await locator.LocateForConnectAsync(key.Guid, CancellationToken.None).AsTask().WithTimeout();
        Assert.True(located.FromCache);
        Assert.Equal(new IPEndPoint(first, 7391), Assert.Single(located.Endpoints));

        // The peer moves: the push replaces the cached record, which stays current.
        var second = DaemonInstance.NewAddress();
        await direct.RegisterAsync(Record(key, 2, second)).WithTimeout();
        await TestTimeout.Eventually(async () => await locator.LocateForConnectAsync(key.Guid, CancellationToken.None) is { FromCache: true } l
                                                 && l.Endpoints.SequenceEqual([new IPEndPoint(second, 7391)]),
            "the cached record follows the push");

        // A locate after a lost path (LocateAsync) still asks the GNS past the cache.
        Assert.Equal(new IPEndPoint(second, 7391), Assert.Single(await locator.LocateAsync(key.Guid, CancellationToken.None).AsTask().WithTimeout()));
    }

    private static GnsRecord Record(HostKey key, ulong version, IPAddress address)
        => GnsRecord.Create(key, version, [new Locator(address, 7391)], 60, null);

    private static Task WatchesOpenAsync(GnsServerInstance gns, int count)
    {
        var hub = gns.App.Services.GetRequiredService<WatchHub>();
        return TestTimeout.Eventually(() => hub.Count == count, $"{count} watch(es) open at the GNS");
    }
}
