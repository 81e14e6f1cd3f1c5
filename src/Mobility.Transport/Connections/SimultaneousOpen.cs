using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Connections;

/// <summary>
/// One end's tries of a coordinated TCP simultaneous open (docs/transport.md, "Direct paths"): a
/// connect from the local port its NAT maps to the reflexive endpoint it published, to each of the
/// peer's reflexive endpoints in turn, until one connects or the attempt's deadline passes. Both
/// ends of the session run it at about the same time (the client's PUNCH frame starts the server's).
/// A NAT answers a SYN for which it holds no mapping with a RST, and with links as fast as the
/// netlab's the two ends' SYNs never cross both NATs within the microseconds that would take
/// (docs/nat.md, "Hole punching"). So the client primes: its tries send their SYN with a low TTL
/// (<see cref="MobileTransportOptions.PunchPrimeTtl"/>) that opens the mapping in its own NAT and dies
/// before the server's, and it sends PUNCH only after the first has left; its socket then waits in
/// SYN_SENT with the default TTL, and the server's SYN (default TTL) passes the primed NAT and
/// meets it: one connection. A primed try is renewed (a new socket, a new low-TTL SYN) every
/// <see cref="PrimeTryLimit"/>, before the kernel would retransmit the SYN with the full TTL; a try
/// refused at once (a RST) waits a randomised gap before the next (random gaps let two ends' SYNs
/// meet where fixed ones may never). Every pause and limit runs on the injected clock.
/// </summary>
internal static class SimultaneousOpen
{
    /// <summary>
    /// How long one try's connect may wait before a new socket sends a new SYN: the kernel's first SYN
    /// retransmission comes after 1 s, and a NAT that drops unsolicited SYNs leaves a try hanging.
    /// </summary>
    public static readonly TimeSpan TryLimit = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a primed try waits for the peer's SYN before a new socket primes again: well before the
    /// kernel's first SYN retransmission (1 s after the SYN), which would leave with the default TTL
    /// and reach the peer's NAT (a RST) if the peer has not sent its own SYN yet; 0.5 s leaves half a
    /// second for a loaded machine to cut the try in time.
    /// </summary>
    public static readonly TimeSpan PrimeTryLimit = TimeSpan.FromMilliseconds(500);

    /// <summary>The connected flow, or null when the deadline passed (or <paramref name="ct"/> fired) first.</summary>
    /// <param name="gap">The pause after a refused try (<see cref="DirectPathPlanner.PunchGap"/>).</param>
    /// <param name="primeTtl">Above 0: each try's SYN leaves with this TTL (this end primes; see the class), an unanswered try is renewed at once.</param>
    /// <param name="started">Called once the first try's SYN has left (the client sends its PUNCH frame then).</param>
    /// <param name="failed">Told each failed try (target, why), for the log and the tests.</param>
    public static async Task<IFlow?> RunAsync(IFlowFactory flows, int localPort, IReadOnlyList<IPEndPoint> targets, long deadline,
        TimeProvider time, Func<TimeSpan> gap, int primeTtl, Action? started, Action<IPEndPoint, string>? failed, CancellationToken ct)
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
            var tryLimit = primeTtl > 0 ? PrimeTryLimit : TryLimit;
            var unanswered = false;
            using (var limit = new CancellationTokenSource(left < tryLimit ? left : tryLimit, time))
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, limit.Token))
            {
                try
                {
                    var connecting = flows.PunchAsync(target, localPort, primeTtl, linked.Token);
                    if (attempt == 0)
                    {
                        started?.Invoke();
                    }

                    return await connecting.ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return null;
                }
                catch (OperationCanceledException)
                {
                    failed?.Invoke(target, "no answer");
                    unanswered = true;
                }
                catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
                {
                    failed?.Invoke(target, e.Message);
                }
            }

            if (unanswered && primeTtl > 0)
            {
                // The mapping this try primed is open and nothing refused it: prime again at once.
                continue;
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
