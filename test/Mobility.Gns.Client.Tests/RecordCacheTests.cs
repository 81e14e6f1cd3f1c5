using Microsoft.Extensions.Time.Testing;
using Mobility.Protocol.Identity;

namespace Mobility.Gns.Client.Tests;

public sealed class RecordCacheTests
{
    [Fact]
    public void Full_cache_evicts_the_entry_closest_to_expiry()
    {
        var time = new FakeTimeProvider();
        var cache = new RecordCache(time, maxEntries: 2, TimeSpan.FromHours(1));
        using var a = HostKey.Generate();
        using var b = HostKey.Generate();
        using var c = HostKey.Generate();

        cache.Set(TestRecords.Create(a, ttl: 10));
        cache.Set(TestRecords.Create(b, ttl: 100));
        cache.Set(TestRecords.Create(c, ttl: 50));

        Assert.Equal(2, cache.Count);
        Assert.False(cache.TryGet(a.Guid, out _));
        Assert.True(cache.TryGet(b.Guid, out _));
        Assert.True(cache.TryGet(c.Guid, out _));
    }

    [Fact]
    public void Older_version_does_not_replace_a_fresh_newer_one()
    {
        var cache = new RecordCache(new FakeTimeProvider(), 16, TimeSpan.FromHours(1));
        using var key = HostKey.Generate();

        cache.Set(TestRecords.Create(key, version: 5));
        cache.Set(TestRecords.Create(key, version: 4));

        Assert.True(cache.TryGet(key.Guid, out var record));
        Assert.Equal(5UL, record!.Version);
    }

    [Fact]
    public void Huge_ttl_is_capped()
    {
        var time = new FakeTimeProvider();
        var cache = new RecordCache(time, 16, TimeSpan.FromMinutes(5));
        using var key = HostKey.Generate();

        cache.Set(TestRecords.Create(key, ttl: uint.MaxValue));
        time.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));

        Assert.False(cache.TryGet(key.Guid, out _));
    }

    [Fact]
    public void Removal_up_to_a_version_keeps_a_newer_record()
    {
        var cache = new RecordCache(new FakeTimeProvider(), 16, TimeSpan.FromHours(1));
        using var key = HostKey.Generate();
        cache.Set(TestRecords.Create(key, version: 9));

        cache.RemoveUpTo(key.Guid, 8);
        Assert.True(cache.TryGet(key.Guid, out _));

        cache.RemoveUpTo(key.Guid, 9);
        Assert.False(cache.TryGet(key.Guid, out _));
    }

    [Fact]
    public void Renamed_record_is_no_longer_found_under_its_old_name()
    {
        var cache = new RecordCache(new FakeTimeProvider(), 16, TimeSpan.FromHours(1));
        using var key = HostKey.Generate();
        cache.Set(TestRecords.Create(key, version: 1, name: "old"));

        cache.Set(TestRecords.Create(key, version: 2, name: "new"));

        Assert.False(cache.TryGetByName("old", out _));
        Assert.True(cache.TryGetByName("new", out var record));
        Assert.Equal(2UL, record!.Version);
    }
}
