using Mobility.Gns.Watch;
using Mobility.Protocol.Gns;

namespace Mobility.Gns.Tests.Watch;

public sealed class WatchHubTests : IAsyncLifetime
{
    private readonly GnsFixture _gns = new(configure: o =>
    {
        o.MaxWatchGuids = 4;
        o.MaxWatches = 3;
    });

    private readonly HostKey _key = HostKey.Generate();
    private readonly HostKey _other = HostKey.Generate();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _gns.DisposeAsync();
        _key.Dispose();
        _other.Dispose();
    }

    private async Task<WatchSubscription> Subscribe(params HostGuid[] guids)
    {
        var result = await _gns.Hub.SubscribeAsync(guids).WithTimeout();
        Assert.True(result.IsSuccess, result.ToString());
        return result.Value;
    }

    private static async Task<RecordChange> Next(IAsyncEnumerator<RecordChange> events)
    {
        Assert.True(await events.MoveNextAsync().WithTimeout());
        return events.Current;
    }

    [Fact]
    public async Task Subscriber_gets_the_current_record_then_every_later_change()
    {
        await _gns.Service.PutAsync(Records.Make(_key, 1), false).WithTimeout();
        using var watch = await Subscribe(_key.Guid);
        await using var events = watch.ReadAllAsync().GetAsyncEnumerator();

        var first = await Next(events);
        Assert.Equal(1ul, first.Record!.Version);

        await _gns.Service.PutAsync(Records.Make(_key, 2), false).WithTimeout();
        Assert.Equal(2ul, (await Next(events)).Record!.Version);

        await _gns.Service.RemoveAsync(GnsRemoval.Create(_key, 3)).WithTimeout();
        var removed = await Next(events);
        Assert.True(removed.Removed);
        Assert.Equal(3ul, removed.Version);
    }

    [Fact]
    public async Task Subscriber_to_an_unknown_guid_gets_an_absent_event_first()
    {
        using var watch = await Subscribe(_other.Guid);
        Assert.True(watch.TryTake(out var change));
        Assert.True(change.Removed);
        Assert.Equal(0ul, change.Version);
        Assert.Equal(_other.Guid, change.Guid);
    }

    [Fact]
    public async Task Slow_watcher_holds_one_state_per_guid_and_ends_with_the_latest()
    {
        using var watch = await Subscribe(_key.Guid, _other.Guid);
        for (ulong v = 1; v <= 500; v++)
        {
            Assert.True((await _gns.Service.PutAsync(Records.Make(_key, v), false).WithTimeout()).IsSuccess);
            Assert.True((await _gns.Service.PutAsync(Records.Make(_other, v), false).WithTimeout()).IsSuccess);
            Assert.InRange(watch.PendingCount, 0, 2);
        }

        var seen = new List<RecordChange>();
        while (watch.TryTake(out var change))
        {
            seen.Add(change);
        }

        Assert.Equal(2, seen.Count);
        Assert.All(seen, c => Assert.Equal(500ul, c.Version));
    }

    [Fact]
    public async Task Older_state_arriving_after_a_newer_one_was_delivered_is_not_delivered()
    {
        using var watch = await Subscribe(_key.Guid);
        Assert.True(watch.TryTake(out _));
        await _gns.Feed.PublishAsync(new RecordChange(_key.Guid, Records.Make(_key, 5), 5)).WithTimeout();
        Assert.True(watch.TryTake(out var five));
        Assert.Equal(5ul, five.Version);

        // For example a delayed message of a shared feed.
        await _gns.Feed.PublishAsync(new RecordChange(_key.Guid, Records.Make(_key, 4), 4)).WithTimeout();
        await _gns.Feed.PublishAsync(new RecordChange(_key.Guid, Records.Make(_key, 5), 5)).WithTimeout();
        Assert.False(watch.TryTake(out _));
    }

    [Fact]
    public async Task Changes_of_unwatched_guids_are_not_delivered()
    {
        using var watch = await Subscribe(_key.Guid);
        Assert.True(watch.TryTake(out _));
        await _gns.Service.PutAsync(Records.Make(_other, 1), false).WithTimeout();
        Assert.False(watch.TryTake(out _));
    }

    [Fact]
    public async Task Watch_naming_more_guids_than_allowed_is_refused()
    {
        var guids = Enumerable.Range(0, 5).Select(i => HostGuid.FromPublicKey(Enumerable.Repeat((byte)i, 32).ToArray()));
        var result = await _gns.Hub.SubscribeAsync(guids).WithTimeout();
        Assert.Equal(GnsErrorCode.TooLarge, result.Error);
    }

    [Fact]
    public async Task Watches_beyond_the_server_limit_are_refused_until_one_ends()
    {
        var open = new List<WatchSubscription>();
        for (var i = 0; i < 3; i++)
        {
            open.Add(await Subscribe(_key.Guid));
        }

        Assert.Equal(GnsErrorCode.RateLimited, (await _gns.Hub.SubscribeAsync([_key.Guid]).WithTimeout()).Error);
        open[0].Dispose();
        Assert.Equal(2, _gns.Hub.Count);
        using var again = await Subscribe(_key.Guid);
        open.ForEach(w => w.Dispose());
    }

    [Fact]
    public async Task Disposed_watch_ends_its_reader_and_gets_no_more_changes()
    {
        var watch = await Subscribe(_key.Guid);
        var reader = Task.Run(async () =>
        {
            var count = 0;
            await foreach (var _ in watch.ReadAllAsync())
            {
                count++;
            }

            return count;
        });
        watch.Dispose();
        Assert.InRange(await reader.WithTimeout(), 0, 1);
        await _gns.Service.PutAsync(Records.Make(_key, 1), false).WithTimeout();
        Assert.Equal(0, _gns.Hub.Count);
    }

    [Fact]
    public async Task Concurrent_writers_and_a_concurrent_reader_see_versions_only_rise_and_end_at_the_last()
    {
        using var watch = await Subscribe(_key.Guid);
        const ulong last = 300;
        var records = Enumerable.Range(1, (int)last).Select(v => Records.Make(_key, (ulong)v)).ToArray();
        using var done = new CancellationTokenSource();
        var reader = Task.Run(async () =>
        {
            var seen = new List<ulong>();
            await foreach (var change in watch.ReadAllAsync(done.Token))
            {
                seen.Add(change.Version);
                if (change.Version == last + 1)
                {
                    break;
                }
            }

            return seen;
        });

        // Four writers race; the store keeps only rising versions, so some puts are refused as stale.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (var i = w; i < records.Length; i += 4)
            {
                await _gns.Service.PutAsync(records[i], false);
            }
        }))).WithTimeout();
        await _gns.Service.PutAsync(Records.Make(_key, last + 1), false).WithTimeout();

        // Whatever the interleaving, the watcher never goes back in time and ends with the final state.
        var seen = await reader.WithTimeout();
        Assert.Equal(seen.Order(), seen);
        Assert.Equal(seen.Distinct().Count(), seen.Count);
        Assert.Equal(last + 1, seen[^1]);
    }

    [Fact]
    public async Task Reader_waiting_for_a_change_wakes_when_it_is_stored()
    {
        using var watch = await Subscribe(_key.Guid);
        await using var events = watch.ReadAllAsync().GetAsyncEnumerator();
        Assert.True((await Next(events)).Removed);
        var pending = events.MoveNextAsync().AsTask();
        Assert.False(pending.IsCompleted);
        await _gns.Service.PutAsync(Records.Make(_key, 1), false).WithTimeout();
        Assert.True(await pending.WithTimeout());
        Assert.Equal(1ul, events.Current.Version);
    }

    [Fact]
    public async Task Close_ends_every_open_watch_and_refuses_new_ones()
    {
        using var watch = await Subscribe(_key.Guid);
        using var both = await Subscribe(_key.Guid, _other.Guid);
        await using var events = watch.ReadAllAsync().GetAsyncEnumerator();
        Assert.True((await Next(events)).Removed);
        var pending = events.MoveNextAsync().AsTask();

        _gns.Hub.Close();

        Assert.False(await pending.WithTimeout());
        var drained = await both.ReadAllAsync().ToListAsync().AsTask().WithTimeout();

        Assert.Equal(2, drained.Count);
        Assert.Equal(0, _gns.Hub.Count);
        var refused = await _gns.Hub.SubscribeAsync([_key.Guid]).WithTimeout();
        Assert.Equal(GnsErrorCode.Unavailable, refused.Error);
        Assert.Equal(0, _gns.Hub.Count);
    }
}
