using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Mobility.Gns.Claims;
using Mobility.Protocol;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Storage;

/// <summary>
/// The durable <see cref="IGnsStore"/>: SQLite in WAL mode with <c>synchronous = FULL</c>, in
/// <c>gns.db</c> inside <see cref="SqliteGnsStoreOptions.DataDirectory"/>. A put or remove completes
/// only after the transaction holding it is committed and synced.
/// <para>
/// Writes: one writer loop drains a bounded queue and applies up to
/// <see cref="SqliteGnsStoreOptions.MaxBatchSize"/> writes, in order, in one transaction (group commit),
/// each in its own savepoint with its own result, then commits once and completes them all.
/// Reads: a bounded cache by GUID, filled by the writer after each commit and by readers on a miss;
/// misses, names and reverse lookups read SQLite through a small pool of read-only connections, which
/// WAL lets run beside the writer. A lock file keeps a second process (or store) off the same folder.
/// </para>
/// </summary>
public sealed partial class SqliteGnsStore : IGnsStore
{
    private readonly int _maxBatchSize;
    private readonly int _maxIdleReaders;
    private readonly TimeSpan _busyTimeout;
    private readonly ILogger _logger;
    private readonly string _databasePath;
    private readonly string _readConnectionString;
    private readonly FileStream _lockFile;
    private readonly SqliteConnection _writeConnection;
    private readonly WriterStatements _writer;
    private readonly Channel<WriteOperation> _queue;
    private readonly RecordCache _cache;
    private readonly ConcurrentQueue<ReadSession> _idleReaders = new();
    private readonly Task _writerLoop;
    private readonly ClaimLimits _limits;
    private readonly TimeProvider _time;
    private long _commitCount;
    private int _idleReaderCount;
    private int _disposed;

    /// <summary>Opens (or creates) the store in <see cref="SqliteGnsStoreOptions.DataDirectory"/>.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    /// <exception cref="IOException">Another store holds the data folder.</exception>
    /// <exception cref="InvalidDataException">The database has a schema this build does not read.</exception>
    /// <param name="options">Where and how the data is kept.</param>
    /// <param name="logger">Diagnostics; none when null.</param>
    /// <param name="claims">Bounds of the reverse index; the defaults when null.</param>
    /// <param name="time">The clock that dates and expires claims; the system clock when null.</param>
    public SqliteGnsStore(SqliteGnsStoreOptions options, ILogger<SqliteGnsStore>? logger = null, ClaimLimits? claims = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _limits = claims ?? new ClaimLimits();
        _limits.Validate();
        _time = time ?? TimeProvider.System;
        // Copied, so that changing the options object later cannot change a running store.
        _maxBatchSize = options.MaxBatchSize;
        _maxIdleReaders = options.MaxIdleReadConnections;
        _busyTimeout = options.BusyTimeout;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        var directory = Path.GetFullPath(options.DataDirectory);
        Directory.CreateDirectory(directory);
        _databasePath = Path.Combine(directory, SqliteGnsStoreOptions.DatabaseFileName);
        var lockPath = Path.Combine(directory, SqliteGnsStoreOptions.LockFileName);
        try
        {
            _lockFile = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            // The host reports this as its one start-up line.
            throw new IOException($"GNS data folder {directory} is in use by another GNS ({lockPath} is locked).", e);
        }

        try
        {
            var common = new SqliteConnectionStringBuilder
            {
                DataSource = _databasePath,
                Cache = SqliteCacheMode.Private,
                // This class pools its own read connections and keeps one writer; the driver's pool would
                // keep the file open after disposal.
                Pooling = false,
                DefaultTimeout = Math.Max(1, (int)options.BusyTimeout.TotalSeconds),
                Mode = SqliteOpenMode.ReadWriteCreate,
            };
            _writeConnection = new SqliteConnection(common.ToString());
            _writeConnection.Open();
            ConfigureWriter(_writeConnection, options.BusyTimeout);
            var created = EnsureSchema(_writeConnection, ClaimRules.Expiry(0, _time.GetUtcNow().ToUnixTimeMilliseconds(), _limits));
            _writer = new WriterStatements(_writeConnection);
            common.Mode = SqliteOpenMode.ReadOnly;
            _readConnectionString = common.ToString();
            SqliteGnsStoreLog.Opened(_logger, _databasePath, SchemaVersion, created);
        }
        catch
        {
            _writer?.Dispose();
            _writeConnection?.Dispose();
            _lockFile.Dispose();
            throw;
        }

        _cache = new RecordCache(options.CacheCapacity);
        _queue = Channel.CreateBounded<WriteOperation>(new BoundedChannelOptions(options.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
        });
        _writerLoop = Task.Run(RunWriterAsync);
    }

