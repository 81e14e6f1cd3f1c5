using System.IO.Pipelines;
using Mobility.Protocol.Transport;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Connections;

/// <summary>
/// One path of a mobile connection: a flow (TCP connection) with everything that belongs to it and
/// not to the connection — its two loops, when it last heard from the peer and last sent, its
/// keepalive probe, its own RTT estimate, and the control frames queued for it (<see cref="ControlOutbox"/>).
/// A connection holds its paths in a <see cref="PathSet"/> (one active); fields are changed by the
/// connection's loop only, except <see cref="AwaitingResumeAck"/> (set by the loop before the
/// path's receive loop starts, then read by that receive loop alone).
/// </summary>
internal sealed class ConnectionPath
{
    private readonly CancellationTokenSource _cts = new();
    private int _stopped;

    public ConnectionPath(IFlow flow, PipeReader reader, byte[]? preamble, bool established)
    {
        Flow = flow;
        Reader = reader;
        Preamble = preamble;
        Established = established;
    }

    /// <summary>Sequence number within the connection (1, 2, …), for logs.</summary>
    public int Id { get; set; }

    public IFlow Flow { get; }

    public PipeReader Reader { get; }

    /// <summary>Handshake bytes the send loop writes before any frame (ClientFinish, Resume or ResumeAck).</summary>
    public byte[]? Preamble { get; set; }

    /// <summary>False on a client path whose Resume is not answered yet.</summary>
    public bool Established { get; set; }

    /// <summary>Client path opened by a Resume: the first thing to read is ResumeAck or Reject (the Resume's counter).</summary>
    public ulong? AwaitingResumeAck { get; set; }

    /// <summary>Client: the path runs on a flow the server opened to this host's listener (a call back), not on one this end dialled.</summary>
    public bool CalledBack { get; init; }

