using System.Net;
using Microsoft.Extensions.Logging;

namespace Mobility.Relay;

/// <summary>The relay's log messages, event ids 10000-10499 (docs/architecture.md, "Logging"). Whatever a peer can cause is at Debug.</summary>
internal static partial class RelayLog
{
    [LoggerMessage(10000, LogLevel.Information, "Relay admits the {Count} GUIDs of its allow-list")]
    public static partial void AllowList(ILogger logger, int count);

    [LoggerMessage(10001, LogLevel.Debug, "Host {Guid} registered from {Remote} (replacing an older registration: {Replaced})")]
    public static partial void Registered(ILogger logger, string guid, EndPoint? remote, bool replaced);

    [LoggerMessage(10002, LogLevel.Debug, "Host {Guid} unregistered")]
    public static partial void Unregistered(ILogger logger, string guid);

    [LoggerMessage(10003, LogLevel.Debug, "Control connection of {Guid} idle too long: closed")]
    public static partial void ControlIdle(ILogger logger, string guid);

    [LoggerMessage(10010, LogLevel.Debug, "Refused {Remote}: {Status} ({Why})")]
    public static partial void Refused(ILogger logger, EndPoint? remote, string status, string why);

    [LoggerMessage(10011, LogLevel.Debug, "Spliced {Remote} to host {Guid}")]
    public static partial void Spliced(ILogger logger, EndPoint? remote, string guid);

    [LoggerMessage(10012, LogLevel.Debug, "Splice to {Guid} ended by the {Side}: {Up} bytes to the host, {Down} bytes back")]
    public static partial void SpliceEnded(ILogger logger, string guid, string side, long up, long down);

    [LoggerMessage(10100, LogLevel.Debug, "Splice to {Guid} cut because the host's registration ended: {Up} bytes to the host, {Down} bytes back")]
    public static partial void SpliceCut(ILogger logger, string guid, long up, long down);

    [LoggerMessage(10020, LogLevel.Debug, "Connection from {Remote} is not the relay protocol: {Why}")]
    public static partial void Malformed(ILogger logger, EndPoint? remote, string why);

    [LoggerMessage(10021, LogLevel.Debug, "Connection from {Remote} sent no first message or proof in time: closed")]
    public static partial void FirstMessageTimeout(ILogger logger, EndPoint? remote);

    [LoggerMessage(10022, LogLevel.Debug, "Connection from {Remote} closed at once: {Max} connections are not identified yet")]
    public static partial void TooManyUnidentified(ILogger logger, EndPoint? remote, int max);

    [LoggerMessage(10024, LogLevel.Debug, "Connection from {Remote} closed at once: its source holds {Max} connections that are not identified yet")]
    public static partial void TooManyUnidentifiedFromSource(ILogger logger, EndPoint? remote, int max);

    [LoggerMessage(10023, LogLevel.Debug, "Connection from {Remote} failed: {Reason}")]
    public static partial void ConnectionFailed(ILogger logger, EndPoint? remote, string reason);
}
