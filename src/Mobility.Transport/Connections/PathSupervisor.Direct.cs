using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Transport;
using Mobility.Transport.Relay;

namespace Mobility.Transport.Connections;

/// <summary>
/// The client's direct attempts while its active path runs through a relay: the peer's candidates
/// (its CANDIDATES frame) go to a <see cref="DirectPathPlanner"/>; an attempt joins a flow to each
/// candidate in turn (Join/JoinAck, as a standby path) until one answers, and hands the joined path
/// to the connection, which makes it active (<see cref="ISupervisedConnection.PromoteDirect"/>). One
/// attempt at a time; between failures the planner's back-off; a relayed active path after a direct
/// one (it died) counts as a loss and backs off too.
/// </summary>
internal sealed partial class PathSupervisor
{
    // Guarded by _gate: created with the peer's first candidates.
    private DirectPathPlanner? _direct;
    private Task _directAttempt = Task.CompletedTask;

    // Guarded by _gate: the port this end punches from (its published reflexive endpoint's), null: it does not punch.
    private int? _punchPort;

    // The attempt number of the last PUNCH frame (only the running attempt's task touches it).
    private uint _punches;

    /// <summary>The peer sent its direct candidates (from the connection's loop); <paramref name="punch"/>: it can punch and takes PUNCH frames.</summary>
    public void OnPeerCandidates(bool punch, DirectCandidate[] candidates)
    {
        lock (_gate)
        {
            EnsurePlanner().OnPeerCandidates(punch, candidates);
        }

        _kick.Set();
    }

    /// <summary>
    /// This end's own candidates were set: it punches from <paramref name="port"/> (its reflexive
    /// endpoint's) when its NAT maps endpoint-independently and the flow kind can bind a port.
    /// </summary>
    public void OnLocalCandidates(bool punch, int? port)
    {
        lock (_gate)
        {
            _punchPort = punch && _options.FlowFactory.CanPunch ? port : null;
            EnsurePlanner().SetLocalPunch(_punchPort is not null);
        }

        _kick.Set();
    }

    private DirectPathPlanner EnsurePlanner()
        => _direct ??= new DirectPathPlanner(_time, _options.DirectAttemptTimeout, _options.DirectRetryMin, _options.DirectRetryMax, _random);

    /// <summary>Starts a direct attempt when one is due and the active path is relayed (or a wait for the next one).</summary>
    private void MaybeGoDirect()
    {
        if (!_options.DirectPaths || _options.MaxStandbyPaths == 0 || _connection.Closed.IsCancellationRequested
            || _connection.ActivePath is not { Established: true, IsStopped: false } active)
        {
            return;
        }

        lock (_gate)
        {
            if (_direct is not { } planner || !_directAttempt.IsCompleted)
            {
                return;
            }

            if (active.Flow is not RelayedFlow)
            {
                return;
            }

            if (planner.IsDirect)
            {
                // The direct path died and the connection is back on a relay.
                planner.OnDirectLost();
            }

            var attempt = planner.Next();
            if (attempt.Kind != DirectAttemptKind.None)
            {
                _directAttempt = Task.Run(() => DirectAsync(attempt, _connection.Closed), CancellationToken.None);
            }
            else if (planner.DueIn() is { } due)
            {
                _directAttempt = WaitThenKickAsync(due, _connection.Closed);
            }
        }
    }

    /// <summary>One attempt: a join to each target in turn within the attempt's deadline; then the planner hears how it went.</summary>
    private async Task DirectAsync(DirectAttempt attempt, CancellationToken ct)
    {
        var up = false;
        try
        {
            DirectLog.Attempt(_logger, _connection.Token, attempt.Kind.ToString(), string.Join(' ', (IEnumerable<IPEndPoint>)attempt.Targets));
            if (attempt.Kind == DirectAttemptKind.Punch)
            {
                if (await PunchAsync(attempt, ct).ConfigureAwait(false) is { } punched)
                {
                    _connection.PromoteDirect(punched);
                    up = true;
                }

                return;
            }

            foreach (var target in attempt.Targets)
            {
                var left = _time.GetElapsedTime(_time.GetTimestamp(), attempt.Deadline);
                if (left <= TimeSpan.Zero || ct.IsCancellationRequested)
                {
                    break;
                }

                if (await JoinOnceAsync(null, target, left, ct).ConfigureAwait(false) is { } path)
                {
                    _connection.PromoteDirect(path);
                    up = true;
                    break;
                }
            }
        }
        finally
        {
            lock (_gate)
            {
                if (up)
                {
                    _direct?.OnDirectUp();
                }
                else
                {
                    _direct?.OnAttemptFailed();
                }
            }

            _kick.Set();
        }
    }

    /// <summary>
    /// A coordinated simultaneous open: the PUNCH frame asks the server to connect from its transport
    /// port to this end's reflexive endpoint while this end connects from its own to the server's
    /// (<see cref="SimultaneousOpen"/>); the one connection both ends get carries this end's Join
    /// (whichever SYN won), and the server accepts it only once the Join proves the session.
    /// </summary>
    private async Task<ConnectionPath?> PunchAsync(DirectAttempt attempt, CancellationToken ct)
    {
        int port;
        DirectPathPlanner planner;
        lock (_gate)
        {
            if (_punchPort is not { } bound || _direct is not { } current)
            {
                return null;
            }

            port = bound;
            planner = current;
        }

        var number = ++_punches;
        _connection.RequestPunch(number);
        var flow = await SimultaneousOpen.RunAsync(_options.FlowFactory, port, attempt.Targets, attempt.Deadline, _time, planner.NextPunchGap,
            (target, why) => PunchLog.TryFailed(_logger, _connection.Token, port, target, why), ct).ConfigureAwait(false);
        if (flow is null)
        {
            PunchLog.NoConnection(_logger, _connection.Token, "this end's", number);
            return null;
        }

        PunchLog.Connected(_logger, _connection.Token, "this end's", number, flow.LocalEndPoint, flow.RemoteEndPoint);
        var left = _time.GetElapsedTime(_time.GetTimestamp(), attempt.Deadline);
        var remote = flow.RemoteEndPoint ?? attempt.Targets[0];
        return await JoinOnceAsync(null, remote, left > _options.ResumeAttemptTimeout ? left : _options.ResumeAttemptTimeout, ct,
            _ => ValueTask.FromResult(flow)).ConfigureAwait(false);
    }

    private async Task WaitThenKickAsync(TimeSpan due, CancellationToken ct)
    {
        try
        {
            await Task.Delay(due, _time, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        _kick.Set();
    }

    private static partial class DirectLog
    {
        [LoggerMessage(9110, LogLevel.Debug, "Connection {Token:x32}: direct attempt ({Kind}) to {Targets}")]
        public static partial void Attempt(ILogger logger, UInt128 token, string kind, string targets);
    }
}
