using System.IO.Pipelines;
using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;
using Mobility.Transport.Flows;

namespace Mobility.Transport;

/// <summary>
/// Connection reversal (docs/transport.md, "Connection reversal"): a server whose connection runs through a relay
/// (it is behind a NAT without a path in) dials its client's published listener endpoints (the client's record, looked
/// up when the connection started, as for a call back) from an ephemeral port and sends a Reverse, MAC'd with the
/// resume key under its own context, on the server's own reversal counter. The client checks it as strictly as a
/// CallBack and answers with a Join on that flow: the flow becomes a standby path, then the client's active (direct)
/// path, the relayed one staying as a standby, exactly as after a direct candidate the client dialled. Whatever
/// fails a check is dropped and changes nothing. A failed attempt, or a direct path that dies, waits the
/// <see cref="DirectPathPlanner"/>'s back-off before the next.
/// </summary>
public sealed partial class MobileConnection
{
    // Server: the reversal task (one per connection, awaited when the connection ends), its wake-up (the loop releases it
    // when the active path turns relayed or direct) and the last reversal counter used (the task's).
    private Task _reversing = Task.CompletedTask;
    private readonly SemaphoreSlim _reversalKick = new(0, 1);
    private bool _publishedRelayed;
    private ulong _reverseCounter;

    // Server: the client's last CANDIDATES said it punches (behind a NAT that maps endpoint-independently) and this end takes
    // PUNCH frames: the punch is the way in, and a reversal to the client's reflexive endpoint only meets its NAT. The
    // running attempt, if any, is cut.
    private volatile bool _peerPunches;
    private CancellationTokenSource? _reverseAttempt;

    // Client, loop-owned: the highest reversal counter acted on, and the join a reversal started (one at a time).
    private ulong _lastReverse;
    private Task _reverseJoin = Task.CompletedTask;

    private int _reversesSent;
    private int _reversesJoined;
    private int _reversesDropped;

    /// <summary>Reversal attempts this end made (server), reversals it joined on (client, the Join answered) and those it dropped (client: failed a check).</summary>
    internal (int Sent, int Joined, int Dropped) ReverseCounts => (Volatile.Read(ref _reversesSent), Volatile.Read(ref _reversesJoined), Volatile.Read(ref _reversesDropped));

    private bool ReversalOn => _options.ConnectionReversal && _options.DirectPaths && _options.MaxStandbyPaths > 0;

    /// <summary>Server, on the loop: the client's CANDIDATES arrived; <paramref name="punches"/>: it punches and this end takes PUNCH frames.</summary>
    private void OnPeerPunchesForReversal(bool punches)
    {
        if (_isClient || punches == _peerPunches)
        {
            return;
        }

        _peerPunches = punches;
        if (punches && Volatile.Read(ref _reverseAttempt) is { } running)
        {
            try
            {
                running.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The attempt ended meanwhile.
            }
        }

        WakeReversal();
    }

    /// <summary>This connection's Reverse with <paramref name="counter"/> (the tests replay one with it).</summary>
    internal ReverseRequest SealReverse(ulong counter) => ReverseRequest.Create(_resumeKey, ClientGuid, ServerGuid, Token, counter);

    /// <summary>Server, when it starts (after the prefetch of the client's record): the reversal task, when this end may dial.</summary>
    private void StartReversal()
    {
        if (!_isClient && ReversalOn && CallBacks is { } dialer && _clientEndpoints is { } published)
        {
            _reversing = Task.Run(() => ReverseLoopAsync(dialer, published, Closed), CancellationToken.None);
        }
    }

    /// <summary>On the loop, publishing: the server's reversal task wakes when its active path turns relayed or not.</summary>
    private void KickReversal(ConnectionPath? active)
    {
        var relayed = active is { Established: true } && IsRelayed(active);
        if (_isClient || relayed == _publishedRelayed)
        {
            return;
        }

        _publishedRelayed = relayed;
        WakeReversal();
    }

