using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Transport;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Connections;

/// <summary>
/// The resume race: a Resume that has no answer within <see cref="ResumeRaceDelay"/> (a lost SYN,
/// SYN-ACK, Resume or ResumeAck, which TCP would recover only after its retransmission timeout: 1 s
/// for a SYN, at least 200 ms for data) is raced by a Resume with the next counter on a new flow,
/// up to <see cref="MaxResumeFlows"/> flows per attempt, the wait doubling for each flow already raced. The newest flow is the one the connection
/// uses, and the server keeps the highest counter it has seen, so both ends agree: the older flow is
/// closed (a late answer on it is ignored; a late Resume on it is refused as a replay).
/// </summary>
internal sealed partial class PathSupervisor
{
    /// <summary>Flows one attempt may open for its Resume (the first and three raced ones): bounded, and each is one TCP connect.</summary>
    public const int MaxResumeFlows = 4;

    // Whether the server took the data of our last first flight (null: not known yet). A server that
    // did not (its kernel lacks the server bit, or a middlebox strips SYN data) makes this connection's
    // later resumes connect plainly, which keeps the connect race. Written on the connection's loop
    // when the ResumeAck arrives (before any byte behind it is delivered), read by the supervisor:
    // 0 not known, 1 taken, -1 not taken.
    private int _fastOpenOutcome;

    private bool? FastOpenTaken => Volatile.Read(ref _fastOpenOutcome) switch { 1 => true, -1 => false, _ => null };

    // The kernel's smoothed RTT of the last flow that carried the connection (the handshake's, then
    // each resumed one's): the race's time scale when no PING has measured one.
    private TimeSpan? _flowRtt;

    /// <summary>Notes the RTT the transport measured on <paramref name="flow"/> (the handshake flow, a resumed flow).</summary>
    public void NoteFlowRtt(IFlow flow) => _flowRtt = flow.SmoothedRtt ?? _flowRtt;

    /// <summary>Whether the next resume flow opens with TCP Fast Open.</summary>
    private bool UseFastOpen => _options.FastOpen && FastOpenTaken != false;

    /// <summary>
    /// How long a Resume may go unanswered before another flow races it: the connect race's delay
    /// (max(2 x RTT, <see cref="MobileConnectionOptions.ConnectRaceDelayMin"/>), at most the maximum),
    /// plus one RTT when a TCP handshake may still stand before the Resume (a first flight to a server
    /// not known to take it). A plain flow is raced only once it is connected. The RTT is the last one
    /// a PING measured, else the kernel's smoothed RTT of the last flow.
    /// </summary>
    internal static TimeSpan ResumeRaceDelay(TimeSpan rtt, bool handshakeAhead, MobileConnectionOptions options)
    {
        var delay = RaceDelay(rtt, options);
        return handshakeAhead ? delay + rtt : delay;
    }

    /// <summary>The Resume flows of one attempt: the newest is <see cref="Path"/>.</summary>
    private sealed class ResumeRace(ConnectionPath path, bool fastOpen, IReadOnlyList<ConnectCandidate> candidates)
    {
        public ConnectionPath Path { get; set; } = path;

        /// <summary>Whether <see cref="Path"/> was opened with Fast Open.</summary>
        public bool PathFastOpen { get; set; } = fastOpen;

        /// <summary>The attempt's connects (endpoints, each from one or more local addresses), in order.</summary>
        public IReadOnlyList<ConnectCandidate> Candidates { get; } = candidates;

        public int Flows { get; set; } = 1;

        /// <summary>When the first Resume of the race went.</summary>
        public long ResumeSentAt { get; init; }

        /// <summary>When a flow through the peer's relay races the direct one (<see cref="RelayJoinsAt"/>); null once it did, or never.</summary>
        public long? RelayJoinsAt { get; set; }
    }

    /// <summary>
    /// Waits for the answer to the newest Resume of <paramref name="race"/>; when none comes within
    /// <see cref="ResumeRaceDelay"/>, opens another flow (the next candidate in turn: an endpoint from a
    /// local address; Fast Open on every other one, so a middlebox that drops SYNs with data costs one
    /// race, not the kernel's 1 s) whose Resume takes over. Returns the answer (null: accepted, or the connection ended).
    /// </summary>
    private async Task<RejectReason?> AwaitAnswerAsync(ResumeRace race, CancellationToken ct)
    {
        while (true)
        {
            var answer = race.Path.ResumeResult.Task;
            // Without any RTT measured the race has no time scale and is not run (TCP retransmits).
            TimeSpan? raceDelay = race.Flows < MaxResumeFlows && (_connection.LastRtt ?? _flowRtt) is { } rtt
                // Doubled for each flow already raced (as TCP backs off its RTO): an answer that is only
                // late (a loaded host) is not thrown away again and again.
                ? ResumeRaceDelay(rtt, race.PathFastOpen && FastOpenTaken != true, _options) * (1 << (race.Flows - 1))
                : null;
            // A direct Resume unanswered one race delay after it went is raced through the peer's relay (PathSupervisor.Relay.cs).
            var relayWait = race.Flows < MaxResumeFlows ? UntilRelayJoins(race) : null;
            if (relayWait is not null || raceDelay is not null)
            {
                var relayTurn = relayWait is { } r && (raceDelay is not { } d || r <= d);
                var delay = relayTurn ? relayWait!.Value : raceDelay!.Value;
                using var pauseCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                await Task.WhenAny(answer, Task.Delay(delay, _time, pauseCts.Token)).WaitAsync(ct).ConfigureAwait(false);
                await pauseCts.CancelAsync().ConfigureAwait(false);
                IReadOnlyList<ConnectCandidate>? only = null;
                if (relayTurn && !answer.IsCompleted)
                {
                    race.RelayJoinsAt = null;
                    only = RelayCandidates(race.Candidates);
                    RelayRaceLog.RacesResume(_logger, _connection.Token, race.Path.Flow.RemoteEndPoint,
                        _time.GetElapsedTime(race.ResumeSentAt).TotalMilliseconds, string.Join(", ", only));
                }

                if (!answer.IsCompleted && !await RaceAnotherAsync(race, delay, ct, only).ConfigureAwait(false))
                {
                    return null;
                }

                if (!answer.IsCompleted)
                {
                    continue;
                }
            }

            var result = await answer.WaitAsync(ct).ConfigureAwait(false);
            if (result is null && race.Path == _connection.ActivePath)
            {
                NoteFlowRtt(race.Path.Flow);
            }

            return result;
        }
    }

