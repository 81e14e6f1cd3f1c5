namespace Mobility.Transport.Connections;

/// <summary>What a keepalive tick asks the connection to do.</summary>
/// <param name="Ping">Send a PING on the active path.</param>
/// <param name="RequestAck">Send an ACK of what was received or consumed since the last one.</param>
/// <param name="PathDead">The active path is dead (nothing received for <paramref name="DeadFor"/>).</param>
/// <param name="DeadFor">How long the path was silent (for the log).</param>
/// <param name="NoPath">No working path for the pathless timeout: the connection fails.</param>
/// <param name="SilentDeath">The path died while active without an error (the peer may have moved: look it up first).</param>
/// <param name="NextTick">When to tick again (ignored with <paramref name="NoPath"/>).</param>
internal readonly record struct KeepAliveVerdict(bool Ping, bool RequestAck, bool PathDead, TimeSpan DeadFor, bool NoPath, bool SilentDeath, TimeSpan NextTick);

/// <summary>
/// Keepalive and dead-path policy of a connection, a pure function of the clock it is handed (as
/// Kestrel's Http2KeepAlive): it owns only when data last moved and whether ticks are fast; the
/// per-path times live on <see cref="ConnectionPath"/>. Active connection: dead after
/// <see cref="ActiveDeadTimeout"/> without receiving (max(DeadPathTimeoutMin, DeadPathRttMultiplier ×
/// the path's smoothed RTT), DeadPathTimeout before the path's first RTT sample), PING after a
/// quarter of that (at most KeepAliveInterval) without sending, a tick every half of that and one
/// at the deadline; a path's first active tick PINGs (its first RTT sample). Idle connection: the client sends one PING after its jittered
/// IdleKeepAliveInterval without receiving (and is active until something comes back); the server
/// only answers and declares the path dead after 2 × IdleKeepAliveInterval + DeadPathTimeout of
/// silence. Without an established path: the pathless deadline. Not thread-safe (the connection's
/// lock guards it).
/// </summary>
internal sealed class KeepAlivePolicy
{
    private readonly bool _isClient;
    private readonly MobileTransportOptions _options;
    private readonly TimeProvider _time;
    private readonly Func<double> _random;
    private long _lastDataAt;

    /// <param name="random">Uniform in [0, 1) for the idle jitter (tests pass a fixed value).</param>
    public KeepAlivePolicy(bool isClient, MobileTransportOptions options, TimeProvider time, long now, Func<double>? random = null)
    {
        _isClient = isClient;
        _options = options;
        _time = time;
#pragma warning disable CA5394 // Jitter, not security.
        _random = random ?? (static () => Random.Shared.NextDouble());
#pragma warning restore CA5394
        _lastDataAt = now - ToTicks(options.DeadPathTimeout * 2); // no data yet: not active
    }

    /// <summary>Fast ticks (every KeepAliveInterval / 2) while true; the idle schedule otherwise.</summary>
    public bool IsFast { get; private set; } = true;

    public TimeSpan FastTick => _options.KeepAliveInterval / 2;

    /// <summary>
    /// How long an active <paramref name="path"/> may stay silent before it is declared dead:
    /// max(DeadPathTimeoutMin, DeadPathRttMultiplier × its smoothed RTT); DeadPathTimeout while it
    /// has no RTT sample yet (a PING goes out as soon as a path starts, so that is one round trip).
    /// </summary>
    public TimeSpan ActiveDeadTimeout(ConnectionPath path)
    {
        if (path.SmoothedRtt is not { } srtt)
        {
            return _options.DeadPathTimeout;
        }

        var bound = srtt * _options.DeadPathRttMultiplier;
        return bound > _options.DeadPathTimeoutMin ? bound : _options.DeadPathTimeoutMin;
    }

    /// <summary>An active path is probed (PING) after this long without sending: a quarter of its dead-path bound, at most KeepAliveInterval.</summary>
    public TimeSpan ProbeInterval(ConnectionPath path)
    {
        var quarter = ActiveDeadTimeout(path) / 4;
        return quarter < _options.KeepAliveInterval ? quarter : _options.KeepAliveInterval;
    }