    /// <summary>Wakes the server's reversal task (it looks at the path and its targets again).</summary>
    private void WakeReversal()
    {
        if (_reversalKick.CurrentCount == 0)
        {
            try
            {
                _reversalKick.Release();
            }
            catch (SemaphoreFullException)
            {
                // Released meanwhile by the task's own wait ending: it looks at the path anyway.
            }
        }
    }

    /// <summary>
    /// The client's published listener endpoints a reversal dials: distinct, never a relay, at most
    /// <see cref="CallBackDialer.MaxTargets"/> (only addresses the client's record publishes: this end must not
    /// become a SYN reflector for an authenticated peer).
    /// </summary>
    internal static IPEndPoint[] ReversalTargets(IReadOnlyList<IPEndPoint> published, int max)
    {
        var targets = new List<IPEndPoint>();
        foreach (var endpoint in published)
        {
            var plain = new IPEndPoint(Plain(endpoint.Address), endpoint.Port);
            if (endpoint is not Relay.RelayEndPoint && plain.Port != 0 && !targets.Contains(plain))
            {
                targets.Add(plain);
            }
        }

        return [.. targets.Take(max)];
    }

    /// <summary>
    /// Server: while the connection lives, whenever its active path is relayed and an attempt is due (the planner's
    /// back-off), one reversal; then it sleeps until the path changes, the client's record is pushed, or the back-off
    /// ends. A push of the client's record (it moved, or published a listener) replaces the targets and starts the
    /// back-off over, as new candidates do for the client's own attempts.
    /// </summary>
    private async Task ReverseLoopAsync(CallBackDialer dialer, Task<IPEndPoint[]> published, CancellationToken ct)
    {
        IPEndPoint[]? pushed = null;
        void OnPush(object? sender, PeerEndpointsChangedEventArgs e)
        {
            if (e.Guid == RemoteGuid)
            {
                Volatile.Write(ref pushed, ReversalTargets(e.Endpoints, CallBackDialer.MaxTargets));
                WakeReversal();
            }
        }

        dialer.Targets.EndpointsChanged += OnPush;
        try
        {
            await ReverseWhileAliveAsync(dialer, ReversalTargets(await published.ConfigureAwait(false), CallBackDialer.MaxTargets), () => Interlocked.Exchange(ref pushed, null), ct)
                .ConfigureAwait(false);
        }
        finally
        {
            dialer.Targets.EndpointsChanged -= OnPush;
        }
    }

