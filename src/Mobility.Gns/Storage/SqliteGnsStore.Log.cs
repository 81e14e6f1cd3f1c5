using Microsoft.Extensions.Logging;
using Mobility.Protocol.Identity;

namespace Mobility.Gns.Storage;

/// <summary>Log events of <see cref="SqliteGnsStore"/> (ids 1500-1599).</summary>
internal static partial class SqliteGnsStoreLog
{
    public const int CorruptRowId = 1501;
    public const int OperationFailedId = 1502;
    public const int BatchFailedId = 1503;

    [LoggerMessage(1500, LogLevel.Information, "GNS store opened at {Path} (schema version {SchemaVersion}, created: {Created})")]
    public static partial void Opened(ILogger logger, string path, long schemaVersion, bool created);

    [LoggerMessage(CorruptRowId, LogLevel.Warning, "Skipping corrupt row for GUID {Guid}: {Reason}")]
    public static partial void CorruptRow(ILogger logger, string guid, string reason);

    [LoggerMessage(OperationFailedId, LogLevel.Error, "A GNS store write for {Guid} failed and was rolled back; the rest of its batch goes on")]
    public static partial void OperationFailed(ILogger logger, Exception exception, HostGuid guid);

    [LoggerMessage(BatchFailedId, LogLevel.Error, "Committing a batch of {Count} GNS store writes failed; all of them were rolled back")]
    public static partial void BatchFailed(ILogger logger, Exception exception, int count);

    [LoggerMessage(1504, LogLevel.Critical, "The GNS store writer stopped; further writes fail")]
    public static partial void WriterFailed(ILogger logger, Exception exception);

    [LoggerMessage(1505, LogLevel.Information, "GNS store at {Path} closed after {Commits} commits")]
    public static partial void Closed(ILogger logger, string path, long commits);

    [LoggerMessage(1506, LogLevel.Debug, "Rolling back a failed batch: {Reason} (SQLite had already rolled it back)")]
    public static partial void RollbackSkipped(ILogger logger, string reason);
}
