using Microsoft.Extensions.Time.Testing;
using Mobility.Net.Caching;

namespace Mobility.Net.Tests;

public sealed class ExpiringCacheTests
{
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public void An_entry_is_returned_until_its_lifetime_passes()
    {
        var cache = new ExpiringCache<string, int>(10, _time);
        cache.Set("a", 1, TimeSpan.FromSeconds(5));
        _time.Advance(TimeSpan.FromSeconds(4.9));
        Assert.True(cache.TryGet("a", out var value));
        Assert.Equal(1, value);
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.False(cache.TryGet("a", out _));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void A_lifetime_of_zero_or_less_stores_nothing()
    {
        var cache = new ExpiringCache<string, int>(10, _time);
        cache.Set("a", 1, TimeSpan.Zero);
        cache.Set("b", 1, TimeSpan.FromSeconds(-1));
        Assert.Equal(0, cache.Count);
        Assert.False(cache.TryGet("a", out _));
    }

    [Fact]
    public void A_full_table_drops_expired_entries_first_then_the_one_that_expires_first()
    {
        var cache = new ExpiringCache<int, string>(3, _time);
        cache.Set(1, "short", TimeSpan.FromSeconds(1));
        cache.Set(2, "long", TimeSpan.FromSeconds(100));
        cache.Set(3, "middle", TimeSpan.FromSeconds(50));
        _time.Advance(TimeSpan.FromSeconds(2));

        cache.Set(4, "new", TimeSpan.FromSeconds(10));
        Assert.Equal(3, cache.Count);
        Assert.False(cache.TryGet(1, out _));

        cache.Set(5, "newer", TimeSpan.FromSeconds(60));
        Assert.Equal(3, cache.Count);
        Assert.False(cache.TryGet(4, out _));
        Assert.True(cache.TryGet(2, out _));
        Assert.True(cache.TryGet(3, out _));
        Assert.True(cache.TryGet(5, out _));
    }

    [Fact]
    public void Replacing_a_key_in_a_full_table_evicts_nothing()
    {
        var cache = new ExpiringCache<int, string>(2, _time);
        cache.Set(1, "a", TimeSpan.FromSeconds(1));
        cache.Set(2, "b", TimeSpan.FromSeconds(2));
        cache.Set(2, "c", TimeSpan.FromSeconds(3));
        Assert.True(cache.TryGet(1, out _));
        Assert.True(cache.TryGet(2, out var value));
        Assert.Equal("c", value);
    }

    [Fact]
    public void A_flood_of_keys_never_grows_the_table_past_its_capacity()
    {
        var cache = new ExpiringCache<int, int>(100, _time);
        for (var i = 0; i < 10_000; i++)
        {
            cache.Set(i, i, TimeSpan.FromHours(1));
        }

        Assert.Equal(100, cache.Count);
    }

    [Fact]
    public void Remove_and_RemoveWhere_drop_entries()
    {
        var cache = new ExpiringCache<(string Host, int Port), bool>(10, _time);
        cache.Set(("a", 1), true, TimeSpan.FromSeconds(5));
        cache.Set(("a", 2), true, TimeSpan.FromSeconds(5));
        cache.Set(("b", 1), true, TimeSpan.FromSeconds(5));
        Assert.Equal(2, cache.RemoveWhere(k => k.Host == "a"));
        Assert.True(cache.Remove(("b", 1)));
        Assert.False(cache.Remove(("b", 1)));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void A_capacity_below_one_is_refused()
        => Assert.Throws<ArgumentOutOfRangeException>(() => new ExpiringCache<int, int>(0, _time));
}
