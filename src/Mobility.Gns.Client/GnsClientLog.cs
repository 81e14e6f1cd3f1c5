using System.Net;
using Microsoft.Extensions.Logging;

namespace Mobility.Gns.Client;

/// <summary>
/// Log messages of the GNS client. Anything a remote peer can cause (bad or stray datagrams,
/// invalid records) is Debug, so a peer cannot flood the log.
/// </summary>
internal static partial class GnsClientLog
{
    [LoggerMessage(1801, LogLevel.Debug, "Dropped a datagram from {Source}: not the GNS at {Server}.")]
    public static partial void StrayDatagram(ILogger logger, EndPoint source, IPEndPoint server);

    [LoggerMessage(1802, LogLevel.Debug, "Dropped a malformed datagram from the GNS: {Reason}")]
    public static partial void MalformedReply(ILogger logger, string reason);

    [LoggerMessage(1803, LogLevel.Debug, "Dropped a reply with request id {RequestId}: no request is waiting for it.")]
    public static partial void UnmatchedReply(ILogger logger, uint requestId);

    [LoggerMessage(1804, LogLevel.Debug, "Rejected a reply to request {RequestId}: {Reason}")]
    public static partial void RejectedReply(ILogger logger, uint requestId, string reason);

    [LoggerMessage(1805, LogLevel.Debug, "No reply from the GNS at {Server} to request {RequestId} within {Timeout} (attempt {Attempt} of {Attempts}).")]
    public static partial void AttemptTimedOut(ILogger logger, IPEndPoint server, uint requestId, TimeSpan timeout, int attempt, int attempts);

    [LoggerMessage(1806, LogLevel.Debug, "Sending to the GNS at {Server} failed: {Reason}")]
    public static partial void SendFailed(ILogger logger, IPEndPoint server, string reason);

    [LoggerMessage(1807, LogLevel.Debug, "Receive error ignored: {Reason}")]
    public static partial void TransientReceiveError(ILogger logger, string reason);

    [LoggerMessage(1808, LogLevel.Error, "The GNS client's socket failed; the client is closed.")]
    public static partial void ReceiveLoopFailed(ILogger logger, Exception exception);

    [LoggerMessage(1809, LogLevel.Debug, "GNS at {Server} unreachable over UDP; trying gRPC at {Grpc}.")]
    public static partial void FallingBackToGrpc(ILogger logger, IPEndPoint server, Uri grpc);

    [LoggerMessage(1810, LogLevel.Debug, "Reverse lookup of {Address} truncated over UDP; fetching the full list over gRPC.")]
    public static partial void ReverseTruncated(ILogger logger, IPAddress address);

    [LoggerMessage(1811, LogLevel.Debug, "Cache hit for {Key}.")]
    public static partial void CacheHit(ILogger logger, string key);

    [LoggerMessage(1812, LogLevel.Debug, "gRPC at {Grpc} unreachable for an update; checking and updating over UDP at {Server}.")]
    public static partial void GrpcUnavailableForUpdate(ILogger logger, Uri grpc, IPEndPoint server);

    [LoggerMessage(1820, LogLevel.Debug, "Watch of {Count} GUIDs connected to {Grpc}.")]
    public static partial void WatchConnected(ILogger logger, int count, Uri grpc);

    [LoggerMessage(1821, LogLevel.Information, "Watch stream to {Grpc} lost ({Reason}); reconnecting in {Delay} (failure {Failures}).")]
    public static partial void WatchReconnecting(ILogger logger, Uri grpc, string reason, TimeSpan delay, int failures);

    [LoggerMessage(1822, LogLevel.Debug, "Dropped a watch event: {Reason}")]
    public static partial void WatchEventRejected(ILogger logger, string reason);

    [LoggerMessage(1824, LogLevel.Debug, "Local addresses changed: new gRPC connection to {Grpc}; watches re-open now.")]
    public static partial void GrpcReset(ILogger logger, Uri grpc);

    [LoggerMessage(1825, LogLevel.Debug, "Watch of {Count} GUIDs re-opening on a new connection to {Grpc} (local addresses changed).")]
    public static partial void WatchReopening(ILogger logger, int count, Uri grpc);

    [LoggerMessage(1880, LogLevel.Information, "The host has no route to the GNS at {Left} any more; using {Server}.")]
    public static partial void EndPointNoRoute(ILogger logger, IPEndPoint left, IPEndPoint server);

    [LoggerMessage(1881, LogLevel.Information, "GNS address changed from {Left} to {Now}.")]
    public static partial void EndPointSwitched(ILogger logger, IPEndPoint left, string now);

    [LoggerMessage(1882, LogLevel.Debug, "No GNS address answered among {Candidates}; keeping {Server}.")]
    public static partial void EndPointNoneAnswered(ILogger logger, string candidates, string server);

    [LoggerMessage(1883, LogLevel.Information, "The GNS's addresses are now {EndPoints}; datagrams go to {Server}.")]
    public static partial void EndPointsResolved(ILogger logger, string endPoints, IPEndPoint server);

    [LoggerMessage(1884, LogLevel.Debug, "Resolving the GNS's addresses again failed ({Reason}); keeping those in use.")]
    public static partial void ResolveFailed(ILogger logger, string reason);

    [LoggerMessage(1885, LogLevel.Information, "GNS gRPC address changed from {Left} to {Now}: it accepted a connection first.")]
    public static partial void GrpcEndPointSwitched(ILogger logger, Uri left, Uri now);

    [LoggerMessage(1886, LogLevel.Debug, "Watch of {Count} GUIDs re-opening at once on {Grpc}: the GNS's gRPC address in use changed.")]
    public static partial void WatchMoved(ILogger logger, int count, Uri grpc);

    [LoggerMessage(1890, LogLevel.Information, "GNS over TLS: connected to {Server} from {Local}.")]
    public static partial void TlsConnected(ILogger logger, IPEndPoint server, IPEndPoint? local);

    [LoggerMessage(1891, LogLevel.Debug, "GNS over TLS: sending to {Server} failed ({Reason}); the next attempt connects again.")]
    public static partial void TlsSendFailed(ILogger logger, IPEndPoint server, string reason);

    [LoggerMessage(1892, LogLevel.Debug, "GNS over TLS: the connection to {Server} ended ({Reason}).")]
    public static partial void TlsClosed(ILogger logger, IPEndPoint server, string reason);

    [LoggerMessage(1893, LogLevel.Information, "GNS requests go to {Server} first now: the last reply came from there.")]
    public static partial void TlsPreferred(ILogger logger, string server);
}
