using System.IO.Pipelines;
using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;
using Mobility.Transport.Flows;
using Mobility.Transport.Relay;

namespace Mobility.Transport;

/// <summary>
/// The call back (docs/transport.md, "Call back"): a server whose own address changed does not wait for its
/// client to hear of the move through the GNS. From its new address it opens a flow to the client's listener
/// (the old flow's remote address and the client's published endpoints, raced, each a first flight) and sends
/// a CallBack (MAC'd with the resume key, on the server's own call-back counter); the client checks it and
/// resumes on that very flow, its Resume and data going back at once, and the server checks that Resume as
/// any other. Whatever fails a check is dropped and changes nothing.
/// </summary>
public sealed partial class MobileConnection
{
    // Server: the last call-back counter used (the loop's); the call back running (one at a time) and its cancellation.
    private ulong _callBackCounter;
    private Task _callingBack = Task.CompletedTask;
    private CancellationTokenSource? _callBackCts;

    // Server: cancelled when a Resume was accepted while the call back runs: it dials nothing more, and its flows that
    // carried their CallBack wait for the client's answer still (the client may take the call back over its own Resume).
    private CancellationTokenSource? _callBackSettled;

    // Server: the client's published endpoints, looked up once when the connection starts (the daemon's locator then keeps its record watched).
    private Task<IPEndPoint[]>? _clientEndpoints;

    // Server: the active path died because this host's address went and no new address was known yet: the
    // old flow's remote address, called back when an address comes (the loop's).
    private IPAddress? _callBackOwed;

    // Client: the highest call-back counter acted on (the loop's); a call back must be above it.
    private ulong _lastCallBack;

    /// <summary>Server: how a call back is dialled and its answer served (set by the listener when <see cref="MobileTransportOptions.CallBack"/> is on).</summary>
    internal CallBackDialer? CallBacks { get; init; }

    /// <summary>Call backs this end sent (server) or acted on (client), and those it dropped (client: failed a check).</summary>
    internal (int Sent, int Accepted, int Dropped) CallBackCounts => (Volatile.Read(ref _callBacksSent), Volatile.Read(ref _callBacksAccepted), Volatile.Read(ref _callBacksDropped));

    private int _callBacksSent;
    private int _callBacksAccepted;
    private int _callBacksDropped;

    /// <summary>
    /// Server, when it starts: the client's published endpoints are looked up in the background, so a call back needs
    /// no lookup, and a connection reversal (<see cref="StartReversal"/>) can dial at once.
    /// </summary>
    private void PrefetchCallBackTargets()
    {
        if (!_isClient && CallBacks is { Targets: var locator } && (_options.CallBack || ReversalOn))
        {
            _clientEndpoints = Task.Run(async () =>
            {
                try
                {
                    var located = await locator.LocateForConnectAsync(RemoteGuid, Closed).ConfigureAwait(false);
                    return located.Endpoints.Where(e => e is not RelayEndPoint).ToArray();
                }
#pragma warning disable CA1031 // A failed lookup only means no published endpoint to call back (logged when one is needed).
                catch (Exception)
#pragma warning restore CA1031
                {
                    return Array.Empty<IPEndPoint>();
                }
            }, CancellationToken.None);
        }
    }

    /// <summary>
    /// Server, on the loop: the active path <paramref name="lost"/> died because this host's address went;
    /// when the connection has no path now, the client is called back from <paramref name="from"/> (null: no
    /// address is known yet; the call back waits for the next address list, <see cref="MaybeCallBackOwed"/>).
    /// </summary>
    private void MaybeCallBack(ConnectionPath lost, IPAddress? from)
    {
        if (_isClient || !_options.CallBack || CallBacks is null || lost.Flow.RemoteEndPoint is not { } oldRemote)
        {
            return;
        }

        _callBackOwed = Plain(oldRemote.Address);
        if (from is not null)
        {
            CallBackOwed(from);
        }
    }

