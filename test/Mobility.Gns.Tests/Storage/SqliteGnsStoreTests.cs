using Microsoft.Data.Sqlite;

namespace Mobility.Gns.Tests.Storage;

public class SqliteGnsStoreContractTests : GnsStoreContractTests
{
    private readonly TempDirectory _folder = new();
    private readonly RecordingLogger<SqliteGnsStore> _log = new();

    protected virtual int CacheCapacity => new SqliteGnsStoreOptions().CacheCapacity;

    protected override IGnsStore CreateStore()
        => new SqliteGnsStore(new SqliteGnsStoreOptions { DataDirectory = _folder.Path, CacheCapacity = CacheCapacity }, _log);

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _folder.Dispose();
        _log.AssertNoWarningsOrErrors();
    }
}

/// <summary>The contract again with the cache off, so every read goes through SQLite.</summary>
public sealed class SqliteGnsStoreUncachedContractTests : SqliteGnsStoreContractTests
{
    protected override int CacheCapacity => 0;
}

public sealed class SqliteGnsStoreTests : IDisposable
{
    private readonly TempDirectory _folder = new();
    private readonly TestKeys _keys = new();

    public void Dispose()
    {
        _keys.Dispose();

        _folder.Dispose();
    }

    private HostKey NewKey() => _keys.New();

    private SqliteGnsStore Open(ILogger<SqliteGnsStore>? logger = null, int maxBatchSize = 512, int queueCapacity = 4096, int cacheCapacity = 65_536)
        => new(new SqliteGnsStoreOptions
        {
            DataDirectory = _folder.Path,
            MaxBatchSize = maxBatchSize,
            QueueCapacity = queueCapacity,
            CacheCapacity = cacheCapacity,
        }, logger);

    private string DatabasePath => Path.Combine(_folder.Path, SqliteGnsStoreOptions.DatabaseFileName);

    private SqliteConnection OpenRaw()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    private static void Execute(SqliteConnection connection, string sql, params (string Name, object Value)[] parameters)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    [Fact]
    public async Task Acknowledged_data_survives_dispose_and_reopen()
    {
        var live = NewKey();
        var removed = NewKey();
        var huge = NewKey();
        await using (var store = Open())
        {
            await store.PutAsync(Record(live, 3, "alice", "192.0.2.1", "2001:db8::7"), false).WithTimeout();
            await store.PutAsync(Record(removed, 1, "bob", "192.0.2.1"), false).WithTimeout();
            await store.RemoveAsync(removed.Guid, 8).WithTimeout();
            await store.PutAsync(Record(huge, ulong.MaxValue - 1), false).WithTimeout();
        }

        await using (var store = Open())
        {
            Assert.Equal(3UL, (await store.GetAsync(live.Guid).WithTimeout())?.Version);
            Assert.Equal(live.Guid, (await store.GetByNameAsync("alice").WithTimeout())?.Guid);
            Assert.Equal([live.Guid], (await store.ReverseAsync(IPAddress.Parse("2001:db8::7"), 5).WithTimeout()).Guids);
            Assert.Equal([live.Guid], (await store.ReverseAsync(IPAddress.Parse("192.0.2.1"), 5).WithTimeout()).Guids);
            Assert.Null(await store.GetAsync(removed.Guid).WithTimeout());
            Assert.Null(await store.GetByNameAsync("bob").WithTimeout());
            Assert.Equal(8UL, await store.GetVersionAsync(removed.Guid).WithTimeout());
            Assert.Equal(StoreStatus.Stale, (await store.PutAsync(Record(removed, 7), false).WithTimeout()).Status);
            Assert.Equal(ulong.MaxValue - 1, await store.GetVersionAsync(huge.Guid).WithTimeout());
            Assert.Equal(StoreStatus.Stale, (await store.PutAsync(Record(huge, 5), false).WithTimeout()).Status);
            Assert.Equal(StoreStatus.Stored, (await store.PutAsync(Record(huge, ulong.MaxValue), false).WithTimeout()).Status);
        }
    }

