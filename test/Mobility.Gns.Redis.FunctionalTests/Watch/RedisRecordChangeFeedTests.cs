using System.Threading.Channels;

namespace Mobility.Gns.Redis.FunctionalTests.Watch;

public abstract class RedisRecordChangeFeedTestsBase(string configuration, bool expectSharded) : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _disposables = [];
    private readonly HostKey _key = HostKey.Generate();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var disposable in Enumerable.Reverse(_disposables))
        {
            await disposable.DisposeAsync().AsTask().WithTimeout();
        }

        _key.Dispose();
    }

    private async Task<RedisRecordChangeFeed> StartFeedAsync(RedisGnsOptions options)
    {
        var redis = await Infrastructure.Redis.ConnectAsync(configuration);
        _disposables.Add(redis);
        var feed = new RedisRecordChangeFeed(redis, options, NullLogger<RedisRecordChangeFeed>.Instance);
        _disposables.Add(feed);
        await feed.StartAsync().WithTimeout();
        Assert.Equal(expectSharded, feed.Sharded);
        return feed;
    }

    [Fact]
    public async Task A_change_published_by_one_process_reaches_subscribers_of_another_and_the_publisher_once()
    {
        var options = Infrastructure.Redis.Options(configuration);
        var a = await StartFeedAsync(options);
        var b = await StartFeedAsync(options);
        var atA = Channel.CreateUnbounded<RecordChange>();
        var atB = Channel.CreateUnbounded<RecordChange>();
        using var subA = a.Subscribe(c => atA.Writer.TryWrite(c));
        using var subB = b.Subscribe(c => atB.Writer.TryWrite(c));
        var record = Record(_key, 3, "pushed", "192.0.2.3");

        await a.PublishAsync(new RecordChange(_key.Guid, record, 3)).AsTask().WithTimeout();
        var received = await atB.Reader.ReadAsync().AsTask().WithTimeout();
        Assert.Equal(_key.Guid, received.Guid);
        Assert.Equal(3UL, received.Version);
        Assert.Equal(record.Encoded.ToArray(), received.Record!.Encoded.ToArray());

        // B answers on the same GUID. Messages are handled concurrently (every consumer keeps the highest
        // version), so A's own change (delivered locally) and B's removal may come in either order.
        await b.PublishAsync(new RecordChange(_key.Guid, null, 4)).AsTask().WithTimeout();
        var first = await atA.Reader.ReadAsync().AsTask().WithTimeout();
        var second = await atA.Reader.ReadAsync().AsTask().WithTimeout();
        var removal = first.Version == 4 ? first : second;
        Assert.Equal([3UL, 4UL], new[] { first.Version, second.Version }.Order());
        Assert.True(removal.Removed);
        // A's own message, echoed back by Redis, is skipped: nothing else arrives. Redis delivers a channel's
        // messages to a subscriber in publish order, so a sentinel published by B on the same GUID's channel
        // after everything else is the next thing A hears; an echo of version 3 would have come before it.
        await b.PublishAsync(new RecordChange(_key.Guid, null, 9)).AsTask().WithTimeout();
        Assert.Equal(9UL, (await atA.Reader.ReadAsync().AsTask().WithTimeout()).Version);
        Assert.False(atA.Reader.TryRead(out _));
    }

    [Fact]
    public async Task Feeds_with_different_key_prefixes_do_not_hear_each_other()
    {
        var a = await StartFeedAsync(Infrastructure.Redis.Options(configuration));
        var optionsB = Infrastructure.Redis.Options(configuration);
        var b = await StartFeedAsync(optionsB);
        // A second process under B's prefix: it sends the sentinel.
        var sameAsB = await StartFeedAsync(optionsB);
        var atB = Channel.CreateUnbounded<RecordChange>();
        using var subB = b.Subscribe(c => atB.Writer.TryWrite(c));

        await a.PublishAsync(new RecordChange(_key.Guid, null, 1)).AsTask().WithTimeout();
        await b.PublishAsync(new RecordChange(_key.Guid, null, 2)).AsTask().WithTimeout();

        // B's own change is delivered to B locally; A's, under another prefix, never. The sentinel goes out
        // after A's change on the channel of the same GUID (so through the same server and subscription):
        // had B heard A's change, it would have come before the sentinel.
        Assert.Equal(2UL, (await atB.Reader.ReadAsync().AsTask().WithTimeout()).Version);
        await sameAsB.PublishAsync(new RecordChange(_key.Guid, null, 3)).AsTask().WithTimeout();
        Assert.Equal(3UL, (await atB.Reader.ReadAsync().AsTask().WithTimeout()).Version);
        Assert.False(atB.Reader.TryRead(out _));
    }
}

[Collection(RedisServerCollection.Name)]
public sealed class RedisRecordChangeFeedTests(RedisServerFixture redis) : RedisRecordChangeFeedTestsBase(redis.Configuration, expectSharded: false);

[Collection(RedisClusterCollection.Name)]
public sealed class RedisClusterRecordChangeFeedTests(RedisClusterFixture cluster) : RedisRecordChangeFeedTestsBase(cluster.Configuration, expectSharded: true);
