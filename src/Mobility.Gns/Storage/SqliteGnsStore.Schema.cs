using Microsoft.Data.Sqlite;

namespace Mobility.Gns.Storage;

public sealed partial class SqliteGnsStore
{
    /// <summary>The schema this code writes, kept in <c>PRAGMA user_version</c>. 0 means a new, empty database.</summary>
    internal const long SchemaVersion = 2;

    /// <summary>
    /// <c>version</c> holds the unsigned 64-bit record version as the signed 64-bit integer with the
    /// same bits; versions are only ever compared in C#, as <see cref="ulong"/>, never in SQL. A
    /// tombstone (<c>removed = 1</c>) keeps the GUID's key and highest version and drops the name, the
    /// encoded record and the address rows. NULL names are distinct, so the unique index holds only
    /// live names. <c>addresses</c> is the reverse index (one row per address claim, see
    /// <see cref="Claims.AddressClaim"/>): keyed by (address, guid), so a reverse lookup reads one range
    /// of the primary key (bounded by the claim limits) and sorts it by kind, then GUID; the second index lets an
    /// update drop a GUID's rows, the third counts and purges the unattested claims of one source.
    /// </summary>
    private const string CreateSchemaV2 = """
        CREATE TABLE records (
            guid       BLOB    NOT NULL PRIMARY KEY,
            public_key BLOB    NOT NULL,
            version    INTEGER NOT NULL,
            name       TEXT,
            encoded    BLOB,
            removed    INTEGER NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX records_by_name ON records (name);
        CREATE TABLE addresses (
            address  BLOB    NOT NULL,
            guid     BLOB    NOT NULL,
            attested INTEGER NOT NULL DEFAULT 0,
            expires  INTEGER NOT NULL DEFAULT 0,
            source   BLOB,
            PRIMARY KEY (address, guid)
        ) WITHOUT ROWID;
        CREATE INDEX addresses_by_guid ON addresses (guid);
        CREATE INDEX addresses_by_source ON addresses (source, expires) WHERE source IS NOT NULL;
        """;

    /// <summary>
    /// Version 1 to 2: the claim columns. Rows of version 1 carry no evidence, so they become
    /// unattested claims of no counted source that expire <c>$expires</c> (one unattested lifetime after
    /// the upgrade) unless their records are updated before.
    /// </summary>
    private const string UpgradeV1ToV2 = """
        ALTER TABLE addresses ADD COLUMN attested INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE addresses ADD COLUMN expires INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE addresses ADD COLUMN source BLOB;
        CREATE INDEX addresses_by_source ON addresses (source, expires) WHERE source IS NOT NULL;
        UPDATE addresses SET expires = $expires;
        """;

    /// <summary>Creates the schema in a new database, upgrades a version 1 one, or checks that an existing one is one this code reads.</summary>
    /// <param name="legacyClaimExpiry">Unix ms at which claims carried over from version 1 expire.</param>
    /// <returns>True when the schema was created.</returns>
    private static bool EnsureSchema(SqliteConnection connection, long legacyClaimExpiry)
    {
        using var transaction = connection.BeginTransaction(deferred: false);
        var version = Scalar<long>(connection, transaction, "PRAGMA user_version;");
        if (version == SchemaVersion)
        {
            transaction.Commit();
            return false;
        }

        if (version is not 0 and not 1)
        {
            throw new InvalidDataException(
                $"The GNS database has schema version {version}; this build reads version {SchemaVersion}. Use a matching build or a new data folder.");
        }

        using (var create = connection.CreateCommand())
        {
            create.Transaction = transaction;
            create.CommandText = (version == 0 ? CreateSchemaV2 : UpgradeV1ToV2) + $"PRAGMA user_version = {SchemaVersion};";
            if (version == 1)
            {
                create.Parameters.AddWithValue("$expires", legacyClaimExpiry);
            }

            create.ExecuteNonQuery();
        }

        transaction.Commit();
        return version == 0;
    }

    private static void ConfigureWriter(SqliteConnection connection, TimeSpan busyTimeout)
    {
        ConfigureBusyTimeout(connection, busyTimeout);
        var mode = Scalar<string>(connection, null, "PRAGMA journal_mode = WAL;");
        if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException($"SQLite refused WAL mode (journal_mode is '{mode}'); the data folder must be on a local file system.");
        }

        // FULL syncs the WAL on every commit: an acknowledged write survives power loss, not only a crash.
        Execute(connection, "PRAGMA synchronous = FULL;");
    }

    private static void ConfigureBusyTimeout(SqliteConnection connection, TimeSpan busyTimeout)
        => Execute(connection, $"PRAGMA busy_timeout = {(long)busyTimeout.TotalMilliseconds};");

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static T Scalar<T>(SqliteConnection connection, SqliteTransaction? transaction, string sql)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            throw new InvalidDataException($"'{sql}' returned no row.");
        }

        return reader.GetFieldValue<T>(0);
    }
}