    /// <summary>
    /// Server, on the loop: the host's usable addresses are <paramref name="addresses"/>; a call back owed
    /// (the path died with an address and none was left then) goes from one of the client's family.
    /// </summary>
    private void MaybeCallBackOwed(IPAddress[] addresses)
    {
        if (_callBackOwed is { } owed && addresses.Length > 0)
        {
            CallBackOwed(addresses.FirstOrDefault(a => a.AddressFamily == owed.AddressFamily) ?? addresses[0]);
        }
    }

    private void CallBackOwed(IPAddress from)
    {
        if (_callBackOwed is not { } oldAddress || CallBacks is not { } dialer)
        {
            return;
        }

        _callBackOwed = null;
        if (_failure is not null || _completed || _paths.Active is not null)
        {
            return;
        }

        // One call back at a time: a newer move ends the previous one (its source address is gone). The sources are
        // linked to the connection's end and left to it (one per call back).
        EndCallBack();
        var cts = CancellationTokenSource.CreateLinkedTokenSource(Closed);
        _callBackCts = cts;
        var settled = CancellationTokenSource.CreateLinkedTokenSource(cts.Token);
        _callBackSettled = settled;
        var counter = ++_callBackCounter;
        var message = SealCallBack(counter).ToArray();
        var previous = _callingBack;
        var prefetched = _clientEndpoints ?? Task.FromResult(Array.Empty<IPEndPoint>());
        _callingBack = Task.Run(async () =>
        {
            await previous.ConfigureAwait(false);
            await CallBackAsync(dialer, message, counter, oldAddress, from, prefetched, settled.Token, cts.Token).ConfigureAwait(false);
        }, CancellationToken.None);
    }

    /// <summary>Server, on the loop: a newer move calls back from elsewhere: the call back running ends, its flows closed.</summary>
    private void EndCallBack()
    {
        if (_callBackCts is { IsCancellationRequested: false } running)
        {
            // Off the loop: the call back's tries wind down (close their flows) on the pool.
            _ = running.CancelAsync();
        }
    }

    /// <summary>
    /// Server, on the loop: a Resume was accepted. Answered on a call-back flow, that try has ended the others already;
    /// through the listener (the client resumed on its own: a push or a lookup named this host's new address), the call
    /// back dials nothing more, while its flows that carried their CallBack still wait for an answer: a client whose own
    /// Resume was not answered yet takes a call back over it (its handshake is done and it names this end's position),
    /// and then answers with a newer Resume there. A client that does not drops the flow at once.
    /// </summary>
    private void SettleCallBack()
    {
        if (_callBackSettled is { IsCancellationRequested: false } settled)
        {
            _ = settled.CancelAsync();
        }
    }

    /// <summary>This connection's CallBack with <paramref name="counter"/>, MAC'd with its resume key (the tests replay one with it).</summary>
    internal CallBackRequest SealCallBack(ulong counter) => CallBackRequest.Create(_resumeKey, ClientGuid, ServerGuid, Token, counter, (ulong)_receive.ReceivedValue);

    /// <summary>
    /// The targets: the client's published endpoints, and its old address at each of their ports (the old
    /// flow's port is the client's own, not its listener's); relays never. Distinct, published ones first.
    /// </summary>
    internal static IPEndPoint[] CallBackTargets(IPAddress oldAddress, IReadOnlyList<IPEndPoint> published, int max)
    {
        var targets = new List<IPEndPoint>();
        foreach (var endpoint in published)
        {
            var plain = new IPEndPoint(Plain(endpoint.Address), endpoint.Port);
            if (endpoint is not RelayEndPoint && !targets.Contains(plain))
            {
                targets.Add(plain);
            }
        }

        foreach (var port in published.Where(e => e is not RelayEndPoint).Select(e => e.Port).Distinct().ToArray())
        {
            var old = new IPEndPoint(oldAddress, port);
            if (!targets.Contains(old))
            {
                targets.Insert(0, old);
            }
        }

        return [.. targets.Take(max)];
    }