    /// <summary>The shortest <see cref="StandbyAckDelay"/>: at most 200 extra ACK frames a second on a receiving connection with a standby path.</summary>
    public static readonly TimeSpan StandbyAckDelayMin = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// While a connection has a standby path, what it received is acknowledged within this long (an eighth of the active
    /// path's smoothed RTT, within [<see cref="StandbyAckDelayMin"/>, <see cref="FastTick"/>]; an eighth of
    /// KeepAliveInterval before the first sample) instead of at the next fast tick: the peer's switch to the standby
    /// resends from our last ACK, and a fresh one leaves it at most a round trip and an eighth of bytes in doubt, which
    /// at a trickle's rate fit in the standby flow's first window. Without a standby nothing changes (a resume's
    /// Resume and ResumeAck carry fresh positions).
    /// </summary>
    public TimeSpan StandbyAckDelay(ConnectionPath path)
    {
        var delay = (path.SmoothedRtt ?? _options.KeepAliveInterval) / 8;
        if (delay < StandbyAckDelayMin)
        {
            return StandbyAckDelayMin;
        }

        return delay > FastTick ? FastTick : delay;
    }

    /// <summary>The client's idle keepalive interval × U(0.75, 1.25).</summary>
    public TimeSpan JitteredIdleInterval() => _options.IdleKeepAliveInterval * (0.75 + (_random() * 0.5));

    /// <summary>A path becomes active (or joins as a standby): its clocks start now.</summary>
    public void OnPathActivated(ConnectionPath path, long now)
    {
        path.LastReceived = now;
        path.LastSent = now;
        path.ProbeSince = now;
        path.IdleInterval = JitteredIdleInterval();
    }

    /// <summary>
    /// A standby path was made active: its dead-path clock restarts now (it may have been silent for
    /// most of an idle interval, as a standby may) and it is probed at once.
    /// </summary>
    public void OnPathPromoted(ConnectionPath path, long now)
    {
        IsFast = true;
        path.ProbeSince = now;
        path.Outbox.QueuePing();
    }

    /// <summary>
    /// One tick for a standby path, which carries no data and is kept alive cheaply, as an idle
    /// connection is: the client PINGs it once per jittered idle interval without receiving and
    /// drops it when that PING goes unanswered for DeadPathTimeout; the server only answers and drops
    /// it after 2 × IdleKeepAliveInterval + DeadPathTimeout of silence. A path still joining is left
    /// to its join's own deadline. Returns what to do and when this path needs its next tick.
    /// </summary>
    public (bool Ping, bool Dead, TimeSpan NextTick) OnStandbyTick(ConnectionPath path, long now)
    {
        if (!path.Established)
        {
            return (false, false, _options.IdleKeepAliveInterval);
        }

        var quiet = _time.GetElapsedTime(path.LastReceived, now);
        if (!_isClient)
        {
            var limit = (_options.IdleKeepAliveInterval * 2) + _options.DeadPathTimeout;
            return quiet > limit ? (false, true, FastTick) : (false, false, limit - quiet + OneTick);
        }

        if (path.AwaitingAnswer)
        {
            var waited = _time.GetElapsedTime(path.ProbeSince, now);
            return waited > _options.DeadPathTimeout
                ? (false, true, FastTick)
                : (false, false, _options.DeadPathTimeout - waited + OneTick);
        }

        if (quiet >= path.IdleInterval)
        {
            path.ProbeSince = now;
            path.IdleInterval = JitteredIdleInterval();
            return (true, false, _options.DeadPathTimeout + OneTick);
        }

        return (false, false, path.IdleInterval - quiet);
    }

    /// <summary>
    /// Data moved (written by the application, received, FIN). Turning active from idle restarts
    /// the dead-path clock of <paramref name="path"/>; true then, and the caller ticks soon, so a
    /// write on a long-idle connection over a dead path is noticed within DeadPathTimeout.
    /// </summary>
    public bool OnDataMoved(ConnectionPath? path, long now)
    {
        _lastDataAt = now;
        if (IsFast)
        {
            return false;
        }

        IsFast = true;
        if (path is not null)
        {
            path.ProbeSince = now;
        }

        return true;
    }

