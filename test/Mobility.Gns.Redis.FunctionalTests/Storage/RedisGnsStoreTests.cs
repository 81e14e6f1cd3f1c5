using System.Collections.Concurrent;
using System.Net;

namespace Mobility.Gns.Redis.FunctionalTests.Storage;

/// <summary>Two "GNS servers" (two multiplexers, two stores) sharing one Redis, and the store's repair rules.</summary>
public abstract class RedisSharedStoreTestsBase(string configuration) : RedisScenarioTestsBase(configuration)
{
    private protected RecordingLogger<RedisGnsStore> Log { get; } = new();

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        Log.AssertNoErrors();
    }

    /// <summary>Two stores over two connections with one key prefix: two GNS processes on one Redis.</summary>
    protected async Task<(RedisGnsStore A, RedisGnsStore B, IDatabase Db, RedisGnsOptions Options)> TwoServersAsync(Action<RedisGnsOptions>? configure = null)
    {
        var options = Infrastructure.Redis.Options(Configuration);
        configure?.Invoke(options);
        var a = await Infrastructure.Redis.OpenAsync(await ConnectAsync(), options, Log);
        var redisB = await ConnectAsync();
        var b = await Infrastructure.Redis.OpenAsync(redisB, options, Log);
        return (a, b, redisB.GetDatabase(), options);
    }

    [Fact]
    public async Task Two_servers_racing_conflicting_records_of_one_version_store_exactly_one_and_end_at_the_highest()
    {
        const int Versions = 40;
        var (a, b, _, _) = await TwoServersAsync();
        var key = NewKey();
        GnsRecord? lastWinner = null;
        for (ulong v = 1; v <= Versions; v++)
        {
            var fromA = GnsRecord.Create(key, v, [At("192.0.2.1")], 30);
            var fromB = GnsRecord.Create(key, v, [At("198.51.100.1")], 30);
            var results = await Task.WhenAll(
                Task.Run(() => a.PutAsync(fromA, false).AsTask()),
                Task.Run(() => b.PutAsync(fromB, false).AsTask())).WithTimeout();

            Assert.Single(results, r => r.Status == StoreStatus.Stored);
            Assert.Single(results, r => r.Status == StoreStatus.Stale);
            Assert.All(results, r => Assert.Equal(v, r.StoredVersion));
            lastWinner = results[0].Status == StoreStatus.Stored ? fromA : fromB;
            var seenByA = await a.GetAsync(key.Guid).WithTimeout();
            var seenByB = await b.GetAsync(key.Guid).WithTimeout();
            Assert.Equal(lastWinner.Encoded.ToArray(), seenByA!.Encoded.ToArray());
            Assert.Equal(lastWinner.Encoded.ToArray(), seenByB!.Encoded.ToArray());
        }

        Assert.Equal((ulong)Versions, await a.GetVersionAsync(key.Guid).WithTimeout());
        var address = lastWinner!.Locators[0].Address;
        var other = address.Equals(IPAddress.Parse("192.0.2.1")) ? IPAddress.Parse("198.51.100.1") : IPAddress.Parse("192.0.2.1");
        Assert.Equal([key.Guid], (await b.ReverseAsync(address, 10).WithTimeout()).Guids);
        Assert.Empty((await a.ReverseAsync(other, 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Two_servers_storming_many_versions_accept_each_version_at_most_once_and_keep_the_highest()
    {
        const int Guids = 20;
        const int Versions = 15;
        var (a, b, _, _) = await TwoServersAsync();
        var keys = Enumerable.Range(0, Guids).Select(_ => NewKey()).ToArray();
        var work = keys.SelectMany(k => Enumerable.Range(1, Versions).SelectMany(v => new[]
            {
                (Store: a, Record: GnsRecord.Create(k, (ulong)v, [At("192.0.2.10")], 30)),
                (Store: b, Record: GnsRecord.Create(k, (ulong)v, [At("192.0.2.20")], 30)),
            }))
            .OrderBy(_ => Random.Shared.Next())
            .ToArray();
        var stored = new ConcurrentBag<(HostGuid Guid, ulong Version)>();

        await Parallel.ForEachAsync(work, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (item, ct) =>
        {
            var result = await item.Store.PutAsync(item.Record, false, ct);
            Assert.True(result.StoredVersion >= item.Record.Version);
            if (result.Status == StoreStatus.Stored)
            {
                stored.Add((item.Record.Guid, item.Record.Version));
            }
        }).WithTimeout();

        Assert.Equal(stored.Count, stored.Distinct().Count());
        foreach (var key in keys)
        {
            Assert.Contains((key.Guid, (ulong)Versions), stored);
            Assert.Equal((ulong)Versions, (await b.GetAsync(key.Guid).WithTimeout())?.Version);
        }

        var ten = await a.ReverseAsync(IPAddress.Parse("192.0.2.10"), Guids).WithTimeout();
        var twenty = await a.ReverseAsync(IPAddress.Parse("192.0.2.20"), Guids).WithTimeout();
        Assert.Equal(keys.Select(k => k.Guid).Order(), ten.Guids.Concat(twenty.Guids).Order());
    }

    [Fact]
    public async Task Two_servers_claiming_one_name_for_many_guids_leave_exactly_one_owner()
    {
        var (a, b, _, _) = await TwoServersAsync();
        var keys = Enumerable.Range(0, 16).Select(_ => NewKey()).ToArray();

        var results = await Task.WhenAll(keys.Select((k, i) =>
            Task.Run(() => (i % 2 == 0 ? a : b).PutAsync(Record(k, 1, "shared"), false).AsTask()))).WithTimeout();

        Assert.Single(results, r => r.Status == StoreStatus.Stored);
        Assert.Equal(keys.Length - 1, results.Count(r => r.Status == StoreStatus.NameTaken));
        var owner = keys[Array.FindIndex(results, r => r.Status == StoreStatus.Stored)];
        Assert.Equal(owner.Guid, (await a.GetByNameAsync("shared").WithTimeout())?.Guid);
        Assert.Equal(owner.Guid, (await b.GetByNameAsync("shared").WithTimeout())?.Guid);
    }

    [Fact]
    public async Task A_claim_left_by_an_update_that_was_stored_without_the_name_is_taken_over_at_once()
    {
        var (a, _, db, options) = await TwoServersAsync();
        var crashed = NewKey();
        var claimant = NewKey();
        await a.PutAsync(Record(crashed, 3, null, "192.0.2.1"), false).WithTimeout();

        // A process claimed "orphan" for version 2 and died; the record is already at version 3 without it.
        await db.StringSetAsync($"{options.KeyPrefix}name:{{orphan}}", $"{crashed.Guid}|{RedisKeys.Version(2)}|{long.MaxValue / 2}").WithTimeout();

        Assert.Equal(StoreStatus.Stored, (await a.PutAsync(Record(claimant, 1, "orphan"), false).WithTimeout()).Status);
        Assert.Equal(claimant.Guid, (await a.GetByNameAsync("orphan").WithTimeout())?.Guid);
    }

    [Fact]
    public async Task A_claim_of_an_update_in_flight_holds_the_name_until_its_lease_expires()
    {
        var (a, _, db, options) = await TwoServersAsync();
        var inFlight = NewKey();
        var claimant = NewKey();
        var nameKey = $"{options.KeyPrefix}name:{{pending}}";
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        // An update of version 1 has claimed the name and not yet written its record.
        await db.StringSetAsync(nameKey, $"{inFlight.Guid}|{RedisKeys.Version(1)}|{now + 600_000}").WithTimeout();
        Assert.Equal(StoreStatus.NameTaken, (await a.PutAsync(Record(claimant, 1, "pending"), false).WithTimeout()).Status);
        Assert.Null(await a.GetByNameAsync("pending").WithTimeout());

        // Its process died: once the lease has expired the name is free again.
        await db.StringSetAsync(nameKey, $"{inFlight.Guid}|{RedisKeys.Version(1)}|{now - 1}").WithTimeout();
        Assert.Equal(StoreStatus.Stored, (await a.PutAsync(Record(claimant, 1, "pending"), false).WithTimeout()).Status);
        Assert.Equal(claimant.Guid, (await a.GetByNameAsync("pending").WithTimeout())?.Guid);
    }

    [Fact]
    public async Task Reverse_lookup_skips_and_deletes_entries_whose_record_no_longer_carries_the_address()
    {
        var (a, _, db, options) = await TwoServersAsync();
        var moved = NewKey();
        var stays = NewKey();
        await a.PutAsync(Record(moved, 5, null, "203.0.113.9"), false).WithTimeout();
        await a.PutAsync(Record(stays, 1, null, "203.0.113.9"), false).WithTimeout();
        var addressKey = $"{options.KeyPrefix}claims:{{203.0.113.9}}";

        // Entries a crashed writer could leave: a GUID with no record (as attested), garbage.
        var planted = new[] { NewKey().Guid.ToString(), "not-an-entry" };
        foreach (var entry in planted)
        {
            await db.SortedSetAddAsync(addressKey, entry, -(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 3_600_000)).WithTimeout();
        }

        var result = await a.ReverseAsync(IPAddress.Parse("203.0.113.9"), 10).WithTimeout();

        Assert.Equal(new[] { moved.Guid, stays.Guid }.Order(), result.Guids);
        Assert.False(result.Truncated);
        await WaitUntilAsync(async () => (await db.SortedSetLengthAsync(addressKey)) == 2);
    }

    [Fact]
    public async Task A_slower_update_of_an_older_version_never_withdraws_or_overwrites_the_claims_of_a_newer_one()
    {
        // Server A stores v2 (moving the GUID from .20 to .10) and is slow to index it; meanwhile server B stores
        // v3 (back on .20) and indexes it. A's late index step (add .10, withdraw .20) must leave v3's claim.
        var (a, b, db, options) = await TwoServersAsync();
        var key = NewKey();
        var v1 = Record(key, 1, null, "192.0.2.20");
        var v2 = Record(key, 2, null, "192.0.2.10");
        await a.PutAsync(v1, false).WithTimeout();
        await a.PutAsync(v2, false).WithTimeout();
        await b.PutAsync(Record(key, 3, null, "192.0.2.20"), false, IPAddress.Parse("192.0.2.20")).WithTimeout();
        var claims20 = $"{options.KeyPrefix}claims:{{192.0.2.20}}";
        var attested = (await db.SortedSetScoreAsync(claims20, key.Guid.ToString()).WithTimeout())!.Value;
        Assert.True(attested < 0, "v3 came from its own address: an attested claim");

        await a.IndexAsync(v2, v1, IPAddress.Parse("198.51.100.99"), 2).WithTimeout();
        await a.IndexAsync(Record(key, 2, null, "192.0.2.20"), null, IPAddress.Parse("198.51.100.99"), 2).WithTimeout();

        Assert.Equal([key.Guid], (await a.ReverseAsync(IPAddress.Parse("192.0.2.20"), 10).WithTimeout()).Guids);
        Assert.Equal(attested, await db.SortedSetScoreAsync(claims20, key.Guid.ToString()).WithTimeout());
        Assert.Empty((await b.ReverseAsync(IPAddress.Parse("192.0.2.10"), 10).WithTimeout()).Guids);
        // The reader deleted v2's late (invalid) claim on .10, with its version.
        await WaitUntilAsync(async () => !await db.KeyExistsAsync($"{options.KeyPrefix}claims:{{192.0.2.10}}")
            && !await db.KeyExistsAsync($"{options.KeyPrefix}claimv:{{192.0.2.10}}"));
    }

    [Fact]
    public async Task A_reader_that_saw_an_older_record_keeps_a_claim_written_by_a_newer_version()
    {
        // A reader fetched the claims of .30, then the GUID's record at v1 (which does not carry .30); before its
        // clean-up runs, v2 (which does) is stored and indexed. The clean-up is done in the name of v1.
        var (a, _, db, options) = await TwoServersAsync();
        var key = NewKey();
        await a.PutAsync(Record(key, 2, null, "192.0.2.30"), false).WithTimeout();
        RedisKey[] keys = [$"{options.KeyPrefix}claims:{{192.0.2.30}}", $"{options.KeyPrefix}claimv:{{192.0.2.30}}"];

        var keptForV1 = (long)await db.ScriptEvaluateAsync(RedisScripts.RemoveClaim, keys, [key.Guid.ToString(), RedisKeys.Version(1)]).WithTimeout();
        Assert.Equal(0, keptForV1);
        Assert.Equal([key.Guid], (await a.ReverseAsync(IPAddress.Parse("192.0.2.30"), 10).WithTimeout()).Guids);

        var removedForV2 = (long)await db.ScriptEvaluateAsync(RedisScripts.RemoveClaim, keys, [key.Guid.ToString(), RedisKeys.Version(2)]).WithTimeout();
        Assert.Equal(1, removedForV2);
        Assert.False(await db.KeyExistsAsync(keys[0]).WithTimeout());
        Assert.False(await db.KeyExistsAsync(keys[1]).WithTimeout());
    }

    [Fact]
    public async Task Retrying_a_stored_update_repairs_a_missing_index_entry_and_name_claim()
    {
        var (a, b, db, options) = await TwoServersAsync();
        var key = NewKey();
        var record = Record(key, 7, "repaired", "192.0.2.77");
        await a.PutAsync(record, false).WithTimeout();

        // As if the process died right after the commit point.
        await db.KeyDeleteAsync($"{options.KeyPrefix}claims:{{192.0.2.77}}").WithTimeout();
        await db.KeyDeleteAsync($"{options.KeyPrefix}name:{{repaired}}").WithTimeout();
        Assert.Empty((await b.ReverseAsync(IPAddress.Parse("192.0.2.77"), 10).WithTimeout()).Guids);
        Assert.Null(await b.GetByNameAsync("repaired").WithTimeout());

        Assert.Equal(new StoreResult(StoreStatus.Stale, 7), await b.PutAsync(record, false).WithTimeout());

        Assert.Equal([key.Guid], (await a.ReverseAsync(IPAddress.Parse("192.0.2.77"), 10).WithTimeout()).Guids);
        Assert.Equal(key.Guid, (await a.GetByNameAsync("repaired").WithTimeout())?.Guid);
    }

    [Fact]
    public async Task A_name_claim_whose_owner_record_does_not_hold_the_name_is_not_an_answer()
    {
        var (a, _, db, options) = await TwoServersAsync();
        var key = NewKey();
        await a.PutAsync(Record(key, 2, "real", "192.0.2.1"), false).WithTimeout();
        await db.StringSetAsync($"{options.KeyPrefix}name:{{ghost}}", $"{key.Guid}|{RedisKeys.Version(2)}|0").WithTimeout();

        Assert.Null(await a.GetByNameAsync("ghost").WithTimeout());
        Assert.Equal(key.Guid, (await a.GetByNameAsync("real").WithTimeout())?.Guid);
    }

    private static Task WaitUntilAsync(Func<Task<bool>> condition) => TestTimeout.Eventually(condition, "the condition became true");
}

[Collection(RedisServerCollection.Name)]
public sealed class RedisSharedStoreTests(RedisServerFixture redis) : RedisSharedStoreTestsBase(redis.Configuration);

[Collection(RedisClusterCollection.Name)]
public sealed class RedisClusterSharedStoreTests(RedisClusterFixture cluster) : RedisSharedStoreTestsBase(cluster.Configuration)
{
    [Fact]
    public async Task The_store_detects_the_cluster_and_its_keys_spread_over_the_masters()
    {
        var redis = await ConnectAsync();
        var store = await Infrastructure.Redis.OpenAsync(redis, Infrastructure.Redis.Options(Configuration), Log);

        Assert.True(store.ServerFacts.IsCluster);
        Assert.Equal(3, store.ServerFacts.Masters.Count);
        Assert.True(store.ServerFacts.AllDurable);
    }
}