    /// <summary>
    /// One call back: the targets known now (the endpoints looked up when the connection started) at once; those a
    /// fresh look at the client's record adds (mobilityd: its watched record, no round trip while it is current) and
    /// those a push of the client's record names while the call back runs (the client moved too) as they come, all
    /// with the same counter, so the client acts on one of them at most. Ends when one is answered by an accepted
    /// Resume, when the connection has a path again, or after <see cref="MobileTransportOptions.HandshakeTimeout"/>.
    /// </summary>
    private async Task CallBackAsync(CallBackDialer dialer, byte[] message, ulong counter, IPAddress oldAddress, IPAddress? from,
        Task<IPEndPoint[]> prefetched, CancellationToken settled, CancellationToken ct)
    {
        using var done = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var limit = new CancellationTokenSource(_options.HandshakeTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(done.Token, limit.Token);
        // Dialling (new targets, the race's second tries, a flow still connecting) ends when the call back settles too.
        using var dialling = CancellationTokenSource.CreateLinkedTokenSource(linked.Token, settled);
        var gate = new Lock();
        var dialled = new HashSet<IPEndPoint>();
        var tries = new List<Task>();
        // Returns how many targets it added (0: all dialled already, the call back settled, or the limit reached).
        int Dial(IReadOnlyList<IPEndPoint> published, string source)
        {
            var targets = CallBackTargets(oldAddress, published, CallBackDialer.MaxTargets);
            List<IPEndPoint> added = [];
            bool first;
            lock (gate)
            {
                if (dialling.IsCancellationRequested)
                {
                    return 0;
                }

                first = dialled.Count == 0;
                foreach (var target in targets)
                {
                    if (dialled.Count < CallBackDialer.MaxDialled && dialled.Add(target))
                    {
                        added.Add(target);
                        tries.Add(CallBackOneAsync(dialer, message, counter, target, from, again: false, done, dialling.Token, linked.Token));
                    }
                }
            }

            if (added.Count > 0)
            {
                var list = string.Join(' ', added);
                if (first)
                {
                    Interlocked.Increment(ref _callBacksSent);
                }

                _timeline.Record(MoveEventKind.CallBackSent, $"counter {counter} to {list} ({source})");
                CallBackLog.Sending(_logger, Token, counter, from, $"{list} ({source})");
            }

            return added.Count;
        }

        void OnPush(object? sender, PeerEndpointsChangedEventArgs e)
        {
            if (e.Guid == RemoteGuid && _publishedPath is not { Established: true })
            {
                Dial([.. e.Endpoints.Where(p => p is not RelayEndPoint)], "pushed");
            }
        }

        // A lost SYN (or CallBack in it) would cost the kernel's 1 s retransmission: each target still unanswered is
        // dialled again after max(2 x RTT, 50 ms), the wait doubling, as the client's resume race does.
        async Task RaceAsync()
        {
            if (Statistics.LastRtt is not { } rtt)
            {
                return;
            }

            var wait = TimeSpan.FromTicks(Math.Clamp(2 * rtt.Ticks, CallBackDialer.RaceDelayMin.Ticks, CallBackDialer.RaceDelayMax.Ticks));
            try
            {
                while (true)
                {
                    await Task.Delay(wait, _time, dialling.Token).ConfigureAwait(false);
                    IPEndPoint[] again;
                    lock (gate)
                    {
                        if (dialling.IsCancellationRequested)
                        {
                            return;
                        }

                        again = [.. dialled.Take(Math.Max(0, CallBackDialer.MaxDialled - tries.Count))];
                        foreach (var target in again)
                        {
                            tries.Add(CallBackOneAsync(dialer, message, counter, target, from, again: true, done, dialling.Token, linked.Token));
                        }
                    }

                    if (again.Length == 0)
                    {
                        return;
                    }

                    CallBackLog.Raced(_logger, Token, counter, string.Join(' ', again), wait.TotalMilliseconds);
                    wait *= 2;
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        // This end moved (that is why it calls back), so its own watch of the client's record re-opens from the new
        // address: a client that moved at the same moment is named neither by the record looked up now (its update is
        // still on its way to the GNS) nor, until that watch is up again (tens of ms on a loaded host), by a push. The
        // record is looked at again a quarter of a round trip apart, a few times, until a look names a target not
        // dialled yet, the record is kept current again (the watch is back: a change comes as a push) or the call
        // back settles (docs/transport.md, "Call back").
        async Task LookAgainAsync()
        {
            if (Statistics.LastRtt is not { } rtt)
            {
                return;
            }

            var every = TimeSpan.FromTicks(Math.Clamp(rtt.Ticks / 4, CallBackDialer.LookAgainMin.Ticks, CallBackDialer.LookAgainMax.Ticks));
            try
            {
                for (var look = 0; look < CallBackDialer.MaxLooksAgain; look++)
                {
                    await Task.Delay(every, _time, dialling.Token).ConfigureAwait(false);
                    var again = await dialer.Targets.LocateForConnectAsync(RemoteGuid, dialling.Token).ConfigureAwait(false);
                    if (again.FromCache)
                    {
                        return;
                    }

                    if (Dial([.. again.Endpoints.Where(p => p is not RelayEndPoint)], "looked up again") > 0)
                    {
                        return;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
#pragma warning disable CA1031 // A failed look leaves the targets known so far, and the pushes (logged).
            catch (Exception e)
#pragma warning restore CA1031
            {
                CallBackLog.NotSent(_logger, Token, counter, $"the client's record could not be looked up again: {e.Message}");
            }
        }

        dialer.Targets.EndpointsChanged += OnPush;
        Task racing = Task.CompletedTask;
        Task lookingAgain = Task.CompletedTask;
        try
        {
            Dial(prefetched.IsCompletedSuccessfully ? prefetched.Result : [], "known");
            racing = RaceAsync();
            try
            {
                var fresh = await dialer.Targets.LocateForConnectAsync(RemoteGuid, dialling.Token).ConfigureAwait(false);
                Dial([.. fresh.Endpoints.Where(p => p is not RelayEndPoint)], fresh.FromCache ? "kept record" : "looked up");
                if (!fresh.FromCache)
                {
                    lookingAgain = LookAgainAsync();
                }
            }
            catch (OperationCanceledException)
            {
            }
#pragma warning disable CA1031 // A failed lookup leaves the targets known so far (logged).
            catch (Exception e)
#pragma warning restore CA1031
            {
                CallBackLog.NotSent(_logger, Token, counter, $"the client's record could not be looked up: {e.Message}");
            }

            if (dialled.Count == 0)
            {
                // No published endpoint: the client's listener port is unknown (a client without a listener, or not published).
                CallBackLog.NotSent(_logger, Token, counter, "no listener endpoint of the client is known");
            }

            // Until every try ended (pushes may add some meanwhile) or the call back's time is up.
            while (true)
            {
                Task[] running;
                lock (gate)
                {
                    running = [.. tries.Where(t => !t.IsCompleted)];
                }

                if (running.Length == 0)
                {
                    if (dialling.IsCancellationRequested)
                    {
                        break;
                    }

                    // Nothing in flight: wait for a push (or the end) a while.
                    try
                    {
                        await Task.Delay(Timeout.InfiniteTimeSpan, _time, dialling.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }

                    continue;
                }

                await Task.WhenAll(running).ConfigureAwait(false);
                if (done.IsCancellationRequested)
                {
                    break;
                }
            }
        }
        finally
        {
            dialer.Targets.EndpointsChanged -= OnPush;
        }

        lock (gate)
        {
            linked.Cancel();
        }

        await racing.ConfigureAwait(false);
        await lookingAgain.ConfigureAwait(false);

        Task[] left;
        lock (gate)
        {
            left = [.. tries];
        }

        await Task.WhenAll(left).ConfigureAwait(false);
    }

    /// <summary>
    /// One target: a first-flight flow from the listener's port (its connect ends with <paramref name="dialling"/>),
    /// the CallBack, then the client's Resume on it (checked as any Resume; awaited until <paramref name="ct"/>).
    /// Dialled <paramref name="again"/> (the first try unanswered), from an ephemeral port: the first try's socket, still
    /// waiting for its SYN-ACK, holds the listener port's 4-tuple to the target, and the kernel refuses a second one
    /// (EADDRNOTAVAIL), which left a lost CallBack SYN to the kernel's 1 s retransmission.
    /// </summary>
    private async Task CallBackOneAsync(CallBackDialer dialer, byte[] message, ulong counter, IPEndPoint target, IPAddress? from, bool again,
        CancellationTokenSource done, CancellationToken dialling, CancellationToken ct)
    {
        var resume = await DialAndAcceptAnswerAsync(
            async c =>
            {
                using var connecting = CancellationTokenSource.CreateLinkedTokenSource(c, dialling);
                return again
                    ? await dialer.Flows.ConnectFirstFlightAsync(target, from, connecting.Token).ConfigureAwait(false)
                    : await dialer.Flows.ConnectFirstFlightAsync(target, from, dialer.LocalPort(), connecting.Token).ConfigureAwait(false);
            },
            message, standby: false,
            () => _publishedPath is { Established: true } or { AwaitingResumeAck: not null } || _failure is not null ? "not needed: the connection has a path again" : null,
            reason => CallBackLog.Failed(_logger, Token, counter, target, reason), done, ct).ConfigureAwait(false);
        if (resume is not null)
        {
            CallBackLog.Answered(_logger, Token, counter, target, resume.Counter);
        }
    }

    /// <summary>
    /// Client: a CallBack for this connection arrived on <paramref name="flow"/> (accepted by this host's
    /// listener). Its MAC is checked here, its counter on the loop; true when the connection resumes on the
    /// flow (the Resume is on its way), false when it was dropped (the caller closes the flow).
    /// </summary>
    internal Task<bool> TryAcceptCallBackAsync(IFlow flow, PipeReader reader, CallBackRequest callBack)
        => OfferToLoopAsync(flow, reader, callBack, ref _callBacksDropped);

    /// <summary>Client, on the loop: a call back whose MAC checked is acted on if its counter is fresh; the flow becomes a resuming path.</summary>
    private void OnCallBackOffered(ServerDialOffered<CallBackRequest> offer)
    {
        var request = offer.Request;
        var why = !_options.CallBack ? "call backs are off"
            : ServerDialRefusal(offer, _lastCallBack)
                ?? (request.ReceivedOffset > (ulong)_send.MaxPeerReceived ? $"it claims {request.ReceivedOffset} bytes received of {_send.MaxPeerReceived} sent" : null);
        if (why is not null)
        {
            Interlocked.Increment(ref _callBacksDropped);
            CallBackLog.Dropped(_logger, Token, offer.Flow.RemoteEndPoint, why);
            offer.Answer.TrySetResult(false);
            return;
        }

        _lastCallBack = request.Counter;
        if (_paths.Active is { IsStopped: false, Flow.RemoteEndPoint: { } current } active && offer.Flow.RemoteEndPoint is { } caller
            && Plain(current.Address).Equals(Plain(caller.Address)) && !HeldForAnswer(active))
        {
            // This end already resumed (or is resuming) to the address the server called from (a push or a lookup came
            // first): the first to go wins; switching again would only throw that Resume and its data away.
            Interlocked.Increment(ref _callBacksDropped);
            CallBackLog.Dropped(_logger, Token, caller, $"counter {request.Counter}: the path to {current} is already in use");
            offer.Answer.TrySetResult(false);
            return;
        }

        Interlocked.Increment(ref _callBacksAccepted);
        if (offer.Flow.RemoteEndPoint is { } calledFrom)
        {
            // Should this path die before it is answered, the client's own resume goes where the server proved to be: its
            // address, at its listener's port (a call back dialled again comes from an ephemeral port).
            _supervisor?.PreferAddress(Plain(calledFrom.Address), calledFrom.Port);
        }

        _timeline.Record(MoveEventKind.CallBackReceived, $"counter {request.Counter} from {offer.Flow.RemoteEndPoint}");
        var path = new ConnectionPath(offer.Flow, offer.Reader, null, established: false) { CalledBack = true };
        _pathLostAt ??= _time.GetTimestamp();
        // The server's receive position as it sent the CallBack: the data behind the Resume starts exactly there, so the
        // new flow's first window carries new bytes, not bytes the server already has (its last ACK may be stale).
        _send.ApplyPeerReceived((long)request.ReceivedOffset);
        _resendFrom = null;
        BeginResumeOnLoop(path);
        Publish();
        offer.Answer.TrySetResult(true);
    }

    /// <summary>
    /// Client: whether <paramref name="path"/>'s Resume is not answered yet and its first flight held the data back for
    /// the answer (it sent only the SYN's room: more was in doubt than a first window, or it started beyond the last
    /// ACK). Nothing more of it reaches the server before the ResumeAck's round trip, and the SYN's bytes may miss the
    /// server's position (both moved at once: the bytes in flight to the server's old address were lost with it; or the
    /// last ACK was stale). A call back's flow has its handshake done and names that position, so a Resume there brings
    /// the data half a round trip after the CallBack came; its higher counter makes the server take it even after the
    /// first (docs/transport.md, "Call back").
    /// </summary>
    private static bool HeldForAnswer(ConnectionPath path)
        => path is { Established: false, AwaitingResumeAck: not null, HoldsUntilAnswered: true };

    private static partial class CallBackLog
    {
        [LoggerMessage(9800, LogLevel.Debug, "Connection {Token:x32}: call back {Counter} from {From} to {Targets}")]
        public static partial void Sending(ILogger logger, UInt128 token, ulong counter, IPAddress? from, string targets);

        [LoggerMessage(9801, LogLevel.Debug, "Connection {Token:x32}: call back {Counter} not sent: {Reason}")]
        public static partial void NotSent(ILogger logger, UInt128 token, ulong counter, string reason);

        [LoggerMessage(9802, LogLevel.Debug, "Connection {Token:x32}: call back {Counter} to {Target} failed: {Reason}")]
        public static partial void Failed(ILogger logger, UInt128 token, ulong counter, IPEndPoint target, string reason);

        [LoggerMessage(9803, LogLevel.Debug, "Connection {Token:x32}: call back {Counter} to {Target} answered by the client's Resume {Resume}")]
        public static partial void Answered(ILogger logger, UInt128 token, ulong counter, IPEndPoint target, ulong resume);

        [LoggerMessage(9804, LogLevel.Debug, "Connection {Token:x32}: call back from {Remote} dropped: {Reason}")]
        public static partial void Dropped(ILogger logger, UInt128 token, IPEndPoint? remote, string reason);

        [LoggerMessage(9321, LogLevel.Debug, "Connection {Token:x32}: call back {Counter} unanswered after {Ms:0} ms: dialled again to {Targets}")]
        public static partial void Raced(ILogger logger, UInt128 token, ulong counter, string targets, double ms);
    }
}

/// <summary>
/// Server: how a connection calls its client back (and reverses a relayed connection): <see cref="Flows"/> opens the flow (a first flight from
/// <see cref="LocalPort"/>, the listener's port, so the client sees the server's published endpoint),
/// <see cref="Targets"/> (when set) gives the client's published endpoints.
/// </summary>
/// <param name="LocalAddress">The address to dial from (the listener's, when it is bound to one; null: the route's source).</param>
internal sealed record CallBackDialer(IFlowFactory Flows, Func<int> LocalPort, IPeerLocator Targets, Func<IPAddress?>? LocalAddress = null)
{
    /// <summary>Most endpoints one look at the client's record adds (the old address at the published port, then the published ones).</summary>
    public const int MaxTargets = 4;

    /// <summary>Most flows one call back opens in all (a handful of looks and pushes, and the race's second tries).</summary>
    public const int MaxDialled = 8;

    /// <summary>The least wait before an unanswered target is dialled again (a loaded host's answer may just be late), as the resume race's.</summary>
    public static readonly TimeSpan RaceDelayMin = TimeSpan.FromMilliseconds(50);

    /// <summary>The most: beyond it the kernel's own SYN retransmission (1 s) is about as near.</summary>
    public static readonly TimeSpan RaceDelayMax = TimeSpan.FromMilliseconds(750);

    /// <summary>
    /// Most looks at the client's record after the first while this end's own watch of it re-opens (a quarter of a round
    /// trip apart: they cover a round trip and a half, by when the client's update has reached the GNS or the watch is up).
    /// </summary>
    public const int MaxLooksAgain = 6;

    /// <summary>The least wait between two of those looks.</summary>
    public static readonly TimeSpan LookAgainMin = TimeSpan.FromMilliseconds(10);

    /// <summary>The most.</summary>
    public static readonly TimeSpan LookAgainMax = TimeSpan.FromMilliseconds(250);
}