    /// <summary>The answer to this path's Resume: null = accepted.</summary>
    public TaskCompletionSource<RejectReason?> ResumeResult { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public CancellationToken Cancellation => _cts.Token;

    public bool IsStopped => Volatile.Read(ref _stopped) != 0;

    // Per-path liveness (see KeepAlivePolicy).

    /// <summary>Timestamp of the last bytes read from this path.</summary>
    public long LastReceived { get; set; }

    /// <summary>Timestamp of the last bytes written to this path.</summary>
    public long LastSent { get; set; }

    /// <summary>When the connection last turned active on this path: the dead-path timeout counts from here or <see cref="LastReceived"/>, whichever is later.</summary>
    public long ProbeSince { get; set; }

    /// <summary>Client, idle: send a keepalive after this long without receiving (jittered per keepalive).</summary>
    public TimeSpan IdleInterval { get; set; }

    /// <summary>A keepalive (or a write after idling) is waiting for the first frame back.</summary>
    public bool AwaitingAnswer => ProbeSince > LastReceived;

    // Per-path RTT, from PING/PONG on this path.

    public ulong PingId { get; set; }

    public long PingSentAt { get; set; }

    /// <summary>The last round trip measured on this path (null before the first PONG).</summary>
    public TimeSpan? Rtt { get; private set; }

    /// <summary>
    /// The path's smoothed RTT (RFC 6298: the first sample, then 7/8 of the old value plus 1/8 of
    /// each new sample; null before the first PONG). The active dead-path bound is a multiple of it.
    /// </summary>
    public TimeSpan? SmoothedRtt { get; private set; }

    /// <summary>Records a PONG: true when it answers this path's latest PING (the RTT is updated).</summary>
    public bool OnPong(ulong id, long now, TimeProvider time)
    {
        if (id != PingId || PingSentAt == 0)
        {
            return false;
        }

        var sample = time.GetElapsedTime(PingSentAt, now);
        Rtt = sample;
        SmoothedRtt = SmoothedRtt is { } smoothed ? ((smoothed * 7) + sample) / 8 : sample;
        return true;
    }

    // Standby paths (make-before-break): authenticated and kept alive, carrying no data until promoted.

    /// <summary>A standby path: joined (Join/JoinAck), carries only PING and PONG until it is made active.</summary>
    public bool IsStandby { get; set; }

    /// <summary>Client path opened by a Join (set before its receive loop starts): its <see cref="AwaitingResumeAck"/> expects a JoinAck.</summary>
    public bool Joining { get; init; }

    /// <summary>
    /// A former active path kept as a standby when a direct path took over (<see cref="PathSet.Swap"/>):
    /// frames the peer sent on it before it saw the switch are dropped (they are resent on the new path).
    /// </summary>
    public bool Demoted { get; set; }

    /// <summary>Joined as a standby (it may be active now): its PINGs and PONGs are checked against its own counter when older than the connection's.</summary>
    public bool WasStandby { get; set; }

    /// <summary>The highest frame counter accepted on this path while it was a standby (its PINGs and PONGs are checked per path).</summary>
    public ulong StandbyCounter { get; set; }

    // What the connection's loop sends on this path.

    public bool FinSent { get; set; }

    /// <summary>A resumed client path that sends only its first write (the SYN's worth) until the Resume is answered.</summary>
    public bool HoldsUntilAnswered { get; set; }

    /// <summary>
    /// A standby the client switched to with more than a first window in doubt: until the server's first ACK on it (its
    /// offset) arrives, it carries at most <see cref="PeerAckBudget"/> more bytes (what the idle flow's first window sends at once).
    /// </summary>
    public bool HoldsForPeerAck { get; set; }

    /// <summary>While <see cref="HoldsForPeerAck"/>: wire bytes the path may still carry before the server's first ACK on it.</summary>
    public long PeerAckBudget { get; set; }

    /// <summary>A standby the client switched to, until the server's first ACK on it: the offset its resend started from (for the log).</summary>
    public long? SwitchResendFrom { get; set; }

    /// <summary>
    /// Client: a standby switched to after this host's address went, whose resend started at this offset (where the lost
    /// path's bytes stopped leaving the host), beyond the last ACK; until the server's first ACK on it, which rewinds the
    /// resend to the server's position should the server hold less.
    /// </summary>
    public long? SwitchSkippedTo { get; set; }

    /// <summary>DATA payload bytes laid out on this path so far: its frames start small and grow with it (<see cref="MobileConnection"/>'s frame ramp).</summary>
    public long DataSent { get; set; }

    // Client: what each of the path's last writes reached, so that when the path is lost the stream offset up to which its
    // bytes left the host is known (the flow's unsent bytes subtracted): the first flight of the resume starts there.
    private const int WriteMarks = 64;
    private readonly (long FlowEnd, long StreamEnd)[] _marks = new (long, long)[WriteMarks];
    private int _markCount;
    private int _markNext;

    /// <summary>Bytes handed to the flow's writes so far (the last one may still be in flight: <see cref="PendingWrite"/>).</summary>
    public long FlowBytesHanded { get; private set; }

    private int _pendingWrite;

    /// <summary>
    /// The length of the write in flight on the flow, 0 when none: cleared by the socket pump as soon as the flow took the
    /// whole write (its bytes are then in the socket's queue or on the wire), before the loop hears of it.
    /// </summary>
    public int PendingWrite
    {
        get => Volatile.Read(ref _pendingWrite);
        set => Volatile.Write(ref _pendingWrite, value);
    }

    /// <summary>
    /// Server: a path accepted by a Resume whose client may have started its first flight beyond what this end holds (where
    /// its lost path's bytes stopped leaving its host): DATA and FIN beyond the receive position are dropped, not a
    /// violation, until the first DATA frame that starts at or below it (the client rewinds to the ResumeAck's position).
    /// </summary>
    public bool DropsDataGaps { get; set; }

    /// <summary>Client: a resumed path whose first flight started at this offset, beyond the last ACK (null: from the last ACK).</summary>
    public long? FirstFlightFrom { get; set; }

    /// <summary>A write of <paramref name="length"/> bytes whose DATA reached <paramref name="streamEnd"/> is handed to the flow.</summary>
    public void MarkWrite(int length, long streamEnd)
    {
        FlowBytesHanded += length;
        PendingWrite = length;
        _marks[_markNext] = (FlowBytesHanded, streamEnd);
        _markNext = (_markNext + 1) % WriteMarks;
        _markCount = Math.Min(_markCount + 1, WriteMarks);
    }

    /// <summary>Forgets the writes marked so far (the stream was rewound on this path).</summary>
    public void ClearMarks() => _markCount = 0;

    /// <summary>
    /// The stream offset every byte below which left the host on this path (or was acknowledged before it), from the flow's
    /// unsent bytes: the newest write wholly on the wire. Null when the flow cannot tell or that write is older than the marks kept.
    /// </summary>
    public long? StreamOffsetOnWire()
    {
        if (Flow.UnsentBytes is not { } unsent || _markCount == 0)
        {
            return null;
        }

        // A write in flight may be partly in the socket's queue (counted in unsent): leaving all of it out errs low. A write
        // the flow took whole is no longer in flight (the pump cleared it), even if the loop has not yet heard.
        var onWire = FlowBytesHanded - PendingWrite - unsent;
        long? best = null;
        var bestEnd = long.MinValue;
        for (var i = 0; i < _markCount; i++)
        {
            var (flowEnd, streamEnd) = _marks[i];
            if (flowEnd <= onWire && flowEnd > bestEnd)
            {
                bestEnd = flowEnd;
                best = streamEnd;
            }
        }

        return best;
    }

    /// <summary>Control frames queued for this path by the connection's loop.</summary>
    public ControlOutbox Outbox { get; } = new();

    /// <summary>A write laid out by the connection's loop is in flight on the flow (the loop lays out the next once it is done).</summary>
    public bool Writing { get; set; }

    /// <summary>The server's last write: the flow is closed after it and the connection completes.</summary>
    public bool Closing { get; set; }

    /// <summary>Completed once the RESET is written (true) or cannot be (false).</summary>
    public TaskCompletionSource<bool> ResetFlushed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The path's receive loop.</summary>
    public Task Receiving { get; set; } = Task.CompletedTask;

    /// <summary>The write in flight (or the last one).</summary>
    public Task Sending { get; set; } = Task.CompletedTask;

    /// <summary>
    /// Stops both loops and closes the flow; the returned task ends once the loops have let go of
    /// the socket and it is closed. Idempotent (later calls return a completed task).
    /// </summary>
    public Task Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return Task.CompletedTask;
        }

        // Cancelling ends the loops' pending reads and writes; the socket is closed once they
        // have let go of it, on a pool thread: closing a socket still in use by another thread
        // spins, and this may run under the connection's lock or in an event handler that
        // moves a hundred connections.
        _cts.Cancel();
        ResumeResult.TrySetResult(RejectReason.ResumeRefused);
        ResetFlushed.TrySetResult(false);
        return Task.WhenAll(Receiving, Sending).ContinueWith(static (_, flow) => ((IFlow)flow!).Abort(), Flow,
            CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
    }

    public override string ToString() => $"path {Id} {Flow.LocalEndPoint} -> {Flow.RemoteEndPoint}";
}
