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
/// per-path times live on <see cref="ConnectionPath"/>. Active connection: a tick every
/// KeepAliveInterval / 2, PING after KeepAliveInterval without sending, dead after DeadPathTimeout
/// without receiving. Idle connection: the client sends one PING after its jittered
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

    /// <summary>The client's idle keepalive interval × U(0.75, 1.25).</summary>
    public TimeSpan JitteredIdleInterval() => _options.IdleKeepAliveInterval * (0.75 + (_random() * 0.5));

    /// <summary>A path becomes active: its clocks start now.</summary>
    public void OnPathActivated(ConnectionPath path, long now)
    {
        path.LastReceived = now;
        path.LastSent = now;
        path.ProbeSince = now;
        path.IdleInterval = JitteredIdleInterval();
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
                var since = Math.Max(path.LastReceived, path.ProbeSince);
                if (_time.GetElapsedTime(since, now) > _options.DeadPathTimeout)
                {
                    dead = true;
                    silent = true;
                }
                else if (_time.GetElapsedTime(path.LastSent, now) >= _options.KeepAliveInterval)
                {
                    ping = true;
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

    private long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);
}
