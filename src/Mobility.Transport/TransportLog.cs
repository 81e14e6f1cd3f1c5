using System.Net;
using Microsoft.Extensions.Logging;

namespace Mobility.Transport;

/// <summary>Log messages of the transport. Everything a remote peer can cause is at Debug.</summary>
internal static partial class TransportLog
{
    [LoggerMessage(EventId = 7001, Level = LogLevel.Debug, Message = "Connection {Token:x32} lost its path to {Remote}: {Reason}")]
    public static partial void PathLost(ILogger logger, UInt128 token, IPEndPoint? remote, string reason);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Debug, Message = "Connection {Token:x32} resumed via {Remote} after {StallMs:0.0} ms")]
    public static partial void Resumed(ILogger logger, UInt128 token, IPEndPoint? remote, double stallMs);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Debug, Message = "Connection {Token:x32}: new flow {Local} -> {Remote}")]
    public static partial void FlowConnected(ILogger logger, UInt128 token, IPEndPoint? local, IPEndPoint remote);

    [LoggerMessage(EventId = 7004, Level = LogLevel.Debug, Message = "Connection {Token:x32}: resume via {Remote} failed: {Reason}")]
    public static partial void ResumeAttemptFailed(ILogger logger, UInt128 token, IPEndPoint remote, string reason);

    [LoggerMessage(EventId = 7005, Level = LogLevel.Debug, Message = "Connection {Token:x32}: resume via {Remote} refused: {Reason}")]
    public static partial void ResumeRefused(ILogger logger, UInt128 token, IPEndPoint remote, string reason);

    [LoggerMessage(EventId = 7006, Level = LogLevel.Debug, Message = "Connection {Token:x32}: bad frame: {Reason}")]
    public static partial void BadFrame(ILogger logger, UInt128 token, string reason);

    [LoggerMessage(EventId = 7007, Level = LogLevel.Information, Message = "Connection {Token:x32} failed: {Reason}")]
    public static partial void ConnectionFailed(ILogger logger, UInt128 token, string reason);

    [LoggerMessage(EventId = 7008, Level = LogLevel.Debug, Message = "Connection {Token:x32} completed")]
    public static partial void ConnectionCompleted(ILogger logger, UInt128 token);

    [LoggerMessage(EventId = 7009, Level = LogLevel.Warning, Message = "A diagnostics handler threw")]
    public static partial void DiagnosticHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 7010, Level = LogLevel.Debug, Message = "Locating {Guid} failed: {Reason}")]
    public static partial void LocateFailed(ILogger logger, string guid, string reason);

    [LoggerMessage(EventId = 7011, Level = LogLevel.Debug, Message = "Connection {Token:x32}: reconnect attempt {Attempt}")]
    public static partial void Reconnecting(ILogger logger, UInt128 token, int attempt);

    [LoggerMessage(EventId = 7013, Level = LogLevel.Trace, Message = "Connection {Token:x32}: supervisor woke in state {State}")]
    public static partial void SupervisorWoke(ILogger logger, UInt128 token, string state);

    [LoggerMessage(EventId = 7012, Level = LogLevel.Error, Message = "Connection {Token:x32}: reconnect loop failed")]
    public static partial void SupervisorFailed(ILogger logger, UInt128 token, Exception exception);

    [LoggerMessage(EventId = 7020, Level = LogLevel.Debug, Message = "Flow from {Remote} dropped during handshake: {Reason}")]
    public static partial void HandshakeDropped(ILogger logger, IPEndPoint? remote, string reason);

    [LoggerMessage(EventId = 7021, Level = LogLevel.Debug, Message = "Flow from {Remote} refused: {Reason}")]
    public static partial void FlowRefused(ILogger logger, IPEndPoint? remote, string reason);

    [LoggerMessage(EventId = 7022, Level = LogLevel.Information, Message = "Mobile listener on {Endpoint}")]
    public static partial void Listening(ILogger logger, IPEndPoint endpoint);

    [LoggerMessage(EventId = 7023, Level = LogLevel.Debug, Message = "Accept on {Endpoint} failed: {Reason}")]
    public static partial void AcceptFailed(ILogger logger, IPEndPoint endpoint, string reason);
}