    private async Task ReverseWhileAliveAsync(CallBackDialer dialer, IPEndPoint[] targets, Func<IPEndPoint[]?> takePushed, CancellationToken ct)
    {
        if (targets.Length == 0 && !ct.IsCancellationRequested)
        {
            ReverseLog.NotTried(_logger, Token, "the client's record publishes no listener endpoint (until a push names one)");
        }

        var planner = new DirectPathPlanner(_time, _options.DirectAttemptTimeout, _options.DirectRetryMin, _options.DirectRetryMax, Random.Shared.NextDouble);
        planner.OnPeerCandidates(false, [.. targets.Select(t => new DirectCandidate(DirectCandidateKind.Reflexive, t))]);
        while (!ct.IsCancellationRequested)
        {
            if (takePushed() is { } fresh && !fresh.SequenceEqual(targets))
            {
                targets = fresh;
                planner.OnPeerCandidates(false, [.. targets.Select(t => new DirectCandidate(DirectCandidateKind.Reflexive, t))]);
            }

            TimeSpan? wait = null;
            if (_publishedPath is { Established: true, IsStopped: false } active && IsRelayed(active) && !_peerPunches)
            {
                if (planner.IsDirect)
                {
                    // The direct path this end dialled died: the client fell back to the relay.
                    planner.OnDirectLost();
                }

                var attempt = planner.Next();
                if (attempt.Kind != DirectAttemptKind.None)
                {
                    var joined = await ReverseOnceAsync(dialer, attempt, ct).ConfigureAwait(false);
                    if (joined)
                    {
                        planner.OnDirectUp();
                    }
                    else
                    {
                        planner.OnAttemptFailed();
                    }

                    continue;
                }

                // Whole milliseconds, at least one: a timer (a virtual one too) may fire a shorter wait at once, and the
                // attempt would not be due yet: a busy loop.
                wait = planner.DueIn() is { } due ? TimeSpan.FromMilliseconds(Math.Max(1, Math.Ceiling(due.TotalMilliseconds))) : null;
            }

            using var sleep = CancellationTokenSource.CreateLinkedTokenSource(ct);
            try
            {
                var kicked = _reversalKick.WaitAsync(sleep.Token);
                var due = wait is { } w ? Task.Delay(w, _time, sleep.Token) : Task.Delay(Timeout.InfiniteTimeSpan, sleep.Token);
                await Task.WhenAny(kicked, due).ConfigureAwait(false);
                await sleep.CancelAsync().ConfigureAwait(false);
                await Task.WhenAll(kicked, due).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The wait that lost (or the connection's end).
            }
        }
    }

    /// <summary>
    /// One reversal: a first flight from an ephemeral port to each target at once, all with the same counter (the
    /// client acts on one at most); true when one's Join was accepted (the flow is a standby path the client moves to).
    /// </summary>
    private async Task<bool> ReverseOnceAsync(CallBackDialer dialer, DirectAttempt attempt, CancellationToken ct)
    {
        var counter = ++_reverseCounter;
        var message = SealReverse(counter).ToArray();
        Interlocked.Increment(ref _reversesSent);
        var from = dialer.LocalAddress?.Invoke();
        ReverseLog.Sending(_logger, Token, counter, from, string.Join(' ', (IEnumerable<IPEndPoint>)attempt.Targets));
        using var done = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var limit = new CancellationTokenSource(_time.GetElapsedTime(_time.GetTimestamp(), attempt.Deadline), _time);
        using var cut = new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(done.Token, limit.Token, cut.Token);
        Volatile.Write(ref _reverseAttempt, cut);
        if (_peerPunches)
        {
            // The client's punch flag came while this attempt was being set up.
            await cut.CancelAsync().ConfigureAwait(false);
        }

        try
        {
            var tries = attempt.Targets.Select(target => ReverseOneAsync(dialer, message, counter, target, from, done, linked.Token)).ToArray();
            var results = await Task.WhenAll(tries).ConfigureAwait(false);
            return results.Any(r => r);
        }
        finally
        {
            Interlocked.CompareExchange(ref _reverseAttempt, null, cut);
        }
    }

    /// <summary>
    /// One target: a first flight from an ephemeral port, the Reverse, then the client's Join on it (checked as any Join).
    /// Not from the transport port: the client's punch comes from its transport port to that port, and a reversal to the
    /// client's reflexive endpoint from there is one 4-tuple with it (the netlab's <c>nat-direct-punch-drop</c> under load:
    /// a reversal started before the client's punch flag arrived, the punch's SYN met its socket, the punch's Join was
    /// refused and the server's own punch tries failed with "Cannot assign requested address"; the connection stayed
    /// relayed). The client takes a Reverse on its listener from any source port.
    /// </summary>
    private async Task<bool> ReverseOneAsync(CallBackDialer dialer, byte[] message, ulong counter, IPEndPoint target, IPAddress? from,
        CancellationTokenSource done, CancellationToken ct)
    {
        // No local port given: an ephemeral one (see above).
        var join = await DialAndAcceptAnswerAsync(
            c => dialer.Flows.ConnectFirstFlightAsync(target, from, c), message, standby: true, notNeeded: null,
            reason => ReverseLog.Failed(_logger, Token, counter, target, reason), done, ct).ConfigureAwait(false);
        if (join is null)
        {
            return false;
        }

        ReverseLog.Joined(_logger, Token, counter, target, join.Counter);
        return true;
    }

    /// <summary>
    /// Client: a Reverse for this connection arrived on <paramref name="flow"/> (accepted by this host's listener). Its
    /// MAC is checked here, the rest on the loop; true when the connection joins on the flow (its Join is on its way),
    /// false when it was dropped (the caller closes the flow; nothing was sent on it).
    /// </summary>
    internal Task<bool> TryAcceptReverseAsync(IFlow flow, PipeReader reader, ReverseRequest reverse)
        => OfferToLoopAsync(flow, reader, reverse, ref _reversesDropped);

    /// <summary>Client, on the loop: a reversal whose MAC checked is joined on if its counter is fresh and the connection runs through a relay.</summary>
    private void OnReverseOffered(ServerDialOffered<ReverseRequest> offer)
    {
        var request = offer.Request;
        var why = !ReversalOn ? "connection reversal is off"
            : ServerDialRefusal(offer, _lastReverse)
                ?? (_paths.Active is not { Established: true, IsStopped: false } active ? "no established path"
                    : !IsRelayed(active) ? "the active path is not relayed"
                    : !_reverseJoin.IsCompleted ? "a reversal's join is running"
                    : null);
        if (why is not null)
        {
            Interlocked.Increment(ref _reversesDropped);
            ReverseLog.Dropped(_logger, Token, offer.Flow.RemoteEndPoint, why);
            offer.Answer.TrySetResult(false);
            return;
        }

        _lastReverse = request.Counter;
        var path = new ConnectionPath(offer.Flow, offer.Reader, null, established: false) { Joining = true };
        BeginJoinOnLoop(path);
        ReverseLog.Joining(_logger, Token, offer.Flow.RemoteEndPoint, request.Counter);
        offer.Answer.TrySetResult(true);
        _reverseJoin = Task.Run(() => AwaitReverseJoinAsync(path, request.Counter), CancellationToken.None);
    }

    /// <summary>Client: the server's JoinAck on a reversal's flow makes it the direct path (as a dialled candidate's); no answer in time, it is closed.</summary>
    private async Task AwaitReverseJoinAsync(ConnectionPath path, ulong counter)
    {
        string? failure;
        try
        {
            var result = await path.ResumeResult.Task.WaitAsync(_options.DirectAttemptTimeout, _time, Closed).ConfigureAwait(false);
            if (result is null)
            {
                Interlocked.Increment(ref _reversesJoined);
                Post(new DirectJoined(path));
                return;
            }

            failure = "refused: " + result.Value;
        }
        catch (TimeoutException)
        {
            failure = "no JoinAck in time";
        }
        catch (OperationCanceledException)
        {
            return;
        }

        ReverseLog.Dropped(_logger, Token, path.Flow.RemoteEndPoint, $"counter {counter}: join failed: {failure}");
        Post(new PathLost(path, "reversal's join failed: " + failure));
    }

    private static partial class ReverseLog
    {
        [LoggerMessage(10200, LogLevel.Debug, "Connection {Token:x32}: reversal {Counter} from {From} to {Targets}")]
        public static partial void Sending(ILogger logger, UInt128 token, ulong counter, IPAddress? from, string targets);

        [LoggerMessage(10201, LogLevel.Debug, "Connection {Token:x32}: no reversal: {Reason}")]
        public static partial void NotTried(ILogger logger, UInt128 token, string reason);

        [LoggerMessage(10202, LogLevel.Debug, "Connection {Token:x32}: reversal {Counter} to {Target} failed: {Reason}")]
        public static partial void Failed(ILogger logger, UInt128 token, ulong counter, IPEndPoint target, string reason);

        [LoggerMessage(10203, LogLevel.Debug, "Connection {Token:x32}: reversal {Counter} to {Target} answered by the client's Join {Join}: a direct standby path")]
        public static partial void Joined(ILogger logger, UInt128 token, ulong counter, IPEndPoint target, ulong join);

        [LoggerMessage(10204, LogLevel.Debug, "Connection {Token:x32}: reversal from {Remote} dropped: {Reason}")]
        public static partial void Dropped(ILogger logger, UInt128 token, IPEndPoint? remote, string reason);

        [LoggerMessage(10205, LogLevel.Debug, "Connection {Token:x32}: reversal {Counter} from {Remote}: joining on its flow")]
        public static partial void Joining(ILogger logger, UInt128 token, IPEndPoint? remote, ulong counter);
    }
}
