using System.Net;
using Microsoft.Data.Sqlite;
using Mobility.Gns.Claims;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Storage;

public sealed partial class SqliteGnsStore
{
    /// <summary>
    /// The single writer: waits for queued writes, takes up to MaxBatchSize of them and writes them as
    /// one transaction. Ends when the queue is completed (disposal) and empty.
    /// </summary>
    private async Task RunWriterAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<WriteOperation>(_maxBatchSize);
        try
        {
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                while (batch.Count < _maxBatchSize && reader.TryRead(out var operation))
                {
                    if (operation.CancellationToken.IsCancellationRequested)
                    {
                        operation.TrySetCanceled(operation.CancellationToken);
                    }
                    else
                    {
                        batch.Add(operation);
                    }
                }

                if (batch.Count > 0)
                {
                    WriteBatch(batch);
                    batch.Clear();
                }
            }
        }
        catch (Exception e)
        {
            // Only a bug gets here (SQLite errors are handled per batch). Fail loudly rather than leave
            // callers waiting: fault this batch and everything queued, and refuse further writes.
            SqliteGnsStoreLog.WriterFailed(_logger, e);
            _queue.Writer.TryComplete(e);
            foreach (var operation in batch)
            {
                operation.TrySetException(e);
            }

            while (reader.TryRead(out var operation))
            {
                operation.TrySetException(new InvalidOperationException("The GNS store's writer has stopped.", e));
            }
        }
    }

    /// <summary>
    /// Applies <paramref name="batch"/> in order in one transaction, each write in a savepoint so that a
    /// failing write is rolled back alone; commits once; updates the cache; then completes every write.
    /// If the commit fails, every write of the batch fails and nothing of it is visible.
    /// </summary>
    private void WriteBatch(List<WriteOperation> batch)
    {
        var w = _writer;
        var committed = new Dictionary<HostGuid, CachedEntry>(batch.Count);
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        try
        {
            w.Begin.ExecuteNonQuery();
            foreach (var operation in batch)
            {
                w.Savepoint.ExecuteNonQuery();
                try
                {
                    var (result, entry) = operation.Record is { } record
                        ? ApplyPut(w, record, operation.RequireExisting, operation.Source, now, _limits)
                        : ApplyRemove(w, operation.Guid, operation.Version);
                    w.Release.ExecuteNonQuery();
                    operation.Result = result;
                    if (entry is not null)
                    {
                        committed[operation.Guid] = entry;
                    }
                }
                catch (SqliteException e)
                {
                    SqliteGnsStoreLog.OperationFailed(_logger, e, operation.Guid);
                    w.RollbackToSavepoint.ExecuteNonQuery();
                    w.Release.ExecuteNonQuery();
                    operation.Error = e;
                }
            }

            w.Commit.ExecuteNonQuery();
            Interlocked.Increment(ref _commitCount);
        }
        catch (SqliteException e)
        {
            SqliteGnsStoreLog.BatchFailed(_logger, e, batch.Count);
            RollbackQuietly(w);
            foreach (var operation in batch)
            {
                operation.TrySetException(e);
            }

            return;
        }

        // The cache must show the commit before any caller learns of it (read-your-writes).
        _cache.Apply(committed);
        foreach (var operation in batch)
        {
            if (operation.Error is { } error)
            {
                operation.TrySetException(error);
            }
            else
            {
                operation.TrySetResult(operation.Result);
            }
        }
    }

    private static (StoreResult Result, CachedEntry? Entry) ApplyPut(
        WriterStatements w, GnsRecord record, bool requireExisting, IPAddress? source, long now, ClaimLimits limits)
    {
        var guid = record.Guid.ToByteArray();
        var existing = ReadVersion(w, guid);
        var refused = GnsStoreRules.CheckPut(existing, record, requireExisting)
            ?? GnsStoreRules.CheckName(existing, record, record.Name is null ? null : ReadNameOwner(w, record.Name));
        if (refused is { } failure)
        {
            return (failure, null);
        }

        var upsert = w.Upsert;
        upsert.Parameters[0].Value = guid;
        upsert.Parameters[1].Value = record.PublicKey.ToArray();
        upsert.Parameters[2].Value = unchecked((long)record.Version);
        upsert.Parameters[3].Value = (object?)record.Name ?? DBNull.Value;
        upsert.Parameters[4].Value = record.Encoded.ToArray();
        upsert.ExecuteNonQuery();
        ClaimRules.Index(new SqlClaimIndex(w), record, source, now, limits);
        return (new StoreResult(StoreStatus.Stored, record.Version), new CachedEntry(record.Version, record));
    }

    private static (StoreResult Result, CachedEntry? Entry) ApplyRemove(WriterStatements w, HostGuid guid, ulong version)
    {
        var guidBytes = guid.ToByteArray();
        if (GnsStoreRules.CheckRemove(ReadVersion(w, guidBytes), version) is { } failure)
        {
            return (failure, null);
        }

        var tombstone = w.Tombstone;
        tombstone.Parameters[0].Value = guidBytes;
        tombstone.Parameters[1].Value = unchecked((long)version);
        tombstone.ExecuteNonQuery();
        DeleteAddresses(w, guidBytes);
        return (new StoreResult(StoreStatus.Stored, version), new CachedEntry(version, null));
    }

    /// <summary>The GUID's row as the writer's transaction sees it (including earlier writes of the same batch).</summary>
    private static StoredVersion? ReadVersion(WriterStatements w, byte[] guid)
    {
        var select = w.SelectVersion;
        select.Parameters[0].Value = guid;
        using var reader = select.ExecuteReader();
        return reader.Read() ? new StoredVersion(unchecked((ulong)reader.GetInt64(0)), reader.GetInt64(1) == 0) : null;
    }

    private static HostGuid? ReadNameOwner(WriterStatements w, string name)
    {
        var select = w.SelectNameOwner;
        select.Parameters[0].Value = name;
        using var reader = select.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        var bytes = reader.GetFieldValue<byte[]>(0);

        // A malformed owner GUID cannot be any real GUID, so the name counts as taken by someone else.
        return bytes.Length == HostGuid.Size ? HostGuid.FromBytes(bytes) : HostGuid.Empty;
    }

    private static void DeleteAddresses(WriterStatements w, byte[] guid)
    {
        var delete = w.DeleteAddresses;
        delete.Parameters[0].Value = guid;
        delete.ExecuteNonQuery();
    }

    /// <summary>The reverse index as the writer's transaction sees it, for <see cref="ClaimRules.Index"/>.</summary>
    private sealed class SqlClaimIndex(WriterStatements w) : IClaimIndex
    {
        public IReadOnlyList<AddressClaim> ClaimsOf(HostGuid guid)
        {
            var select = w.SelectClaims;
            select.Parameters[0].Value = guid.ToByteArray();
            var claims = new List<AddressClaim>();
            using var reader = select.ExecuteReader();
            while (reader.Read())
            {
                var address = reader.GetFieldValue<byte[]>(0);
                if (address.Length is not 4 and not 16)
                {
                    // A row no address can have; RemoveClaimsOf drops it with the rest.
                    continue;
                }

                claims.Add(new AddressClaim(
                    new IPAddress(address), guid, reader.GetInt64(1) != 0, reader.GetInt64(2),
                    reader.IsDBNull(3) ? null : new IPAddress(reader.GetFieldValue<byte[]>(3))));
            }

            return claims;
        }

        public void RemoveClaimsOf(HostGuid guid) => DeleteAddresses(w, guid.ToByteArray());

        public void PurgeExpiredAt(IPAddress address, long now) => Execute(w.PurgeAt, address.GetAddressBytes(), now);

        public void PurgeExpiredFrom(IPAddress source, long now) => Execute(w.PurgeFrom, source.GetAddressBytes(), now);

        public int CountAt(IPAddress address, bool attested) => Count(w.CountAt, address.GetAddressBytes(), attested ? 1L : 0L);

        public int CountFrom(IPAddress source) => Count(w.CountFrom, source.GetAddressBytes(), null);

        public void Add(AddressClaim claim)
        {
            var insert = w.InsertAddress;
            insert.Parameters[0].Value = claim.Address.GetAddressBytes();
            insert.Parameters[1].Value = claim.Guid.ToByteArray();
            insert.Parameters[2].Value = claim.Attested ? 1L : 0L;
            insert.Parameters[3].Value = claim.Expires;
            insert.Parameters[4].Value = (object?)claim.Source?.GetAddressBytes() ?? DBNull.Value;
            insert.ExecuteNonQuery();
        }

        private static void Execute(SqliteCommand command, byte[] key, long now)
        {
            command.Parameters[0].Value = key;
            command.Parameters[1].Value = now;
            command.ExecuteNonQuery();
        }

        private static int Count(SqliteCommand command, byte[] key, long? kind)
        {
            command.Parameters[0].Value = key;
            if (kind is { } value)
            {
                command.Parameters[1].Value = value;
            }

            return (int)(long)command.ExecuteScalar()!;
        }
    }

    private void RollbackQuietly(WriterStatements w)
    {
        try
        {
            w.Rollback.ExecuteNonQuery();
        }
        catch (SqliteException e)
        {
            // SQLite may already have rolled the transaction back (for example after an I/O error).
            SqliteGnsStoreLog.RollbackSkipped(_logger, e.Message);
        }
    }

    /// <summary>One queued put (Record set) or remove (Record null), completed with its own result.</summary>
    private sealed class WriteOperation(GnsRecord? record, HostGuid guid, ulong version, bool requireExisting, CancellationToken cancellationToken)
        : TaskCompletionSource<StoreResult>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public GnsRecord? Record { get; } = record;

        public HostGuid Guid { get; } = guid;

        public ulong Version { get; } = version;

        public bool RequireExisting { get; } = requireExisting;

        /// <summary>Where a put came from (<see cref="ClaimRules.Index"/>); null for removals and in-process callers.</summary>
        public IPAddress? Source { get; init; }

        public CancellationToken CancellationToken { get; } = cancellationToken;

        /// <summary>Set inside the transaction; published only after the commit.</summary>
        public StoreResult Result { get; set; }

        public Exception? Error { get; set; }
    }

    /// <summary>The writer connection's statements, prepared once. Transactions are plain SQL so batches can use savepoints.</summary>
    private sealed class WriterStatements : IDisposable
    {
        public WriterStatements(SqliteConnection connection)
        {
            Begin = Prepare(connection, "BEGIN IMMEDIATE;");
            Commit = Prepare(connection, "COMMIT;");
            Rollback = Prepare(connection, "ROLLBACK;");
            Savepoint = Prepare(connection, "SAVEPOINT write_op;");
            Release = Prepare(connection, "RELEASE write_op;");
            RollbackToSavepoint = Prepare(connection, "ROLLBACK TO write_op;");
            SelectVersion = Prepare(connection, "SELECT version, removed FROM records WHERE guid = $guid;", "$guid");
            SelectNameOwner = Prepare(connection, "SELECT guid FROM records WHERE name = $name;", "$name");
            Upsert = Prepare(connection, """
                INSERT INTO records (guid, public_key, version, name, encoded, removed)
                VALUES ($guid, $public_key, $version, $name, $encoded, 0)
                ON CONFLICT (guid) DO UPDATE SET
                    public_key = excluded.public_key, version = excluded.version, name = excluded.name,
                    encoded = excluded.encoded, removed = 0;
                """, "$guid", "$public_key", "$version", "$name", "$encoded");
            Tombstone = Prepare(connection,
                "UPDATE records SET version = $version, name = NULL, encoded = NULL, removed = 1 WHERE guid = $guid;",
                "$guid", "$version");
            DeleteAddresses = Prepare(connection, "DELETE FROM addresses WHERE guid = $guid;", "$guid");
            InsertAddress = Prepare(connection, """
                INSERT OR REPLACE INTO addresses (address, guid, attested, expires, source)
                VALUES ($address, $guid, $attested, $expires, $source);
                """, "$address", "$guid", "$attested", "$expires", "$source");
            SelectClaims = Prepare(connection, "SELECT address, attested, expires, source FROM addresses WHERE guid = $guid;", "$guid");
            PurgeAt = Prepare(connection, "DELETE FROM addresses WHERE address = $address AND expires <= $now;", "$address", "$now");
            PurgeFrom = Prepare(connection, "DELETE FROM addresses WHERE source = $source AND expires <= $now;", "$source", "$now");
            CountAt = Prepare(connection, "SELECT count(*) FROM addresses WHERE address = $address AND attested = $attested;", "$address", "$attested");
            CountFrom = Prepare(connection, "SELECT count(*) FROM addresses WHERE source = $source;", "$source");
        }

        public SqliteCommand Begin { get; }

        public SqliteCommand Commit { get; }

        public SqliteCommand Rollback { get; }

        public SqliteCommand Savepoint { get; }

        public SqliteCommand Release { get; }

        public SqliteCommand RollbackToSavepoint { get; }

        public SqliteCommand SelectVersion { get; }

        public SqliteCommand SelectNameOwner { get; }

        public SqliteCommand Upsert { get; }

        public SqliteCommand Tombstone { get; }

        public SqliteCommand DeleteAddresses { get; }

        public SqliteCommand InsertAddress { get; }

        public SqliteCommand SelectClaims { get; }

        public SqliteCommand PurgeAt { get; }

        public SqliteCommand PurgeFrom { get; }

        public SqliteCommand CountAt { get; }

        public SqliteCommand CountFrom { get; }

        public void Dispose()
        {
            foreach (var command in new[]
                     {
                         Begin, Commit, Rollback, Savepoint, Release, RollbackToSavepoint, SelectVersion, SelectNameOwner, Upsert,
                         Tombstone, DeleteAddresses, InsertAddress, SelectClaims, PurgeAt, PurgeFrom, CountAt, CountFrom,
                     })
            {
                command.Dispose();
            }
        }
    }
}