    /// <summary>Transactions committed so far (each may hold many writes).</summary>
    internal long CommitCount => Interlocked.Read(ref _commitCount);

    /// <summary>Entries in the read cache.</summary>
    internal int CachedCount => _cache.Count;

    /// <inheritdoc />
    /// <remarks>
    /// Throws <see cref="OperationCanceledException"/> only when the write was not applied: cancellation
    /// is honoured while waiting for queue space and until the writer takes the write into a batch.
    /// </remarks>
    public ValueTask<StoreResult> PutAsync(GnsRecord record, bool requireExisting, CancellationToken cancellationToken = default)
        => PutAsync(record, requireExisting, null, cancellationToken);

    /// <inheritdoc />
    public ValueTask<StoreResult> PutAsync(GnsRecord record, bool requireExisting, IPAddress? source, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        return EnqueueAsync(new WriteOperation(record, record.Guid, record.Version, requireExisting, cancellationToken) { Source = source });
    }

    /// <inheritdoc />
    public ValueTask<StoreResult> RemoveAsync(HostGuid guid, ulong version, CancellationToken cancellationToken = default)
        => EnqueueAsync(new WriteOperation(null, guid, version, requireExisting: true, cancellationToken));

    public ValueTask<GnsRecord?> GetAsync(HostGuid guid, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Load(guid)?.Record);
    }

    public ValueTask<ulong?> GetVersionAsync(HostGuid guid, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Load(guid)?.Version);
    }

    public ValueTask<GnsRecord?> GetByNameAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        if (GnsStoreRules.CanonicalName(name) is not { } canonical)
        {
            return ValueTask.FromResult<GnsRecord?>(null);
        }

        var session = RentReader();
        try
        {
            var command = session.ByName;
            command.Parameters[0].Value = canonical;
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                if (TryReadGuid(reader, 0, out var guid)
                    && DecodeLive(guid, reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetFieldValue<byte[]>(2)) is { } record)
                {
                    if (record.Name == canonical)
                    {
                        return ValueTask.FromResult<GnsRecord?>(record);
                    }

                    SqliteGnsStoreLog.CorruptRow(_logger, guid.ToString(), "the name column does not match the record's name");
                }
            }

            return ValueTask.FromResult<GnsRecord?>(null);
        }
        finally
        {
            ReturnReader(session);
        }
    }

    public ValueTask<ReverseResult> ReverseAsync(IPAddress address, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        GnsStoreRules.ValidateReverseLimit(limit);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        var session = RentReader();
        try
        {
            var command = session.Reverse;
            command.Parameters[0].Value = Locator.Normalize(address).GetAddressBytes();
            command.Parameters[1].Value = (long)limit + 1;
            command.Parameters[2].Value = _time.GetUtcNow().ToUnixTimeMilliseconds();
            var guids = new List<HostGuid>();
            var truncated = false;
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                if (guids.Count == limit)
                {
                    truncated = true;
                    break;
                }

                if (TryReadGuid(reader, 0, out var guid))
                {
                    guids.Add(guid);
                }
            }

            return ValueTask.FromResult(new ReverseResult(guids, truncated));
        }
        finally
        {
            ReturnReader(session);
        }
    }

    /// <summary>
    /// Stops taking writes, lets the writer finish every write already queued (so each queued caller gets
    /// its real result), then closes every connection and releases the data folder.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            await _writerLoop.ConfigureAwait(false);
            return;
        }

        _queue.Writer.TryComplete();
        await _writerLoop.ConfigureAwait(false);
        _writer.Dispose();
        _writeConnection.Dispose();
        DisposeIdleReaders();
        SqliteGnsStoreLog.Closed(_logger, _databasePath, CommitCount);
        await _lockFile.DisposeAsync().ConfigureAwait(false);
    }

    private async ValueTask<StoreResult> EnqueueAsync(WriteOperation operation)
    {
        ThrowIfDisposed();
        if (!_queue.Writer.TryWrite(operation))
        {
            try
            {
                await _queue.Writer.WriteAsync(operation, operation.CancellationToken).ConfigureAwait(false);
            }
            catch (ChannelClosedException e)
            {
                ThrowIfDisposed();
                throw new InvalidOperationException("The GNS store's writer has stopped; see the log.", e.InnerException ?? e);
            }
        }

        return await operation.Task.ConfigureAwait(false);
    }

    /// <summary>The cached entry, or the row read from SQLite (then cached); null when the GUID was never stored.</summary>
    private CachedEntry? Load(HostGuid guid)
    {
        ThrowIfDisposed();
        if (_cache.TryGet(guid, out var cached))
        {
            return cached;
        }

        var stamp = _cache.Stamp(guid);
        CachedEntry entry;
        var session = RentReader();
        try
        {
            var command = session.ByGuid;
            command.Parameters[0].Value = guid.ToByteArray();
            using var reader = command.ExecuteReader();
            if (!reader.Read())
            {
                return null;
            }

            var version = reader.GetInt64(0);
            var removed = reader.GetInt64(1) != 0;
            var record = removed ? null : DecodeLive(guid, version, reader.IsDBNull(2) ? null : reader.GetFieldValue<byte[]>(2));

            // A live row that does not decode is cached without a record: lookups say "absent" and the
            // version still protects against rollback, and the row is logged once rather than on every read.
            entry = new CachedEntry(unchecked((ulong)version), record);
        }
        finally
        {
            ReturnReader(session);
        }

        _cache.TryFill(guid, entry, stamp);
        return entry;
    }

    /// <summary>The record in a live row, or null (logged) when the bytes are missing, malformed or disagree with the row.</summary>
    private GnsRecord? DecodeLive(HostGuid guid, long storedVersion, byte[]? encoded)
    {
        if (encoded is null)
        {
            SqliteGnsStoreLog.CorruptRow(_logger, guid.ToString(), "a live row without an encoded record");
            return null;
        }

        GnsRecord record;
        try
        {
            record = GnsRecord.Decode(encoded);
        }
        catch (MalformedMessageException e)
        {
            SqliteGnsStoreLog.CorruptRow(_logger, guid.ToString(), e.Message);
            return null;
        }

        if (record.Guid != guid || record.Version != unchecked((ulong)storedVersion))
        {
            SqliteGnsStoreLog.CorruptRow(_logger, guid.ToString(), "the encoded record's GUID or version does not match the row");
            return null;
        }

        return record;
    }

    private bool TryReadGuid(SqliteDataReader reader, int ordinal, out HostGuid guid)
    {
        var bytes = reader.IsDBNull(ordinal) ? [] : reader.GetFieldValue<byte[]>(ordinal);
        if (bytes.Length != HostGuid.Size)
        {
            guid = default;
            SqliteGnsStoreLog.CorruptRow(_logger, Convert.ToHexStringLower(bytes), $"a GUID of {bytes.Length} bytes");
            return false;
        }

        guid = HostGuid.FromBytes(bytes);
        return true;
    }

    private ReadSession RentReader()
    {
        if (_idleReaders.TryDequeue(out var session))
        {
            Interlocked.Decrement(ref _idleReaderCount);
            return session;
        }

        return new ReadSession(_readConnectionString, _busyTimeout);
    }

    private void ReturnReader(ReadSession session)
    {
        if (Volatile.Read(ref _disposed) == 0)
        {
            if (Interlocked.Increment(ref _idleReaderCount) <= _maxIdleReaders)
            {
                _idleReaders.Enqueue(session);
                if (Volatile.Read(ref _disposed) != 0)
                {
                    // Disposal may have emptied the pool before this session went back: close it here.
                    DisposeIdleReaders();
                }

                return;
            }

            Interlocked.Decrement(ref _idleReaderCount);
        }

        session.Dispose();
    }

    private void DisposeIdleReaders()
    {
        while (_idleReaders.TryDequeue(out var session))
        {
            session.Dispose();
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>A read-only connection with its statements prepared once.</summary>
    private sealed class ReadSession : IDisposable
    {
        private readonly SqliteConnection _connection;

        public ReadSession(string connectionString, TimeSpan busyTimeout)
        {
            _connection = new SqliteConnection(connectionString);
            try
            {
                _connection.Open();
                ConfigureBusyTimeout(_connection, busyTimeout);
                ByGuid = Prepare(_connection, "SELECT version, removed, encoded FROM records WHERE guid = $guid;", "$guid");
                ByName = Prepare(_connection, "SELECT guid, version, encoded FROM records WHERE name = $name AND removed = 0;", "$name");
                Reverse = Prepare(_connection, """
                    SELECT guid FROM addresses WHERE address = $address AND expires > $now
                    ORDER BY attested DESC, guid LIMIT $limit;
                    """, "$address", "$limit", "$now");
            }
            catch
            {
                _connection.Dispose();
                throw;
            }
        }

        public SqliteCommand ByGuid { get; }

        public SqliteCommand ByName { get; }

        public SqliteCommand Reverse { get; }

        public void Dispose()
        {
            ByGuid.Dispose();
            ByName.Dispose();
            Reverse.Dispose();
            _connection.Dispose();
        }
    }

    private static SqliteCommand Prepare(SqliteConnection connection, string sql, params string[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var name in parameters)
        {
            command.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        command.Prepare();
        return command;
    }
}