    /// <summary>
    /// Opens the next flow of the race and starts its Resume, unless the answer to the current one
    /// arrives first (then the new connect is dropped). False when the connection ended.
    /// </summary>
    private async Task<bool> RaceAnotherAsync(ResumeRace race, TimeSpan waited, CancellationToken ct, IReadOnlyList<ConnectCandidate>? only = null)
    {
        var answer = race.Path.ResumeResult.Task;
        var index = race.Flows++;
        // Only the relay's candidates when it joins (its first flight is an ordinary dial); else the next in turn.
        var fastOpen = only is null && UseFastOpen && index % 2 == 0;
        var candidates = only ?? Rotate(race.Candidates, index);
        ResumeRaceFlowLog.Racing(_logger, _connection.Token, race.Path.Flow.RemoteEndPoint, waited.TotalMilliseconds, index + 1);
        _connection.RecordMove(MoveEventKind.AttemptFailed,
            $"no answer via {race.Path.Flow.RemoteEndPoint} within {waited.TotalMilliseconds:0} ms: racing resume flow {index + 1}"
            + (only is null ? "" : " through the relay"));
        using var connectCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var connect = RaceConnectAsync(candidates, null, fastOpen, connectCts.Token);
        await Task.WhenAny(answer, connect).WaitAsync(ct).ConfigureAwait(false);
        if (!connect.IsCompleted)
        {
            // The answer came first: the racing connect is dropped, and a flow it still opens is closed.
            await connectCts.CancelAsync().ConfigureAwait(false);
            _ = connect.ContinueWith(static t => AbortLateRacer(t), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            return true;
        }

        var flow = connect.IsCompletedSuccessfully ? connect.Result : null;
        if (flow is null)
        {
            // Every connect of the race failed: the flow already there keeps waiting.
            _ = connect.Exception;
            ct.ThrowIfCancellationRequested();
            return true;
        }

        if (answer.IsCompleted)
        {
            // Both at once: the flow already answered wins.
            flow.Abort();
            return true;
        }

        TransportLog.FlowConnected(_logger, _connection.Token, flow.LocalEndPoint, flow.RemoteEndPoint ?? candidates[0].Endpoint);
        _connection.OnFlowConnected(flow);
        if (_connection.BeginResume(flow) is not { } next)
        {
            flow.Abort();
            return false;
        }

        race.Path = next;
        race.PathFastOpen = fastOpen;
        return true;
    }

    /// <summary>
    /// The connection's loop, on the ResumeAck of its active path: remembers whether the server took
    /// the data of the SYN that opened <paramref name="flow"/> (a flow opened without Fast Open tells
    /// nothing). Recorded before the first byte behind the answer is delivered, so a move that follows
    /// at once already connects plainly.
    /// </summary>
    public void NoteFirstFlightOutcome(IFlow flow)
    {
        if (flow.FirstFlightTaken is not { } taken)
        {
            return;
        }

        if (Interlocked.Exchange(ref _fastOpenOutcome, taken ? 1 : -1) != -1 && !taken)
        {
            ResumeRaceFlowLog.FirstFlightNotTaken(_logger, _connection.Token, flow.RemoteEndPoint);
        }
    }

    private static IReadOnlyList<ConnectCandidate> Rotate(IReadOnlyList<ConnectCandidate> candidates, int by)
    {
        var start = by % candidates.Count;
        return start == 0 ? candidates : [.. candidates.Skip(start), .. candidates.Take(start)];
    }

    /// <summary>A racing connect the answer beat: its flow, if it opened one, is aborted.</summary>
    private static void AbortLateRacer(Task<IFlow?> connect)
    {
        if (connect.IsCompletedSuccessfully)
        {
            connect.Result?.Abort();
        }
        else
        {
            _ = connect.Exception;
        }
    }

    private static partial class ResumeRaceFlowLog
    {
        [LoggerMessage(9410, LogLevel.Debug, "Connection {Token:x32}: no answer to the Resume via {Remote} within {WaitedMs:0} ms; racing resume flow {Flow}")]
        public static partial void Racing(ILogger logger, UInt128 token, IPEndPoint? remote, double waitedMs, int flow);

        [LoggerMessage(9411, LogLevel.Debug, "Connection {Token:x32}: {Remote} did not take the Resume in the SYN; later resumes connect without Fast Open")]
        public static partial void FirstFlightNotTaken(ILogger logger, UInt128 token, IPEndPoint? remote);
    }
}
