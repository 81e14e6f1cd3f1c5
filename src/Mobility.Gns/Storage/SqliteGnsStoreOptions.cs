using System.ComponentModel.DataAnnotations;

namespace Mobility.Gns.Storage;

/// <summary>Where and how <see cref="SqliteGnsStore"/> keeps its data. Bound from configuration section <c>Gns:Sqlite</c>; the server sets <see cref="DataDirectory"/> from its own data folder.</summary>
public sealed class SqliteGnsStoreOptions
{
    /// <summary>The file name of the database inside <see cref="DataDirectory"/>.</summary>
    public const string DatabaseFileName = "gns.db";

    /// <summary>The file inside <see cref="DataDirectory"/> that a running store holds locked, so that no second store opens the folder.</summary>
    public const string LockFileName = "gns.lock";

    /// <summary>The folder that holds <see cref="DatabaseFileName"/> (and its WAL and lock files). Created if missing.</summary>
    [Required]
    public string DataDirectory { get; set; } = "";

    /// <summary>
    /// At most this many queued writes share one transaction and one fsync. 512 keeps a commit to a few
    /// hundred kilobytes of WAL and a few milliseconds of work, so the first write of a batch does not
    /// wait long for the last, while a burst of updates still costs one fsync per 512 instead of one each.
    /// </summary>
    [Range(1, 65_536)]
    public int MaxBatchSize { get; set; } = 512;

    /// <summary>
    /// Writes waiting for the writer loop. When the queue is full, callers wait (back-pressure) instead
    /// of memory growing. 4096 is eight full batches: enough to absorb a burst while one commit is
    /// syncing, small enough (a few megabytes of records) that an overloaded server pushes back early.
    /// </summary>
    [Range(1, 1_048_576)]
    public int QueueCapacity { get; set; } = 4096;

    /// <summary>
    /// Records (live or tombstone) kept in memory by GUID so that hot lookups do not touch SQLite; 0
    /// turns the cache off. A miss costs about 50 times a hit (docs/benchmarks.md: a cache smaller
    /// than the 100,000 stored records cut lookups/s by 2.3x), so the default holds 262,144 records:
    /// at most about 256 MB at about 1 KB per record with its locators, and only as records are used.
    /// </summary>
    [Range(0, 16_777_216)]
    public int CacheCapacity { get; set; } = 262_144;

    /// <summary>
    /// Idle read connections kept open for cache misses, name and reverse lookups. Reads beyond this many
    /// at once open (and then close) extra connections. 8 covers the thread pool of a small server; each
    /// idle connection costs its SQLite page cache (about 2 MB at most).
    /// </summary>
    [Range(0, 256)]
    public int MaxIdleReadConnections { get; set; } = 8;

    /// <summary>
    /// How long a connection waits for a lock held by another connection (for example a WAL checkpoint)
    /// before failing. 5 seconds outlasts any checkpoint of a healthy disk.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan BusyTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Throws <see cref="ArgumentException"/> when an option is out of range.</summary>
    public void Validate()
    {
        var context = new ValidationContext(this);
        var errors = new List<ValidationResult>();
        if (!Validator.TryValidateObject(this, context, errors, validateAllProperties: true))
        {
            throw new ArgumentException("Invalid SQLite store options: " + string.Join("; ", errors.Select(e => e.ErrorMessage)));
        }
    }
}
