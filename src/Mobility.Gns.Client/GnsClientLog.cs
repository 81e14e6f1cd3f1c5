using System.Net;
using Microsoft.Extensions.Logging;

namespace Mobility.Gns.Client;

/// <summary>
/// Log messages of the GNS client. Anything a remote peer can cause (bad or stray datagrams,
/// invalid records) is Debug, so a peer cannot flood the log.
/// </summary>
internal static partial class GnsClientLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Dropped a datagram from {Source}: not the GNS at {Server}.")]
    public static partial void StrayDatagram(ILogger logger, EndPoint source, IPEndPoint server);

    [LoggerMessage(EventId = 2, Level = LogLevel.Debug, Message = "Dropped a malformed datagram from the GNS: {Reason}")]
    public static partial void MalformedReply(ILogger logger, string reason);

    [LoggerMessage(EventId = 3, Level = LogLevel.Debug, Message = "Dropped a reply with request id {RequestId}: no request is waiting for it.")]
    public static partial void UnmatchedReply(ILogger logger, uint requestId);

    [LoggerMessage(EventId = 4, Level = LogLevel.Debug, Message = "Rejected a reply to request {RequestId}: {Reason}")]
    public static partial void RejectedReply(ILogger logger, uint requestId, string reason);

    [LoggerMessage(EventId = 5, Level = LogLevel.Debug, Message = "No reply from the GNS at {Server} to request {RequestId} within {Timeout} (attempt {Attempt} of {Attempts}).")]
    public static partial void AttemptTimedOut(ILogger logger, IPEndPoint server, uint requestId, TimeSpan timeout, int attempt, int attempts);

    [LoggerMessage(EventId = 6, Level = LogLevel.Debug, Message = "Sending to the GNS at {Server} failed: {Reason}")]
    public static partial void SendFailed(ILogger logger, IPEndPoint server, string reason);

    [LoggerMessage(EventId = 7, Level = LogLevel.Debug, Message = "Receive error ignored: {Reason}")]
    public static partial void TransientReceiveError(ILogger logger, string reason);

    [LoggerMessage(EventId = 8, Level = LogLevel.Error, Message = "The GNS client's socket failed; the client is closed.")]
    public static partial void ReceiveLoopFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 9, Level = LogLevel.Debug, Message = "GNS at {Server} unreachable over UDP; trying gRPC at {Grpc}.")]
    public static partial void FallingBackToGrpc(ILogger logger, IPEndPoint server, Uri grpc);

    [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "Reverse lookup of {Address} truncated over UDP; fetching the full list over gRPC.")]
    public static partial void ReverseTruncated(ILogger logger, IPAddress address);

    [LoggerMessage(EventId = 11, Level = LogLevel.Debug, Message = "Cache hit for {Key}.")]
    public static partial void CacheHit(ILogger logger, string key);

    [LoggerMessage(EventId = 12, Level = LogLevel.Debug, Message = "gRPC at {Grpc} unreachable for an update; checking and updating over UDP at {Server}.")]
    public static partial void GrpcUnavailableForUpdate(ILogger logger, Uri grpc, IPEndPoint server);

    [LoggerMessage(EventId = 20, Level = LogLevel.Debug, Message = "Watch of {Count} GUIDs connected to {Grpc}.")]
    public static partial void WatchConnected(ILogger logger, int count, Uri grpc);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Watch stream to {Grpc} lost ({Reason}); reconnecting in {Delay} (failure {Failures}).")]
    public static partial void WatchReconnecting(ILogger logger, Uri grpc, string reason, TimeSpan delay, int failures);

    [LoggerMessage(EventId = 22, Level = LogLevel.Debug, Message = "Dropped a watch event: {Reason}")]
    public static partial void WatchEventRejected(ILogger logger, string reason);

    [LoggerMessage(EventId = 24, Level = LogLevel.Debug, Message = "Local addresses changed: new gRPC connection to {Grpc}; watches re-open now.")]
    public static partial void GrpcReset(ILogger logger, Uri grpc);

    [LoggerMessage(EventId = 25, Level = LogLevel.Debug, Message = "Watch of {Count} GUIDs re-opening on a new connection to {Grpc} (local addresses changed).")]
    public static partial void WatchReopening(ILogger logger, int count, Uri grpc);
}