    [Fact]
    public async Task Database_is_created_in_wal_mode_with_the_current_schema_version()
    {
        await using (Open())
        {
        }

        using var raw = OpenRaw();
        Assert.Equal("wal", Scalar(raw, "PRAGMA journal_mode;") as string);
        Assert.Equal(SqliteGnsStore.SchemaVersion, Scalar(raw, "PRAGMA user_version;"));
    }

    [Fact]
    public async Task Database_from_a_newer_schema_is_refused()
    {
        await using (Open())
        {
        }

        using (var raw = OpenRaw())
        {
            Execute(raw, "PRAGMA user_version = 99;");
        }

        var error = Assert.Throws<InvalidDataException>(() => Open());
        Assert.Contains("99", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Second_store_on_the_same_folder_is_refused_while_the_first_is_open()
    {
        await using (Open())
        {
            Assert.ThrowsAny<IOException>(() => Open());
        }

        await using (Open())
        {
        }
    }

    [Fact]
    public void Out_of_range_options_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => Open(maxBatchSize: 0));
        Assert.Throws<ArgumentException>(() => Open(queueCapacity: 0));
        Assert.Throws<ArgumentException>(() => Open(cacheCapacity: -1));
        Assert.Throws<ArgumentException>(() => new SqliteGnsStore(new SqliteGnsStoreOptions()));
    }

    [Fact]
    public async Task Concurrent_puts_share_commits()
    {
        const int Writes = 500;
        var keys = Enumerable.Range(0, Writes).Select(_ => NewKey()).ToArray();
        var records = keys.Select(k => Record(k, 1, null, "192.0.2.1")).ToArray();
        await using var store = Open();

        var results = await Task.WhenAll(records.Select(r => store.PutAsync(r, false).AsTask())).WithTimeout();

        Assert.All(results, r => Assert.Equal(StoreStatus.Stored, r.Status));
        Assert.InRange(store.CommitCount, 1, Writes - 1);
    }

    [Fact]
    public async Task Batch_size_bounds_the_writes_per_commit()
    {
        const int Writes = 64;
        const int BatchSize = 8;
        var records = Enumerable.Range(0, Writes).Select(_ => Record(NewKey(), 1)).ToArray();
        await using var store = Open(maxBatchSize: BatchSize);

        await Task.WhenAll(records.Select(r => store.PutAsync(r, false).AsTask())).WithTimeout();

        Assert.InRange(store.CommitCount, Writes / BatchSize, Writes);
    }

    [Fact]
    public async Task A_full_queue_makes_writers_wait_and_every_write_still_completes()
    {
        const int Writes = 200;
        var records = Enumerable.Range(0, Writes).Select(_ => Record(NewKey(), 1)).ToArray();
        await using var store = Open(maxBatchSize: 1, queueCapacity: 1);

        var results = await Task.WhenAll(records.Select(r => Task.Run(() => store.PutAsync(r, false).AsTask()))).WithTimeout();

        Assert.All(results, r => Assert.Equal(StoreStatus.Stored, r.Status));
        Assert.Equal(Writes, store.CommitCount);
    }

