using System.Collections.Concurrent;
using System.Net;

namespace Mobility.Gns.Tests.Storage;

/// <summary>
/// The behaviour every <see cref="IGnsStore"/> must have. Each store runs the whole set through a
/// subclass, so the in-memory and SQLite stores cannot drift apart.
/// </summary>
public abstract class GnsStoreContractTests : StoreContractTestsBase
{
    private const ulong HighBit = 1UL << 63;

    private async Task<StoreResult> Put(GnsRecord record, bool requireExisting = false)
        => await Store.PutAsync(record, requireExisting).WithTimeout();

    [Fact]
    public async Task New_record_is_stored_and_found_by_guid_name_address_and_version()
    {
        var key = NewKey();
        var record = Record(key, 1, "alice", "192.0.2.1");

        Assert.Equal(new StoreResult(StoreStatus.Stored, 1), await Put(record));

        var byGuid = await Store.GetAsync(key.Guid).WithTimeout();
        Assert.NotNull(byGuid);
        Assert.Equal(record.Encoded.ToArray(), byGuid.Encoded.ToArray());
        Assert.Equal(key.Guid, (await Store.GetByNameAsync("alice").WithTimeout())?.Guid);
        Assert.Equal([key.Guid], (await Store.ReverseAsync(IPAddress.Parse("192.0.2.1"), 10).WithTimeout()).Guids);
        Assert.Equal(1UL, await Store.GetVersionAsync(key.Guid).WithTimeout());
    }

    [Fact]
    public async Task Unknown_guid_name_and_address_find_nothing()
    {
        var key = NewKey();

        Assert.Null(await Store.GetAsync(key.Guid).WithTimeout());
        Assert.Null(await Store.GetVersionAsync(key.Guid).WithTimeout());
        Assert.Null(await Store.GetByNameAsync("nobody").WithTimeout());
        Assert.Null(await Store.GetByNameAsync("not a valid name!").WithTimeout());
        var reverse = await Store.ReverseAsync(IPAddress.Parse("198.51.100.7"), 10).WithTimeout();
        Assert.Empty(reverse.Guids);
        Assert.False(reverse.Truncated);
    }

    [Fact]
    public async Task Higher_version_replaces_the_stored_record()
    {
        var key = NewKey();
        await Put(Record(key, 1, null, "192.0.2.1"));

        var result = await Put(Record(key, 7, null, "192.0.2.2"));

        Assert.Equal(new StoreResult(StoreStatus.Stored, 7), result);
        Assert.Equal(7UL, (await Store.GetAsync(key.Guid).WithTimeout())?.Version);
        Assert.Equal(7UL, await Store.GetVersionAsync(key.Guid).WithTimeout());
    }