    /// <summary>
    /// Whether the established <paramref name="path"/> should be probed fast: unacknowledged data
    /// (or FIN), data moved within the last two DeadPathTimeouts, or a keepalive awaiting its answer.
    /// </summary>
    public bool IsActive(ConnectionPath path, bool unacknowledged, long now)
        => unacknowledged
            || _time.GetElapsedTime(_lastDataAt, now) < _options.DeadPathTimeout * 2
            || path.AwaitingAnswer;

    /// <summary>
    /// One tick at <paramref name="now"/>. <paramref name="path"/> is the active path (null:
    /// pathless), <paramref name="unacknowledged"/> whether sent data or FIN awaits its ACK,
    /// <paramref name="ackPending"/> whether an ACK would say something new, <paramref name="pathLostAt"/>
    /// when the connection lost its last working path. Updates the path's probe state.
    /// </summary>
    public KeepAliveVerdict OnTick(ConnectionPath? path, bool unacknowledged, bool ackPending, long? pathLostAt, long now)
    {
        var fast = FastTick;
        var next = fast;
        bool ping = false, ack = false, dead = false, silent = false, noPath = false;
        var deadFor = _options.DeadPathTimeout;
        if (path is not null && path.Established)
        {
            if (IsActive(path, unacknowledged, now))
            {
                if (!IsFast)
                {
                    IsFast = true;
                    path.ProbeSince = now;
                }

                // ACKs below AckEvery wait for a ride or for this tick (at most KeepAliveInterval / 2).
                ack = ackPending;
                var limit = ActiveDeadTimeout(path);
                var probe = ProbeInterval(path);
                var silence = _time.GetElapsedTime(Math.Max(path.LastReceived, path.ProbeSince), now);
                next = probe / 2;
                if (silence > limit)
                {
                    dead = true;
                    silent = true;
                    deadFor = limit;
                }
                else
                {
                    // Probe when nothing was sent for a probe interval, on the first active tick of a
                    // path without a PING yet and once per bound while data flows (fresh RTT samples,
                    // which the bound follows); tick again at the deadline at the latest.
                    ping = _time.GetElapsedTime(path.LastSent, now) >= probe
                        || path.PingSentAt == 0
                        || _time.GetElapsedTime(path.PingSentAt, now) >= limit;
                    var untilDead = limit - silence + OneTick;
                    next = untilDead < next ? untilDead : next;
                }
            }
            else
            {
                IsFast = false;
                var quiet = _time.GetElapsedTime(path.LastReceived, now);
                if (_isClient)
                {
                    if (quiet >= path.IdleInterval)
                    {
                        // One keepalive; until it is answered the connection counts as active.
                        IsFast = true;
                        path.ProbeSince = now;
                        path.IdleInterval = JitteredIdleInterval();
                        ping = true;
                    }
                    else
                    {
                        next = path.IdleInterval - quiet;
                    }
                }
                else
                {
                    var limit = (_options.IdleKeepAliveInterval * 2) + _options.DeadPathTimeout;
                    if (quiet > limit)
                    {
                        dead = true;
                        deadFor = limit;
                    }
                    else
                    {
                        next = limit - quiet + fast;
                    }
                }
            }
        }
        else if (pathLostAt is { } lost)
        {
            var elapsed = _time.GetElapsedTime(lost, now);
            if (elapsed > _options.PathlessTimeout)
            {
                noPath = true;
            }
            else if (path is null && !_isClient)
            {
                // A server without a path only waits for a Resume (which re-arms the timer).
                next = _options.PathlessTimeout - elapsed + fast;
            }
        }

        return new KeepAliveVerdict(ping, ack, dead, deadFor, noPath, silent, dead ? fast : next);
    }

    /// <summary>The smallest step past a deadline: the tick that finds a path dead comes 1 ms after its bound.</summary>
    private static readonly TimeSpan OneTick = TimeSpan.FromMilliseconds(1);

    private long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);
}