    [Fact]
    public async Task Each_write_in_a_batch_gets_its_own_result_in_queue_order()
    {
        var a = NewKey();
        var b = NewKey();
        await using var store = Open();

        // Queued back to back without awaiting, so they share batches and see each other's effects in order.
        var pending = new[]
        {
            store.PutAsync(Record(a, 1, "shared", "192.0.2.1"), false),
            store.PutAsync(Record(a, 3, "shared", "192.0.2.1"), false),
            store.PutAsync(Record(a, 2, "stale", "192.0.2.2"), false),
            store.PutAsync(Record(b, 1, "shared"), false),
            store.PutAsync(Record(b, 1, "other"), true),
            store.PutAsync(Record(a, 4, "moved", "192.0.2.3"), false),
            store.PutAsync(Record(b, 2, "shared"), false),
            store.RemoveAsync(a.Guid, 4),
            store.RemoveAsync(a.Guid, 5),
            store.PutAsync(Record(a, 5, "again"), false),
        };
        var results = await Task.WhenAll(pending.Select(p => p.AsTask())).WithTimeout();

        Assert.Equal(
            [
                new StoreResult(StoreStatus.Stored, 1),
                new StoreResult(StoreStatus.Stored, 3),
                new StoreResult(StoreStatus.Stale, 3),
                new StoreResult(StoreStatus.NameTaken, 0),
                new StoreResult(StoreStatus.NotFound, 0),
                new StoreResult(StoreStatus.Stored, 4),
                new StoreResult(StoreStatus.Stored, 2),
                new StoreResult(StoreStatus.Stale, 4),
                new StoreResult(StoreStatus.Stored, 5),
                new StoreResult(StoreStatus.Stale, 5),
            ],
            results);
        Assert.Equal(b.Guid, (await store.GetByNameAsync("shared").WithTimeout())?.Guid);
        Assert.Null(await store.GetByNameAsync("stale").WithTimeout());
        Assert.Null(await store.GetByNameAsync("moved").WithTimeout());
        Assert.Empty((await store.ReverseAsync(IPAddress.Parse("192.0.2.3"), 5).WithTimeout()).Guids);
        Assert.Empty((await store.ReverseAsync(IPAddress.Parse("192.0.2.2"), 5).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Writes_queued_before_disposal_complete_and_are_durable()
    {
        const int Writes = 300;
        var keys = Enumerable.Range(0, Writes).Select(_ => NewKey()).ToArray();
        var records = keys.Select(k => Record(k, 2)).ToArray();
        Task<StoreResult>[] pending;
        var store = Open();
        try
        {
            pending = records.Select(r => store.PutAsync(r, false).AsTask()).ToArray();
        }
        finally
        {
            await store.DisposeAsync().WithTimeout();
        }

        var results = await Task.WhenAll(pending).WithTimeout();
        Assert.All(results, r => Assert.Equal(StoreStatus.Stored, r.Status));
        await using var reopened = Open();
        foreach (var key in keys)
        {
            Assert.Equal(2UL, await reopened.GetVersionAsync(key.Guid).WithTimeout());
        }
    }

    [Fact]
    public async Task Put_cancelled_before_the_writer_takes_it_is_not_applied()
    {
        var key = NewKey();
        await using var store = Open();
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => store.PutAsync(Record(key, 1), false, cancelled.Token).AsTask()).WithTimeout();

        Assert.Null(await store.GetVersionAsync(key.Guid).WithTimeout());
    }

    [Fact]
    public async Task Corrupt_rows_are_logged_and_skipped_and_keep_their_version()
    {
        var damaged = NewKey();
        var healthy = NewKey();
        await using (var store = Open())
        {
            await store.PutAsync(Record(damaged, 4, "alice", "192.0.2.1"), false).WithTimeout();
            await store.PutAsync(Record(healthy, 1, "bob", "192.0.2.1"), false).WithTimeout();
        }

        using (var raw = OpenRaw())
        {
            Execute(raw, "UPDATE records SET encoded = x'01020304' WHERE guid = $guid;", ("$guid", damaged.Guid.ToByteArray()));
        }

        var log = new RecordingLogger<SqliteGnsStore>();
        await using (var store = Open(log))
        {
            Assert.Null(await store.GetAsync(damaged.Guid).WithTimeout());
            Assert.Null(await store.GetByNameAsync("alice").WithTimeout());
            Assert.Equal(4UL, await store.GetVersionAsync(damaged.Guid).WithTimeout());
            Assert.Equal(healthy.Guid, (await store.GetByNameAsync("bob").WithTimeout())?.Guid);
            Assert.Contains(log.Entries, e => e.Level == LogLevel.Warning && e.Id.Id == SqliteGnsStoreLog.CorruptRowId && e.Message.Contains(damaged.Guid.ToString(), StringComparison.Ordinal));

            Assert.Equal(StoreStatus.Stale, (await store.PutAsync(Record(damaged, 4), false).WithTimeout()).Status);
            Assert.Equal(StoreStatus.Stored, (await store.PutAsync(Record(damaged, 5, "alice"), false).WithTimeout()).Status);
            Assert.Equal(5UL, (await store.GetAsync(damaged.Guid).WithTimeout())?.Version);
            Assert.Equal(damaged.Guid, (await store.GetByNameAsync("alice").WithTimeout())?.Guid);
        }
    }

    [Fact]
    public async Task Row_whose_record_belongs_to_another_guid_is_skipped()
    {
        var victim = NewKey();
        var other = NewKey();
        var otherRecord = Record(other, 1);
        await using (var store = Open())
        {
            await store.PutAsync(Record(victim, 1), false).WithTimeout();
        }

        using (var raw = OpenRaw())
        {
            Execute(raw, "UPDATE records SET encoded = $encoded WHERE guid = $guid;",
                ("$encoded", otherRecord.Encoded.ToArray()), ("$guid", victim.Guid.ToByteArray()));
        }

        var log = new RecordingLogger<SqliteGnsStore>();
        await using (var store = Open(log, cacheCapacity: 0))
        {
            Assert.Null(await store.GetAsync(victim.Guid).WithTimeout());
            Assert.Contains(log.Entries, e => e.Id.Id == SqliteGnsStoreLog.CorruptRowId);
        }
    }

    [Fact]
    public async Task Cache_holds_at_most_its_capacity_and_every_record_stays_readable()
    {
        const int Records = 100;
        var keys = Enumerable.Range(0, Records).Select(_ => NewKey()).ToArray();
        await using var store = Open(cacheCapacity: 10);

        foreach (var key in keys)
        {
            await store.PutAsync(Record(key, 1), false).WithTimeout();
        }

        foreach (var key in keys)
        {
            Assert.Equal(1UL, (await store.GetAsync(key.Guid).WithTimeout())?.Version);
        }

        Assert.InRange(store.CachedCount, 1, 10);
    }

    [Fact]
    public async Task Reads_racing_updates_never_see_a_version_go_back()
    {
        var key = NewKey();
        var filler = NewKey();
        const ulong Last = 300;
        var records = Enumerable.Range(1, (int)Last).Select(v => Record(key, (ulong)v)).ToArray();

        // A one-entry cache and a second reader of another stored GUID force evictions and refills
        // while the writer commits, which is where a slow fill could put back an old version.
        await using var store = Open(cacheCapacity: 1);
        await store.PutAsync(Record(filler, 1), false).WithTimeout();
        using var stop = new CancellationTokenSource();
        var watcher = Task.Run(async () =>
        {
            ulong seen = 0;
            while (!stop.IsCancellationRequested)
            {
                var version = await store.GetVersionAsync(key.Guid).WithTimeout() ?? 0;
                Assert.True(version >= seen, $"version went back from {seen} to {version}");
                seen = version;
            }
        });
        var evictor = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                Assert.NotNull(await store.GetAsync(filler.Guid).WithTimeout());
            }
        });

