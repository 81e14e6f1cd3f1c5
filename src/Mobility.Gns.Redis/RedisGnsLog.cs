using Microsoft.Extensions.Logging;
using Mobility.Protocol.Identity;

namespace Mobility.Gns.Redis;

/// <summary>Log events of the Redis store and change feed (ids 1600-1699, docs/architecture.md "Logging").</summary>
internal static partial class RedisGnsLog
{
    // ---- RedisGnsStore (1600-1649) ------------------------------------------------------------

    [LoggerMessage(1600, LogLevel.Information, "Redis GNS store opened: {Servers}; WAITAOF per commit: {WaitAof}")]
    public static partial void Opened(ILogger logger, string servers, bool waitAof);

    [LoggerMessage(1601, LogLevel.Warning,
        "Redis is not configured so that acknowledged updates survive a crash (needs appendonly yes, appendfsync always, or Redis 7.2+ for WAITAOF): {Servers}")]
    public static partial void NotDurable(ILogger logger, string servers);

    [LoggerMessage(1602, LogLevel.Warning, "Skipping corrupt Redis record of GUID {Guid}: {Reason}")]
    public static partial void CorruptRecord(ILogger logger, string guid, string reason);

    [LoggerMessage(1603, LogLevel.Warning, "Malformed claim of name {Name} ('{Value}') treated as free")]
    public static partial void CorruptClaim(ILogger logger, string name, string value);

    [LoggerMessage(1604, LogLevel.Warning, "Deleting malformed reverse index entry '{Entry}' of {Address}")]
    public static partial void CorruptIndexEntry(ILogger logger, string address, string entry);

    [LoggerMessage(1605, LogLevel.Debug, "Took over the dead claim '{Claim}' of name {Name} for {Guid}")]
    public static partial void ClaimTakenOver(ILogger logger, string name, string claim, HostGuid guid);

    [LoggerMessage(1606, LogLevel.Error, "Record {Guid} v{Version} was stored but its name {Name} was taken over before the update finished")]
    public static partial void ClaimLost(ILogger logger, HostGuid guid, ulong version, string name);

    [LoggerMessage(1607, LogLevel.Debug, "Reverse lookup of {Address} stopped after examining {Scanned} index entries")]
    public static partial void ReverseScanBounded(ILogger logger, string address, long scanned);

    // ---- RedisRecordChangeFeed (1650-1669) -----------------------------------------------------

    [LoggerMessage(1650, LogLevel.Information, "Redis change feed subscribed to {Count} channel(s), sharded: {Sharded}")]
    public static partial void Started(ILogger logger, int count, bool sharded);

    [LoggerMessage(1651, LogLevel.Warning, "Dropped a malformed change message on {Channel}: {Reason}")]
    public static partial void MalformedMessage(ILogger logger, string channel, string reason);

    [LoggerMessage(1652, LogLevel.Debug, "Unsubscribing from a change channel failed")]
    public static partial void UnsubscribeFailed(ILogger logger, Exception exception);

    [LoggerMessage(1653, LogLevel.Warning, "Redis change feed may have missed changes ({Reason}): record cache dropped until the feed is verified again")]
    public static partial void FeedUnverified(ILogger logger, string reason);

    [LoggerMessage(1654, LogLevel.Information, "Redis change feed verified on every channel: record cache on")]
    public static partial void CacheLive(ILogger logger);
}