    [Theory]
    [InlineData(5UL)]
    [InlineData(4UL)]
    [InlineData(0UL)]
    public async Task Equal_or_lower_version_is_stale_and_changes_nothing(ulong replayed)
    {
        var key = NewKey();
        var current = Record(key, 5, "alice", "192.0.2.1");
        await Put(current);

        var result = await Put(Record(key, replayed, "bob", "192.0.2.99"));

        Assert.Equal(new StoreResult(StoreStatus.Stale, 5), result);
        Assert.Equal(current.Encoded.ToArray(), (await Store.GetAsync(key.Guid).WithTimeout())!.Encoded.ToArray());
        Assert.Null(await Store.GetByNameAsync("bob").WithTimeout());
        Assert.Equal(key.Guid, (await Store.GetByNameAsync("alice").WithTimeout())?.Guid);
        Assert.Empty((await Store.ReverseAsync(IPAddress.Parse("192.0.2.99"), 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Update_requiring_an_existing_record_is_NotFound_for_an_unknown_guid_and_stores_nothing()
    {
        var key = NewKey();

        var result = await Put(Record(key, 1, "alice", "192.0.2.1"), requireExisting: true);

        Assert.Equal(new StoreResult(StoreStatus.NotFound, 0), result);
        Assert.Null(await Store.GetVersionAsync(key.Guid).WithTimeout());
        Assert.Null(await Store.GetByNameAsync("alice").WithTimeout());
    }

    [Fact]
    public async Task Update_requiring_an_existing_record_is_stored_when_a_live_record_exists()
    {
        var key = NewKey();
        await Put(Record(key, 1));

        Assert.Equal(new StoreResult(StoreStatus.Stored, 2), await Put(Record(key, 2), requireExisting: true));
    }

    [Fact]
    public async Task Update_requiring_an_existing_record_is_NotFound_after_removal()
    {
        var key = NewKey();
        await Put(Record(key, 1));
        await Store.RemoveAsync(key.Guid, 2).WithTimeout();

        Assert.Equal(new StoreResult(StoreStatus.NotFound, 2), await Put(Record(key, 3), requireExisting: true));
    }

    [Fact]
    public async Task Remove_leaves_a_tombstone_that_refuses_older_records_and_accepts_a_higher_one()
    {
        var key = NewKey();
        await Put(Record(key, 3, "alice", "192.0.2.1"));

        Assert.Equal(new StoreResult(StoreStatus.Stored, 10), await Store.RemoveAsync(key.Guid, 10).WithTimeout());
        Assert.Null(await Store.GetAsync(key.Guid).WithTimeout());
        Assert.Equal(10UL, await Store.GetVersionAsync(key.Guid).WithTimeout());

        Assert.Equal(new StoreResult(StoreStatus.Stale, 10), await Put(Record(key, 3, "alice", "192.0.2.1")));
        Assert.Equal(new StoreResult(StoreStatus.Stale, 10), await Put(Record(key, 10)));
        Assert.Null(await Store.GetAsync(key.Guid).WithTimeout());

        Assert.Equal(new StoreResult(StoreStatus.Stored, 11), await Put(Record(key, 11, "alice", "192.0.2.1")));
        Assert.Equal(11UL, (await Store.GetAsync(key.Guid).WithTimeout())?.Version);
        Assert.Equal(key.Guid, (await Store.GetByNameAsync("alice").WithTimeout())?.Guid);
    }

    [Fact]
    public async Task Remove_with_a_version_not_above_the_stored_one_is_stale_and_keeps_the_record()
    {
        var key = NewKey();
        await Put(Record(key, 5, "alice"));

        Assert.Equal(new StoreResult(StoreStatus.Stale, 5), await Store.RemoveAsync(key.Guid, 5).WithTimeout());
        Assert.Equal(new StoreResult(StoreStatus.Stale, 5), await Store.RemoveAsync(key.Guid, 1).WithTimeout());
        Assert.Equal(5UL, (await Store.GetAsync(key.Guid).WithTimeout())?.Version);
        Assert.Equal(key.Guid, (await Store.GetByNameAsync("alice").WithTimeout())?.Guid);
    }

    [Fact]
    public async Task Remove_of_an_unknown_guid_is_NotFound_and_leaves_no_tombstone()
    {
        var key = NewKey();

        Assert.Equal(new StoreResult(StoreStatus.NotFound, 0), await Store.RemoveAsync(key.Guid, 9).WithTimeout());
        Assert.Null(await Store.GetVersionAsync(key.Guid).WithTimeout());
        Assert.Equal(StoreStatus.Stored, (await Put(Record(key, 1))).Status);
    }

    [Fact]
    public async Task Remove_of_a_removed_guid_is_stale_when_replayed_and_NotFound_when_higher()
    {
        var key = NewKey();
        await Put(Record(key, 1));
        await Store.RemoveAsync(key.Guid, 2).WithTimeout();

        Assert.Equal(new StoreResult(StoreStatus.Stale, 2), await Store.RemoveAsync(key.Guid, 2).WithTimeout());
        Assert.Equal(new StoreResult(StoreStatus.NotFound, 2), await Store.RemoveAsync(key.Guid, 3).WithTimeout());
        Assert.Equal(2UL, await Store.GetVersionAsync(key.Guid).WithTimeout());
    }

    [Fact]
    public async Task Name_belongs_to_the_first_guid_that_claims_it()
    {
        var first = NewKey();
        var second = NewKey();
        await Put(Record(first, 1, "alice"));

        var result = await Put(Record(second, 1, "alice", "192.0.2.2"));

        Assert.Equal(new StoreResult(StoreStatus.NameTaken, 0), result);
        Assert.Equal(first.Guid, (await Store.GetByNameAsync("alice").WithTimeout())?.Guid);
        Assert.Null(await Store.GetVersionAsync(second.Guid).WithTimeout());
        Assert.Empty((await Store.ReverseAsync(IPAddress.Parse("192.0.2.2"), 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Refused_name_does_not_use_up_the_version()
    {
        var first = NewKey();
        var second = NewKey();
        await Put(Record(first, 1, "alice"));
        await Put(Record(second, 4, "bob"));

        Assert.Equal(new StoreResult(StoreStatus.NameTaken, 4), await Put(Record(second, 5, "alice")));
        Assert.Equal(new StoreResult(StoreStatus.Stored, 5), await Put(Record(second, 5, "bob")));
    }

    [Fact]
    public async Task Names_are_case_insensitive_for_claims_and_lookups()
    {
        var first = NewKey();
        var second = NewKey();
        await Put(Record(first, 1, "Alice"));

        Assert.Equal(StoreStatus.NameTaken, (await Put(Record(second, 1, "ALICE"))).Status);
        Assert.Equal(first.Guid, (await Store.GetByNameAsync("alice").WithTimeout())?.Guid);
        Assert.Equal(first.Guid, (await Store.GetByNameAsync("ALICE").WithTimeout())?.Guid);
    }

    [Fact]
    public async Task Owner_keeps_its_name_across_updates()
    {
        var key = NewKey();
        await Put(Record(key, 1, "alice"));

        Assert.Equal(StoreStatus.Stored, (await Put(Record(key, 2, "alice", "192.0.2.9"))).Status);
        Assert.Equal(2UL, (await Store.GetByNameAsync("alice").WithTimeout())?.Version);
    }

    [Fact]
    public async Task Name_is_released_when_the_owner_drops_it()
    {
        var owner = NewKey();
        var other = NewKey();
        await Put(Record(owner, 1, "alice"));

        await Put(Record(owner, 2));

        Assert.Null(await Store.GetByNameAsync("alice").WithTimeout());
        Assert.Equal(StoreStatus.Stored, (await Put(Record(other, 1, "alice"))).Status);
        Assert.Equal(other.Guid, (await Store.GetByNameAsync("alice").WithTimeout())?.Guid);
    }

    [Fact]
    public async Task Name_is_released_when_the_owner_renames()
    {
        var owner = NewKey();
        var other = NewKey();
        await Put(Record(owner, 1, "alice"));

        await Put(Record(owner, 2, "alicia"));

        Assert.Equal(owner.Guid, (await Store.GetByNameAsync("alicia").WithTimeout())?.Guid);
        Assert.Equal(StoreStatus.Stored, (await Put(Record(other, 1, "alice"))).Status);
        Assert.Equal(other.Guid, (await Store.GetByNameAsync("alice").WithTimeout())?.Guid);
    }

    [Fact]
    public async Task Name_is_released_when_the_owner_is_removed()
    {
        var owner = NewKey();
        var other = NewKey();
        await Put(Record(owner, 1, "alice"));

        await Store.RemoveAsync(owner.Guid, 2).WithTimeout();

        Assert.Null(await Store.GetByNameAsync("alice").WithTimeout());
        Assert.Equal(StoreStatus.Stored, (await Put(Record(other, 1, "alice"))).Status);
        Assert.Equal(StoreStatus.NameTaken, (await Put(Record(owner, 3, "alice"))).Status);
    }

    [Fact]
    public async Task Reverse_index_follows_address_changes()
    {
        var key = NewKey();
        var oldAddress = IPAddress.Parse("192.0.2.1");
        var newAddress = IPAddress.Parse("2001:db8::1");
        await Put(Record(key, 1, null, "192.0.2.1"));

        await Put(Record(key, 2, null, "2001:db8::1"));

        Assert.Empty((await Store.ReverseAsync(oldAddress, 10).WithTimeout()).Guids);
        Assert.Equal([key.Guid], (await Store.ReverseAsync(newAddress, 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Reverse_index_drops_a_removed_record()
    {
        var key = NewKey();
        await Put(Record(key, 1, null, "192.0.2.1"));

        await Store.RemoveAsync(key.Guid, 2).WithTimeout();

        Assert.Empty((await Store.ReverseAsync(IPAddress.Parse("192.0.2.1"), 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Reverse_lookup_matches_any_port_and_kind_and_lists_a_guid_once()
    {
        var key = NewKey();
        var address = IPAddress.Parse("192.0.2.1");
        await Put(GnsRecord.Create(key, 1,
            [At("192.0.2.1", 1000), At("192.0.2.1", 2000, LocatorKind.Observed), At("192.0.2.2", 1000, LocatorKind.Relay)]));

        Assert.Equal([key.Guid], (await Store.ReverseAsync(address, 10).WithTimeout()).Guids);
        Assert.Equal([key.Guid], (await Store.ReverseAsync(address.MapToIPv6(), 10).WithTimeout()).Guids);
        Assert.Equal([key.Guid], (await Store.ReverseAsync(IPAddress.Parse("192.0.2.2"), 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Reverse_lookup_returns_at_most_limit_guids_in_ascending_order_and_says_when_truncated()
    {
        var address = IPAddress.Parse("203.0.113.5");
        var guids = new List<HostGuid>();
        for (var i = 0; i < 7; i++)
        {
            var key = NewKey();
            guids.Add(key.Guid);
            await Put(Record(key, 1, null, "203.0.113.5"));
        }

        guids.Sort();

        var some = await Store.ReverseAsync(address, 3).WithTimeout();
        Assert.Equal(guids.Take(3), some.Guids);
        Assert.True(some.Truncated);

        var exact = await Store.ReverseAsync(address, 7).WithTimeout();
        Assert.Equal(guids, exact.Guids);
        Assert.False(exact.Truncated);

        var none = await Store.ReverseAsync(address, 0).WithTimeout();
        Assert.Empty(none.Guids);
        Assert.True(none.Truncated);
    }

    [Fact]
    public async Task Reverse_lookup_with_a_negative_limit_is_rejected()
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(
            () => Store.ReverseAsync(IPAddress.Loopback, -1).AsTask()).WithTimeout();
    }

    [Fact]
    public async Task Versions_at_and_above_two_to_the_63_compare_as_unsigned()
    {
        var key = NewKey();
        Assert.Equal(StoreStatus.Stored, (await Put(Record(key, HighBit - 1))).Status);
        Assert.Equal(new StoreResult(StoreStatus.Stored, HighBit), await Put(Record(key, HighBit)));
        Assert.Equal(new StoreResult(StoreStatus.Stale, HighBit), await Put(Record(key, HighBit - 1)));
        Assert.Equal(new StoreResult(StoreStatus.Stale, HighBit), await Put(Record(key, 1)));
        Assert.Equal(new StoreResult(StoreStatus.Stored, HighBit + 5), await Put(Record(key, HighBit + 5)));
        Assert.Equal(new StoreResult(StoreStatus.Stored, ulong.MaxValue), await Store.RemoveAsync(key.Guid, ulong.MaxValue).WithTimeout());
        Assert.Equal(new StoreResult(StoreStatus.Stale, ulong.MaxValue), await Put(Record(key, ulong.MaxValue)));
        Assert.Equal(ulong.MaxValue, await Store.GetVersionAsync(key.Guid).WithTimeout());

        var fresh = NewKey();
        await Put(Record(fresh, HighBit + 1));
        Assert.Equal(new StoreResult(StoreStatus.Stale, HighBit + 1), await Put(Record(fresh, 2)));
        Assert.Equal(HighBit + 1, (await Store.GetAsync(fresh.Guid).WithTimeout())?.Version);
    }

    [Fact]
    public async Task Concurrent_puts_from_many_tasks_all_complete_and_the_highest_version_wins()
    {
        const int Keys = 200;
        const int VersionsPerKey = 10;
        var keys = Enumerable.Range(0, Keys).Select(_ => NewKey()).ToArray();
        var records = keys.SelectMany(k => Enumerable.Range(1, VersionsPerKey).Select(v => Record(k, (ulong)v, null, "192.0.2.1")))
            .OrderBy(_ => Random.Shared.Next())
            .ToArray();
        var results = new ConcurrentBag<(GnsRecord Record, StoreResult Result)>();

        await Parallel.ForEachAsync(records, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (record, ct) =>
            results.Add((record, await Store.PutAsync(record, requireExisting: false, ct))))
            .WithTimeout();

        Assert.Equal(Keys * VersionsPerKey, results.Count);
        Assert.All(results, r =>
        {
            Assert.True(r.Result.Status is StoreStatus.Stored or StoreStatus.Stale, r.Result.ToString());
            Assert.True(r.Result.StoredVersion >= r.Record.Version);
            Assert.Equal(r.Result.Status == StoreStatus.Stored, r.Result.StoredVersion == r.Record.Version);
        });
        Assert.All(results.GroupBy(r => r.Record.Guid), g => Assert.Contains(g, r => r.Result.Status == StoreStatus.Stored && r.Record.Version == VersionsPerKey));
        foreach (var key in keys)
        {
            Assert.Equal((ulong)VersionsPerKey, await Store.GetVersionAsync(key.Guid).WithTimeout());
            Assert.Equal((ulong)VersionsPerKey, (await Store.GetAsync(key.Guid).WithTimeout())?.Version);
        }

        // One entry per GUID, none stale; an address holds at most MaxUnattestedPerAddress unattested claims.
        var reverse = await Store.ReverseAsync(IPAddress.Parse("192.0.2.1"), Keys + 1).WithTimeout();
        Assert.Equal(Math.Min(Keys, new Mobility.Gns.Claims.ClaimLimits().MaxUnattestedPerAddress), reverse.Guids.Distinct().Intersect(keys.Select(k => k.Guid)).Count());
        Assert.Equal(reverse.Guids.Order(), reverse.Guids);
    }

    [Fact]
    public async Task Concurrent_claims_of_one_name_leave_exactly_one_owner()
    {
        var keys = Enumerable.Range(0, 20).Select(_ => NewKey()).ToArray();

        var results = await Task.WhenAll(keys.Select(k => Task.Run(() => Store.PutAsync(Record(k, 1, "contested"), false).AsTask())))
            .WithTimeout();

        Assert.Single(results, r => r.Status == StoreStatus.Stored);
        Assert.Equal(keys.Length - 1, results.Count(r => r.Status == StoreStatus.NameTaken));
        var owner = keys[Array.FindIndex(results, r => r.Status == StoreStatus.Stored)];
        Assert.Equal(owner.Guid, (await Store.GetByNameAsync("contested").WithTimeout())?.Guid);
    }

    [Fact]
    public async Task Store_refuses_calls_after_disposal()
    {
        var key = NewKey();
        await Store.DisposeAsync().WithTimeout();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => Store.PutAsync(Record(key, 1), false).AsTask()).WithTimeout();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Store.GetAsync(key.Guid).AsTask()).WithTimeout();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Store.RemoveAsync(key.Guid, 1).AsTask()).WithTimeout();
    }
}

public sealed class InMemoryGnsStoreContractTests : GnsStoreContractTests
{
    protected override IGnsStore CreateStore() => new InMemoryGnsStore();
}
