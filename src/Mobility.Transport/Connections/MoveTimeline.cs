using Microsoft.Extensions.Logging;

namespace Mobility.Transport;

/// <summary>What happened during a move (<see cref="MobileConnection.Moves"/>).</summary>
public enum MoveEventKind
{
    /// <summary>The host's address changed (the daemon told the connection).</summary>
    AddressEvent,

    /// <summary>The path carrying the connection was declared dead or dropped (the detail says why).</summary>
    PathDead,

    /// <summary>The GNS pushed new endpoints for the peer.</summary>
    EndpointsPushed,

    /// <summary>A lookup of the peer started.</summary>
    LookupStarted,

    /// <summary>A lookup of the peer answered (the detail lists the endpoints, or says it failed).</summary>
    LookupAnswered,

    /// <summary>A new flow's TCP connect started (the detail names the endpoint).</summary>
    ConnectStarted,

    /// <summary>A new flow's TCP connect finished.</summary>
    ConnectFinished,

    /// <summary>A connect or resume attempt failed, timed out or lost its race (the detail says which).</summary>
    AttemptFailed,

    /// <summary>Client: a Resume went out on a new flow.</summary>
    ResumeSent,

    /// <summary>Client: the server's ResumeAck arrived; server: a Resume was accepted.</summary>
    ResumeAnswered,

    /// <summary>A Resume was refused (the detail says why).</summary>
    ResumeRefused,

    /// <summary>The first bytes of the peer's data arrived after the resume.</summary>
    FirstByteDelivered,

    /// <summary>Server: a CallBack went out to the client's listener from this host's new address (the detail names the targets).</summary>
    CallBackSent,

    /// <summary>Client: a CallBack from the server passed its checks; the Resume goes back on its flow.</summary>
    CallBackReceived,
}

/// <summary>One event of a move: what, when (from the move's first event), and a short detail.</summary>
public readonly record struct MoveEvent(MoveEventKind Kind, TimeSpan At, string? Detail);

/// <summary>
/// One move of a connection: from the first event that took its path away (an address event, a dead
/// path, a push) to the first data after the resume. <see cref="StartedAt"/> is wall-clock time from
/// the connection's <see cref="TimeProvider"/> (to line up both ends' timelines); the offsets are
/// from its monotonic clock.
/// </summary>
public sealed record MoveRecord(DateTimeOffset StartedAt, IReadOnlyList<MoveEvent> Events, int EventsDropped)
{
    /// <summary>From the move's first event to the resume (null while not resumed).</summary>
    public TimeSpan? ResumedAfter => Events.FirstOrDefault(e => e.Kind == MoveEventKind.ResumeAnswered) is { Kind: MoveEventKind.ResumeAnswered } e ? e.At : null;
}

/// <summary>
/// The timeline of a connection's last moves (bounded: <see cref="MaxMoves"/> moves of at most
/// <see cref="MaxEventsPerMove"/> events each), so that every millisecond of a stall is attributed.
/// Written by the connection's loop and its <c>PathSupervisor</c> (hence the lock); read by anyone
/// through <see cref="Snapshot"/>. Each event is also logged at Debug. Times come from the injected
/// <see cref="TimeProvider"/>.
/// </summary>
internal sealed partial class MoveTimeline(TimeProvider time, ILogger logger, UInt128 token)
{
    /// <summary>Moves kept per connection: enough for a flapping interface's last few seconds.</summary>
    public const int MaxMoves = 8;

    /// <summary>Events kept per move: a move with racing attempts and lookups needs about 20; more are counted, not kept.</summary>
    public const int MaxEventsPerMove = 64;

    private readonly Lock _gate = new();
    private readonly Queue<OpenMove> _moves = new();
    private OpenMove? _current;

    /// <summary>
    /// Records <paramref name="kind"/>. An address event, a dead path or a push (or, on a server, an
    /// accepted Resume) opens a new move unless one is still open (not yet resumed); other events
    /// outside a move are ignored (the
    /// first connect, a connection that never moved). A move is closed by its first delivered byte
    /// or by the next move.
    /// </summary>
    public void Record(MoveEventKind kind, string? detail = null)
    {
        var now = time.GetTimestamp();
        TimeSpan at;
        lock (_gate)
        {
            // A server that accepts a Resume before it noticed its path die starts the move there.
            var opens = kind is MoveEventKind.AddressEvent or MoveEventKind.PathDead or MoveEventKind.EndpointsPushed or MoveEventKind.CallBackReceived
                || (kind == MoveEventKind.ResumeAnswered && (_current is null || _current.Resumed));
            if (_current is null || (opens && _current.Resumed))
            {
                if (!opens)
                {
                    return;
                }

                _current = new OpenMove(time.GetUtcNow(), now);
                _moves.Enqueue(_current);
                while (_moves.Count > MaxMoves)
                {
                    _moves.Dequeue();
                }
            }

            var move = _current;
            at = time.GetElapsedTime(move.Start, now);
            if (kind == MoveEventKind.FirstByteDelivered)
            {
                if (!move.Resumed)
                {
                    return;
                }

                _current = null;
            }

            if (move.Events.Count < MaxEventsPerMove)
            {
                move.Events.Add(new MoveEvent(kind, at, detail));
            }
            else
            {
                move.Dropped++;
            }

            move.Resumed |= kind == MoveEventKind.ResumeAnswered;
        }

        Log.Event(logger, token, at.TotalMilliseconds, kind, detail ?? "");
    }

    /// <summary>The kept moves, oldest first (the last one may still be open).</summary>
    public IReadOnlyList<MoveRecord> Snapshot()
    {
        lock (_gate)
        {
            return [.. _moves.Select(m => new MoveRecord(m.StartedAt, [.. m.Events], m.Dropped))];
        }
    }

    private sealed class OpenMove(DateTimeOffset startedAt, long start)
    {
        public DateTimeOffset StartedAt { get; } = startedAt;

        public long Start { get; } = start;

        public List<MoveEvent> Events { get; } = [];

        public int Dropped { get; set; }

        public bool Resumed { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(9050, LogLevel.Debug, "Connection {Token:x32} move +{At:0.0} ms: {Kind} {Detail}")]
        public static partial void Event(ILogger logger, UInt128 token, double at, MoveEventKind kind, string detail);
    }
}
