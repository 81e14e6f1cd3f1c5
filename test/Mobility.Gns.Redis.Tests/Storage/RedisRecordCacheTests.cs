using System.Globalization;
using Microsoft.Extensions.Time.Testing;
using Mobility.Gns.Redis.Storage;
using Mobility.Gns.Tests.Storage;
using Mobility.Protocol.Identity;

namespace Mobility.Gns.Redis.Tests.Storage;

/// <summary>The read cache alone: bounds, races with changes, going offline (no sockets).</summary>
public sealed class RedisRecordCacheTests : IDisposable
{
    private readonly TestKeys _keys = new();

    public void Dispose()
    {
        _keys.Dispose();
    }

    private HostKey NewKey() => _keys.New();

    private static RedisRecordCache LiveCache(int capacity)
    {
        var cache = new RedisRecordCache(capacity, TimeSpan.FromMinutes(1), TimeProvider.System);
        cache.GoLive();
        return cache;
    }

    [Fact]
    public void The_cache_never_holds_more_than_its_capacity()
    {
        var cache = LiveCache(4);
        for (var i = 0; i < 20; i++)
        {
            var key = NewKey();
            cache.TryFill(key.Guid, true, 1, Record(key, 1, "n" + i.ToString(CultureInfo.InvariantCulture), "192.0.2.1"), cache.Stamp(key.Guid),
                "n" + i.ToString(CultureInfo.InvariantCulture));
            Assert.True(cache.Count <= 4);
            Assert.True(cache.NameCount <= 4);
        }
    }

    [Fact]
    public void A_fill_that_raced_a_change_is_refused_even_when_the_GUID_was_not_cached()
    {
        var cache = LiveCache(16);
        var key = NewKey();
        var stamp = cache.Stamp(key.Guid);
        // The change arrives while the reader is still waiting for Redis; the GUID is not cached, so it is not added.
        cache.Apply(key.Guid, 2, Record(key, 2, null, "192.0.2.2"));
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), stamp);

        Assert.False(cache.TryGet(key.Guid, out _));
    }

    [Fact]
    public void A_change_replaces_an_older_cached_state_and_an_older_change_does_not()
    {
        var cache = LiveCache(16);
        var key = NewKey();
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), cache.Stamp(key.Guid));
        cache.Apply(key.Guid, 3, null);
        cache.Apply(key.Guid, 2, Record(key, 2, null, "192.0.2.2"));

        Assert.True(cache.TryGet(key.Guid, out var state));
        Assert.Equal(3UL, state.Version);
        Assert.Null(state.Record);
    }

    [Fact]
    public void Going_offline_drops_everything_and_refuses_fills_stamped_before_or_while_offline()
    {
        var cache = LiveCache(16);
        var key = NewKey();
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), cache.Stamp(key.Guid));
        var before = cache.Stamp(key.Guid);

        cache.GoOffline();
        Assert.Equal(0, cache.Count);
        Assert.False(cache.TryGet(key.Guid, out _));
        var during = cache.Stamp(key.Guid);
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), during);
        cache.GoLive();
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), before);
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), during);

        Assert.Equal(0, cache.Count);
        Assert.Equal(1, cache.Invalidations);
    }

    [Fact]
    public void An_entry_older_than_the_maximum_age_is_not_served()
    {
        var time = new FakeTimeProvider();
        var cache = new RedisRecordCache(16, TimeSpan.FromSeconds(60), time);
        cache.GoLive();
        var key = NewKey();
        cache.TryFill(key.Guid, true, 1, Record(key, 1, null, "192.0.2.1"), cache.Stamp(key.Guid));
        Assert.True(cache.TryGet(key.Guid, out _));

        time.Advance(TimeSpan.FromSeconds(61));
        Assert.False(cache.TryGet(key.Guid, out _));
    }
}
