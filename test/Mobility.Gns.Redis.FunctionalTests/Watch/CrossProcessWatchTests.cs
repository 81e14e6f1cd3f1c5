using Microsoft.Extensions.Options;
using Mobility.Gns.Service;

namespace Mobility.Gns.Redis.FunctionalTests.Watch;

/// <summary>Two GNS cores (service + watch hub) sharing a Redis store and feed: a watcher of one is pushed the updates accepted by the other.</summary>
public abstract class CrossProcessWatchTestsBase(string configuration) : RedisScenarioTestsBase(configuration)
{
    private async Task<(GnsService Service, WatchHub Hub)> StartGnsAsync(RedisGnsOptions options)
    {
        var redis = await ConnectAsync();
        var store = await Infrastructure.Redis.OpenAsync(redis, options);
        var feed = Owned(new RedisRecordChangeFeed(redis, options, NullLogger<RedisRecordChangeFeed>.Instance));
        await feed.StartAsync().WithTimeout();
        var gnsOptions = Options.Create(new GnsServerOptions());
        var service = new GnsService(store, feed, gnsOptions, TimeProvider.System, NullLogger<GnsService>.Instance);
        return (service, new WatchHub(feed, service, gnsOptions, NullLogger<WatchHub>.Instance));
    }

    [Fact]
    public async Task A_watcher_on_one_GNS_process_is_pushed_updates_and_removals_accepted_by_another()
    {
        var options = Infrastructure.Redis.Options(Configuration);
        var (serviceA, hubA) = await StartGnsAsync(options);
        var (_, hubB) = await StartGnsAsync(options);
        using var key = HostKey.Generate();
        Assert.True((await serviceA.PutAsync(Record(key, 1, "mover", "192.0.2.1"), false).WithTimeout()).IsSuccess);

        var watch = await hubB.SubscribeAsync([key.Guid]).WithTimeout();
        Assert.True(watch.IsSuccess);
        using var subscription = watch.Value;
        await using var changes = subscription.ReadAllAsync().GetAsyncEnumerator();

        Assert.True(await changes.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(1UL, changes.Current.Version);

        var moved = Record(key, 2, "mover", "198.51.100.2");
        Assert.True((await serviceA.PutAsync(moved, false).WithTimeout()).IsSuccess);
        Assert.True(await changes.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(moved.Encoded.ToArray(), changes.Current.Record!.Encoded.ToArray());

        var removal = GnsRemoval.Create(key, 3);
        Assert.True((await serviceA.RemoveAsync(removal).WithTimeout()).IsSuccess);
        Assert.True(await changes.MoveNextAsync().AsTask().WithTimeout());
        Assert.True(changes.Current.Removed);
        Assert.Equal(3UL, changes.Current.Version);
        hubA.Dispose();
        hubB.Dispose();
    }
}

[Collection(RedisServerCollection.Name)]
public sealed class CrossProcessWatchTests(RedisServerFixture redis) : CrossProcessWatchTestsBase(redis.Configuration);

[Collection(RedisClusterCollection.Name)]
public sealed class ClusterCrossProcessWatchTests(RedisClusterFixture cluster) : CrossProcessWatchTestsBase(cluster.Configuration);
