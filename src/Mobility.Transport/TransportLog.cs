using System.Net;
using Microsoft.Extensions.Logging;

namespace Mobility.Transport;

/// <summary>Log messages of the transport. Everything a remote peer can cause is at Debug.</summary>
internal static partial class TransportLog
{
    [LoggerMessage(9001, LogLevel.Debug, "Connection {Token:x32} lost its path to {Remote}: {Reason}")]
    public static partial void PathLost(ILogger logger, UInt128 token, IPEndPoint? remote, string reason);

    [LoggerMessage(9002, LogLevel.Debug, "Connection {Token:x32} resumed via {Remote} after {StallMs:0.0} ms")]
    public static partial void Resumed(ILogger logger, UInt128 token, IPEndPoint? remote, double stallMs);

    [LoggerMessage(9003, LogLevel.Debug, "Connection {Token:x32}: new flow {Local} -> {Remote}")]
    public static partial void FlowConnected(ILogger logger, UInt128 token, IPEndPoint? local, IPEndPoint remote);

    [LoggerMessage(9004, LogLevel.Debug, "Connection {Token:x32}: resume via {Remote} failed: {Reason}")]
    public static partial void ResumeAttemptFailed(ILogger logger, UInt128 token, IPEndPoint remote, string reason);

    [LoggerMessage(9005, LogLevel.Debug, "Connection {Token:x32}: resume via {Remote} refused: {Reason}")]
    public static partial void ResumeRefused(ILogger logger, UInt128 token, IPEndPoint remote, string reason);

    [LoggerMessage(9006, LogLevel.Debug, "Connection {Token:x32}: bad frame: {Reason}")]
    public static partial void BadFrame(ILogger logger, UInt128 token, string reason);

    [LoggerMessage(9007, LogLevel.Information, "Connection {Token:x32} failed: {Reason}")]
    public static partial void ConnectionFailed(ILogger logger, UInt128 token, string reason);

    [LoggerMessage(9008, LogLevel.Debug, "Connection {Token:x32} completed")]
    public static partial void ConnectionCompleted(ILogger logger, UInt128 token);

    [LoggerMessage(9009, LogLevel.Warning, "A diagnostics handler threw")]
    public static partial void DiagnosticHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(9010, LogLevel.Debug, "Locating {Guid} failed: {Reason}")]
    public static partial void LocateFailed(ILogger logger, string guid, string reason);

    [LoggerMessage(9011, LogLevel.Debug, "Connection {Token:x32}: reconnect attempt {Attempt}")]
    public static partial void Reconnecting(ILogger logger, UInt128 token, int attempt);

    [LoggerMessage(9013, LogLevel.Trace, "Connection {Token:x32}: supervisor woke in state {State}")]
    public static partial void SupervisorWoke(ILogger logger, UInt128 token, string state);

    [LoggerMessage(9012, LogLevel.Error, "Connection {Token:x32}: reconnect loop failed")]
    public static partial void SupervisorFailed(ILogger logger, UInt128 token, Exception exception);

    [LoggerMessage(9020, LogLevel.Debug, "Flow from {Remote} dropped during handshake: {Reason}")]
    public static partial void HandshakeDropped(ILogger logger, IPEndPoint? remote, string reason);

    [LoggerMessage(9021, LogLevel.Debug, "Flow from {Remote} refused: {Reason}")]
    public static partial void FlowRefused(ILogger logger, IPEndPoint? remote, string reason);

    [LoggerMessage(9022, LogLevel.Information, "Mobile listener on {Endpoint}")]
    public static partial void Listening(ILogger logger, IPEndPoint endpoint);

    [LoggerMessage(9023, LogLevel.Debug, "Accept on {Endpoint} failed: {Reason}")]
    public static partial void AcceptFailed(ILogger logger, IPEndPoint endpoint, string reason);

    // The first connect (MobileConnector.Race.cs).
    [LoggerMessage(9750, LogLevel.Debug, "Connect to {Server}: {Count} endpoints of the peer were pushed during the handshake: {Endpoints}")]
    public static partial void EndpointsPushed(ILogger logger, string server, int count, string endpoints);

    [LoggerMessage(9751, LogLevel.Debug, "Connect to {Server}: every endpoint failed ({Tried} tried, the last: {Reason}); looking the peer up once more")]
    public static partial void LookingUpAgain(ILogger logger, string server, int tried, string reason);

    [LoggerMessage(9950, LogLevel.Debug, "Connect to {Server}: the endpoints of the kept record ({Tried} tried) proved nothing within {DelayMs} ms; looking the peer up too")]
    public static partial void CachedEndpointsSlow(ILogger logger, string server, int tried, double delayMs);

    [LoggerMessage(9752, LogLevel.Debug, "Connect to {Server}: the lookup named no endpoint not tried yet")]
    public static partial void NothingNew(ILogger logger, string server);

    [LoggerMessage(9350, LogLevel.Debug, "Connect to {Server}: the relay {Relay} races the direct endpoints from the start")]
    public static partial void RelayRacesAtOnce(ILogger logger, string server, IPEndPoint relay);

    [LoggerMessage(9351, LogLevel.Debug, "Connect to {Server}: handshake via {Endpoint} started")]
    public static partial void HandshakeStarted(ILogger logger, string server, IPEndPoint endpoint);

    [LoggerMessage(9352, LogLevel.Debug, "Connect to {Server}: handshake via {Endpoint} failed after {ElapsedMs:0} ms: {Reason}")]
    public static partial void HandshakeFailed(ILogger logger, string server, IPEndPoint endpoint, double elapsedMs, string reason);

    [LoggerMessage(9353, LogLevel.Debug, "Connect to {Server}: the lookup named {Count} endpoints in {ElapsedMs:0} ms")]
    public static partial void Located(ILogger logger, string server, int count, double elapsedMs);

    [LoggerMessage(9354, LogLevel.Debug, "Connect to {Server}: the handshake via {Endpoint} won after {ElapsedMs:0} ms")]
    public static partial void HandshakeWon(ILogger logger, string server, IPEndPoint endpoint, double elapsedMs);
}
