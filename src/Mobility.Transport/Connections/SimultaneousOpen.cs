using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Connections;

/// <summary>
/// One end's tries of a coordinated TCP simultaneous open (docs/transport.md, "Direct paths"): a
/// connect from the local port its NAT maps to the reflexive endpoint it published, to each of the
/// peer's reflexive endpoints in turn, a randomised gap between tries (a NAT that answers an
/// unsolicited SYN with a RST kills a try whose SYN left before the peer's; random gaps let the two
/// ends' SYNs meet, fixed ones may never), until one connects or the attempt's deadline passes. Both
/// ends of the session run it at about the same time (the client's PUNCH frame starts the server's).
/// Every pause and limit runs on the injected clock.
/// </summary>
internal static class SimultaneousOpen
{
    /// <summary>
    /// How long one try's connect may wait before a new socket sends a new SYN: the kernel's first SYN
    /// retransmission comes after 1 s, and a NAT that drops unsolicited SYNs leaves a try hanging.
    /// </summary>
    public static readonly TimeSpan TryLimit = TimeSpan.FromSeconds(1);

    /// <summary>The connected flow, or null when the deadline passed (or <paramref name="ct"/> fired) first.</summary>
    /// <param name="gap">The pause after a failed try (<see cref="DirectPathPlanner.PunchGap"/>).</param>
    /// <param name="failed">Told each failed try (target, why), for the log and the tests.</param>
    public static async Task<IFlow?> RunAsync(IFlowFactory flows, int localPort, IReadOnlyList<IPEndPoint> targets, long deadline,
        TimeProvider time, Func<TimeSpan> gap, Action<IPEndPoint, string>? failed, CancellationToken ct)
    {
        if (targets.Count == 0)
        {
            return null;
        }

        for (var attempt = 0; !ct.IsCancellationRequested; attempt++)
        {
            var left = time.GetElapsedTime(time.GetTimestamp(), deadline);
            if (left <= TimeSpan.Zero)
            {
                return null;
            }

            var target = targets[attempt % targets.Count];
            using (var limit = new CancellationTokenSource(left < TryLimit ? left : TryLimit, time))
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, limit.Token))
            {
                try
                {
                    return await flows.PunchAsync(target, localPort, linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return null;
                }
                catch (OperationCanceledException)
                {
                    failed?.Invoke(target, "no answer");
                }
                catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
                {
                    failed?.Invoke(target, e.Message);
                }
            }

            left = time.GetElapsedTime(time.GetTimestamp(), deadline);
            var pause = gap();
            if (pause >= left)
            {
                return null;
            }

            try
            {
                await Task.Delay(pause, time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return null;
            }
        }

        return null;
    }
}

/// <summary>What both ends of a simultaneous open log (<paramref name="side"/>: whose attempt: "this end's" or "the peer's").</summary>
internal static partial class PunchLog
{
    [LoggerMessage(9150, LogLevel.Debug, "Connection {Token:x32}: punch try from port {Port} to {Target} failed: {Reason}")]
    public static partial void TryFailed(ILogger logger, UInt128 token, int port, IPEndPoint target, string reason);

    [LoggerMessage(9151, LogLevel.Debug, "Connection {Token:x32}: {Side} punch {Attempt} found no connection in time")]
    public static partial void NoConnection(ILogger logger, UInt128 token, string side, uint attempt);

    [LoggerMessage(9152, LogLevel.Information, "Connection {Token:x32}: {Side} punch {Attempt} connected {Local} to {Remote}; the client's Join follows")]
    public static partial void Connected(ILogger logger, UInt128 token, string side, uint attempt, IPEndPoint? local, IPEndPoint? remote);
}
