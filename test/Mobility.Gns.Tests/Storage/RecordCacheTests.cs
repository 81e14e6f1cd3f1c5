namespace Mobility.Gns.Tests.Storage;

public sealed class RecordCacheTests
{
    private static HostGuid Guid(byte n)
    {
        var bytes = new byte[HostGuid.Size];
        bytes[^1] = n;
        return HostGuid.FromBytes(bytes);
    }

    private static KeyValuePair<HostGuid, CachedEntry> Committed(HostGuid guid, ulong version) => new(guid, new CachedEntry(version, null));

    [Fact]
    public void Fill_is_kept_when_no_commit_touched_the_guid_since_the_read_began()
    {
        var cache = new RecordCache(4);
        var guid = Guid(1);
        var stamp = cache.Stamp(guid);

        cache.TryFill(guid, new CachedEntry(3, null), stamp);

        Assert.True(cache.TryGet(guid, out var entry));
        Assert.Equal(3UL, entry.Version);
    }

    [Fact]
    public void Fill_read_before_a_commit_is_refused_even_after_the_committed_entry_was_evicted()
    {
        var cache = new RecordCache(1);
        var guid = Guid(1);
        var stamp = cache.Stamp(guid);

        // The reader is slow: meanwhile version 2 is committed and then pushed out by another GUID.
        cache.Apply([Committed(guid, 2)]);
        cache.TryFill(Guid(2), new CachedEntry(1, null), cache.Stamp(Guid(2)));
        Assert.False(cache.TryGet(guid, out _));

        cache.TryFill(guid, new CachedEntry(1, null), stamp);

        Assert.False(cache.TryGet(guid, out _));
    }

    [Fact]
    public void Commit_replaces_a_filled_entry()
    {
        var cache = new RecordCache(4);
        var guid = Guid(1);
        cache.TryFill(guid, new CachedEntry(1, null), cache.Stamp(guid));

        cache.Apply([Committed(guid, 2)]);

        Assert.True(cache.TryGet(guid, out var entry));
        Assert.Equal(2UL, entry.Version);
    }

    [Fact]
    public void Full_cache_evicts_an_unreferenced_entry_before_a_recently_read_one()
    {
        var cache = new RecordCache(2);
        cache.Apply([Committed(Guid(1), 1), Committed(Guid(2), 1)]);
        Assert.True(cache.TryGet(Guid(1), out _));

        cache.Apply([Committed(Guid(3), 1)]);

        Assert.Equal(2, cache.Count);
        Assert.True(cache.TryGet(Guid(1), out _));
        Assert.False(cache.TryGet(Guid(2), out _));
        Assert.True(cache.TryGet(Guid(3), out _));
    }

    [Fact]
    public void Cache_never_holds_more_than_its_capacity()
    {
        var cache = new RecordCache(8);

        for (byte i = 0; i < 100; i++)
        {
            cache.Apply([Committed(Guid(i), 1)]);
            cache.TryGet(Guid((byte)(i / 2)), out _);
        }

        Assert.Equal(8, cache.Count);
    }

    [Fact]
    public void Zero_capacity_cache_holds_nothing()
    {
        var cache = new RecordCache(0);
        var guid = Guid(1);

        cache.Apply([Committed(guid, 1)]);
        cache.TryFill(guid, new CachedEntry(1, null), cache.Stamp(guid));

        Assert.False(cache.TryGet(guid, out _));
        Assert.Equal(0, cache.Count);
    }
}