        foreach (var record in records)
        {
            await store.PutAsync(record, false).WithTimeout();
            Assert.Equal(record.Version, await store.GetVersionAsync(key.Guid).WithTimeout());
        }

        await stop.CancelAsync();
        await Task.WhenAll(watcher, evictor).WithTimeout();
        Assert.Equal(Last, (await store.GetAsync(key.Guid).WithTimeout())?.Version);
    }
    [Fact]
    public async Task Write_that_fails_in_SQLite_fails_alone_and_the_rest_of_its_batch_commits()
    {
        var before = NewKey();
        var failing = NewKey();
        var after = NewKey();
        await using (Open())
        {
        }

        using (var raw = OpenRaw())
        {
            Execute(raw, "CREATE TRIGGER refuse_explode BEFORE INSERT ON records WHEN NEW.name = 'explode' BEGIN SELECT RAISE(ABORT, 'refused by test'); END;");
        }

        var log = new RecordingLogger<SqliteGnsStore>();
        await using (var store = Open(log))
        {
            var first = store.PutAsync(Record(before, 1, "before", "192.0.2.1"), false).AsTask();
            var bad = store.PutAsync(Record(failing, 1, "explode", "192.0.2.1"), false).AsTask();
            var last = store.PutAsync(Record(after, 1, "after", "192.0.2.1"), false).AsTask();

            Assert.Equal(StoreStatus.Stored, (await first.WithTimeout()).Status);
            await Assert.ThrowsAsync<SqliteException>(() => bad).WithTimeout();
            Assert.Equal(StoreStatus.Stored, (await last.WithTimeout()).Status);
            Assert.Contains(log.Entries, e => e.Level == LogLevel.Error && e.Id.Id == SqliteGnsStoreLog.OperationFailedId);
        }

        await using (var store = Open())
        {
            Assert.Null(await store.GetVersionAsync(failing.Guid).WithTimeout());
            Assert.Equal(new[] { before.Guid, after.Guid }.Order(), (await store.ReverseAsync(IPAddress.Parse("192.0.2.1"), 5).WithTimeout()).Guids);
            Assert.Equal(StoreStatus.Stored, (await store.PutAsync(Record(failing, 2, "fine"), false).WithTimeout()).Status);
        }
    }

    [Fact]
    public async Task Batch_whose_transaction_is_lost_fails_every_write_in_it_and_the_store_keeps_working()
    {
        var keys = Enumerable.Range(0, 20).Select(_ => NewKey()).ToArray();
        var poisoned = NewKey();
        await using (Open())
        {
        }

        using (var raw = OpenRaw())
        {
            // RAISE(ROLLBACK) aborts the whole transaction, as an I/O error would.
            Execute(raw, "CREATE TRIGGER lose_batch BEFORE INSERT ON records WHEN NEW.name = 'poison' BEGIN SELECT RAISE(ROLLBACK, 'lost by test'); END;");
        }

        var log = new RecordingLogger<SqliteGnsStore>();
        var outcomes = new List<(HostGuid Guid, bool Stored)>();
        await using (var store = Open(log))
        {
            var pending = keys.Take(10).Select(k => (k.Guid, Task: store.PutAsync(Record(k, 1), false).AsTask()))
                .Append((poisoned.Guid, Task: store.PutAsync(Record(poisoned, 1, "poison"), false).AsTask()))
                .Concat(keys.Skip(10).Select(k => (k.Guid, Task: store.PutAsync(Record(k, 1), false).AsTask())))
                .ToArray();
            foreach (var (guid, task) in pending)
            {
                try
                {
                    Assert.Equal(StoreStatus.Stored, (await task.WithTimeout()).Status);
                    outcomes.Add((guid, true));
                }
                catch (SqliteException)
                {
                    outcomes.Add((guid, false));
                }
            }

            Assert.Contains((poisoned.Guid, false), outcomes);
            Assert.Contains(log.Entries, e => e.Level == LogLevel.Error && e.Id.Id == SqliteGnsStoreLog.BatchFailedId);
            var later = NewKey();
            Assert.Equal(StoreStatus.Stored, (await store.PutAsync(Record(later, 1), false).WithTimeout()).Status);
            outcomes.Add((later.Guid, true));
        }

        // What callers were told is what the disk holds.
        await using (var store = Open())
        {
            foreach (var (guid, stored) in outcomes)
            {
                Assert.Equal(stored ? 1UL : null, await store.GetVersionAsync(guid).WithTimeout());
            }
        }
    }
}
