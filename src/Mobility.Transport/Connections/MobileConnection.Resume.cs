using System.IO.Pipelines;
using System.Net;
using Mobility.Protocol;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;
using Mobility.Transport.Flows;
using Mobility.Transport.Internal;

namespace Mobility.Transport;

public sealed partial class MobileConnection
{
    // Client side (unused on the server).
    private readonly AsyncAutoResetSignal _kick = new();
    private Task _supervisor = Task.CompletedTask;
    private MobileConnectionOptions? _clientOptions;
    private IPeerLocator? _locator;
    private IPAddress? _localAddress;
    private IReadOnlyList<IPEndPoint> _endpoints = [];
    private int _planVersion;
    private ulong _resumeCounter; // the client's last Resume

    // Server side.
    private readonly ResumeResponder _responder;

    // The path died silently (no RST, no event): the cached endpoint is suspect, ask the locator first.
    private bool _relocateFirst;

    // The local address changed: the peer may have moved at the same moment (and its push may not
    // reach us, since our own watch moved too), so the next attempt races a fresh lookup.
    private bool _raceLocate;

    /// <summary>Server side: resumes refused since the last accepted one (for tests and diagnostics).</summary>
    internal int ResumesRejected
    {
        get
        {
            lock (_lock)
            {
                return _stats.ResumesRejected;
            }
        }
    }

    /// <summary>Client: attaches the handshake flow and starts supervising the path.</summary>
    internal void StartClient(IFlow flow, PipeReader reader, byte[] clientFinish, MobileConnectionOptions options, IPeerLocator? locator, IReadOnlyList<IPEndPoint> endpoints, IPAddress? localAddress)
    {
        _clientOptions = options;
        _locator = locator;
        _localAddress = localAddress;
        _endpoints = endpoints;
        if (locator is not null)
        {
            locator.EndpointsChanged += OnEndpointsChanged;
        }

        var path = new ConnectionPath(flow, reader, clientFinish, established: true);
        lock (_lock)
        {
            ActivatePathLocked(path);
        }

        StartLoops(path);
        _supervisor = Task.Run(SuperviseAsync);
    }

    /// <summary>Server: attaches the flow the handshake ran on.</summary>
    internal void StartServer(IFlow flow, PipeReader reader)
    {
        var path = new ConnectionPath(flow, reader, null, established: true);
        lock (_lock)
        {
            ActivatePathLocked(path);
        }

        StartLoops(path);
    }

    private void UnsubscribeLocator()
    {
        if (_locator is { } locator)
        {
            locator.EndpointsChanged -= OnEndpointsChanged;
        }
    }

    /// <summary>
    /// Client: the local address changed (the daemon calls this on OS events). The current flow is
    /// abandoned and a new one is opened at once from <paramref name="newLocalAddress"/> (null: let
    /// the OS choose). On the server side this only drops the current flow.
    /// </summary>
    public void NotifyLocalAddressChanged(IPAddress? newLocalAddress = null)
    {
        ConnectionPath? old;
        lock (_lock)
        {
            if (_failure is not null || _completed)
            {
                return;
            }

            _localAddress = newLocalAddress ?? _localAddress;
            _planVersion++;
            _raceLocate = true;
            old = _paths.Active;
        }

        if (old is not null)
        {
            FlowFailed(old, "local address changed");
        }

        _kick.Set();
    }

    /// <summary>Drops the current flow if it runs over <paramref name="localAddress"/> (the listener moved away from it).</summary>
    internal void DropFlowOnLocalAddress(IPAddress localAddress)
    {
        ConnectionPath? path;
        lock (_lock)
        {
            path = _paths.Active;
        }

        if (path?.Flow.LocalEndPoint is { } local && local.Address.Equals(localAddress))
        {
            FlowFailed(path, "local address removed");
        }
    }

    private void OnEndpointsChanged(object? sender, PeerEndpointsChangedEventArgs e)
    {
        if (e.Guid != RemoteGuid || e.Endpoints.Count == 0)
        {
            return;
        }

        ConnectionPath? stale = null;
        lock (_lock)
        {
            if (_failure is not null || _completed)
            {
                return;
            }

            var active = _paths.Active;
            var remote = active?.Flow.RemoteEndPoint;
            if (active is not null && (remote is null || !e.Endpoints.Contains(remote)))
            {
                stale = active;
            }
            else if (SameEndpoints(_endpoints, e.Endpoints))
            {
                // A re-delivery of what we already use (a watch re-opened, a record refreshed):
                // restarting the attempt in progress would only throw away its TCP connect.
                return;
            }

            _endpoints = [.. e.Endpoints];
            _planVersion++;
        }

        if (stale is not null)
        {
            FlowFailed(stale, "the peer's endpoints changed");
        }

        _kick.Set();
    }

    private bool NeedsPathLocked() => _failure is null && !_completed && _paths.Active is not { Established: true } and not { AwaitingResumeAck: not null };

    /// <summary>
    /// Client reconnect state machine: Connected -> (flow lost) -> Pathless: attempt, back off
    /// (capped exponential with jitter), retry; an address change or a pushed endpoint change
    /// cancels the back-off and the attempt in progress and tries again at once.
    /// </summary>
    private async Task SuperviseAsync()
    {
        var options = _clientOptions!;
        var ct = _closed.Token;
        Task<bool>? pendingKick = null;
        Task<bool> Kick() => pendingKick ??= _kick.WaitAsync(ct).AsTask();
        bool KickArrived()
        {
            if (pendingKick is { IsCompleted: true })
            {
                pendingKick = null;
                return true;
            }

            return false;
        }

        try
        {
            while (true)
            {
                await Kick().ConfigureAwait(false);
                pendingKick = null;
                TransportLog.SupervisorWoke(_logger, Token, State.ToString());
                var attempt = 0;
                while (true)
                {
                    int version;
                    lock (_lock)
                    {
                        if (!NeedsPathLocked())
                        {
                            break;
                        }

                        version = _planVersion;
                        _pathLostAt ??= _time.GetTimestamp();
                        if (_time.GetElapsedTime(_pathLostAt.Value) > _options.PathlessTimeout)
                        {
                            break; // The timer fails the connection.
                        }
                    }

                    TransportLog.Reconnecting(_logger, Token, attempt);
                    using var attemptCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    var attemptTask = AttemptResumeAsync(attempt, attemptCts.Token);
                    while (!attemptTask.IsCompleted)
                    {
                        await Task.WhenAny(attemptTask, Kick()).ConfigureAwait(false);
                        if (KickArrived() && PlanChanged(version))
                        {
                            await attemptCts.CancelAsync().ConfigureAwait(false);
                        }
                    }

                    var ok = await attemptTask.ConfigureAwait(false);
                    if (ok)
                    {
                        // Re-check at the top: the new flow may already have died, and the kick
                        // announcing it was consumed while the attempt ran.
                        attempt = 0;
                        continue;
                    }

                    if (PlanChanged(version))
                    {
                        attempt = 0;
                        continue;
                    }

                    attempt++;
#pragma warning disable CA5394 // Jitter, not security.
                    var delay = ReconnectBackoff.Delay(attempt, options.ReconnectBackoffMin, options.ReconnectBackoffMax, Random.Shared.NextDouble());
#pragma warning restore CA5394
                    using var delayCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    var delayTask = Task.Delay(delay, _time, delayCts.Token);
                    while (!delayTask.IsCompleted)
                    {
                        await Task.WhenAny(delayTask, Kick()).ConfigureAwait(false);
                        if (KickArrived() && PlanChanged(version))
                        {
                            attempt = 0;
                            await delayCts.CancelAsync().ConfigureAwait(false);
                            break;
                        }
                    }
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Connection ended.
        }
#pragma warning disable CA1031 // The supervisor must not die silently: anything unexpected fails the connection.
        catch (Exception e)
#pragma warning restore CA1031
        {
            TransportLog.SupervisorFailed(_logger, Token, e);
            Fail(new MobileConnectionException(MobileConnectionError.Aborted, "The reconnect loop failed: " + e.Message, e));
        }
    }

    private bool PlanChanged(int version)
    {
        lock (_lock)
        {
            return _planVersion != version;
        }
    }

    /// <summary>One attempt: locate (after the first failure), connect, Resume, wait for ResumeAck.</summary>
    private async Task<bool> AttemptResumeAsync(int attempt, CancellationToken ct)
    {
        try
        {
            return await AttemptResumeCoreAsync(attempt, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>
    /// One attempt. After a local address change or a silent death, the last known endpoints are
    /// tried while a fresh lookup races them (<see cref="RaceLocateAsync"/>); after a failed attempt,
    /// or with nothing known, the lookup comes first; otherwise (a push) the known endpoints are tried.
    /// </summary>
    private async Task<bool> AttemptResumeCoreAsync(int attempt, CancellationToken ct)
    {
        IReadOnlyList<IPEndPoint> endpoints;
        IPAddress? local;
        bool race;
        lock (_lock)
        {
            endpoints = _endpoints;
            local = _localAddress;
            race = _relocateFirst || _raceLocate;
            _relocateFirst = false;
            _raceLocate = false;
        }

        if (_locator is not null && (attempt > 0 || endpoints.Count == 0))
        {
            endpoints = await LocateOnceAsync(ct).ConfigureAwait(false) ?? endpoints;
        }
        else if (_locator is not null && race)
        {
            return await RaceLocateAsync(endpoints, local, ct).ConfigureAwait(false);
        }

        return await TryEachAsync(endpoints, local, null, ct).ConfigureAwait(false);
    }

    private async Task<bool> TryResumeOnAsync(IPEndPoint endpoint, IPAddress? local, CancellationToken ct)
    {
        var options = _clientOptions!;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.ResumeAttemptTimeout);
        IFlow? flow = null;
        ConnectionPath? context = null;
        try
        {
            lock (_lock)
            {
                _stats.ResumeAttempts++;
            }

            flow = await options.FlowFactory.ConnectAsync(endpoint, local, timeout.Token).ConfigureAwait(false);
            TransportLog.FlowConnected(_logger, Token, flow.LocalEndPoint, endpoint);
            Raise(MobileConnectionEventKind.FlowConnected, flow.LocalEndPoint, flow.RemoteEndPoint, null, TimeSpan.Zero);
            var reader = PipeReader.Create(flow.Stream, FlowPipeOptions);
            lock (_lock)
            {
                if (_failure is not null || _completed)
                {
                    flow.Abort();
                    return true;
                }

                var counter = ++_resumeCounter;
                var request = ResumeRequest.Create(_resumeKey, ClientGuid, ServerGuid, Token, counter, (ulong)_receive.ReceivedValue);
                context = new ConnectionPath(flow, reader, request.ToArray(), established: false)
                {
                    AwaitingResumeAck = counter,
                };
                _receive.MarkAcked(withConsumed: false);
                ActivatePathLocked(context);

                // Optimistic: resend from what the server is known to hold, right behind the Resume.
                _send.RewindToPeerReceived();
            }

            StartLoops(context);
            var result = await context.ResumeResult.Task.WaitAsync(timeout.Token).ConfigureAwait(false);
            if (result is null)
            {
                return true;
            }

            if (result == RejectReason.UnknownConnection)
            {
                bool finished;
                lock (_lock)
                {
                    finished = IsFinishedLocked();
                }

                if (finished)
                {
                    // The server completed and forgot the connection: our close is done.
                    Complete();
                }
                else
                {
                    Fail(new MobileConnectionException(MobileConnectionError.UnknownToPeer,
                        $"The server at {endpoint} does not know this connection any more."));
                }

                return true;
            }

            TransportLog.ResumeRefused(_logger, Token, endpoint, result.Value.ToString());
            FlowFailed(context, "resume refused: " + result.Value);
            return false;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            TransportLog.ResumeAttemptFailed(_logger, Token, endpoint, "timeout");
        }
        catch (OperationCanceledException)
        {
            // Attempt cancelled by a plan change or the end of the connection.
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException or InvalidOperationException)
        {
            TransportLog.ResumeAttemptFailed(_logger, Token, endpoint, e.Message);
        }

        if (context is not null)
        {
            FlowFailed(context, "resume attempt failed");
        }
        else
        {
            flow?.Abort();
        }

        return false;
    }

    /// <summary>
    /// Reads of a flow: 64 KiB at a time in bulk; zero-byte reads first whenever the reader has
    /// nothing buffered, so that an idle flow waits without holding a 64 KiB buffer (ten thousand
    /// idle connections would otherwise pin 640 MiB).
    /// </summary>
    internal static readonly StreamPipeReaderOptions FlowPipeOptions = new(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024, leaveOpen: true, useZeroByteReads: true);

    /// <summary>Client: handles the first message on a resumed flow. False: stop reading this flow.</summary>
    private bool HandleResumeAnswer(ConnectionPath flow, ulong counter, HandshakeMessage message)
    {
        if (message is HandshakeReject reject)
        {
            lock (_lock)
            {
                _stats.ResumesRejected++;
            }

            flow.ResumeResult.TrySetResult(reject.Reason);
            return false;
        }

        if (message is not ResumeAck ack || ack.Token != Token || ack.Counter != counter || !ack.VerifyMac(_resumeKey))
        {
            throw new MalformedMessageException("Invalid answer to Resume.");
        }

        TimeSpan stall;
        lock (_lock)
        {
            if (_paths.Active != flow)
            {
                return false;
            }

            ApplyPeerReceivedLocked((long)ack.ReceivedOffset);
            flow.AwaitingResumeAck = null;
            flow.Established = true;
            _state = MobileConnectionState.Connected;
            stall = _pathLostAt is { } lost ? _time.GetElapsedTime(lost) : TimeSpan.Zero;
            _pathLostAt = null;
            _stats.LastStall = stall;
            _stats.Moves++;
            CheckFinishedLocked();
            _stateChanged.Pulse();
        }

        flow.Wake.Set();
        flow.ResumeResult.TrySetResult(null);
        TransportLog.Resumed(_logger, Token, flow.Flow.RemoteEndPoint, stall.TotalMilliseconds);
        Raise(MobileConnectionEventKind.Resumed, flow.Flow.LocalEndPoint, flow.Flow.RemoteEndPoint, null, stall);
        return true;
    }

    /// <summary>
    /// Server: a Resume for this connection arrived on <paramref name="flow"/>. Accepted only with a
    /// valid MAC and a counter above every counter seen; otherwise the connection is untouched.
    /// </summary>
    internal RejectReason? TryAcceptResume(IFlow flow, PipeReader reader, ResumeRequest request)
    {
        // The MAC (HMAC-SHA256) is checked before the lock is taken.
        var macValid = _responder.VerifyMac(request);
        ConnectionPath? path = null;
        MobileConnectionException? violation = null;
        string? refusal = null;
        var stall = TimeSpan.Zero;
        RejectReason? answer = null;
        lock (_lock)
        {
            if (macValid && (_failure is not null || _completed))
            {
                return RejectReason.UnknownConnection;
            }

            switch (_responder.Check(request, macValid, _send))
            {
                case ResumeVerdict.BadMac:
                    _stats.ResumesRejected++;
                    refusal = "bad MAC";
                    answer = RejectReason.ResumeRefused;
                    break;
                case ResumeVerdict.Replayed:
                    _stats.ResumesRejected++;
                    refusal = "replayed counter";
                    answer = RejectReason.ResumeRefused;
                    break;
                case ResumeVerdict.Contradiction:
                    // MAC is valid, so this is the authenticated peer contradicting itself.
                    violation = new MobileConnectionException(MobileConnectionError.ProtocolViolation,
                        $"Resume claims {(long)request.ReceivedOffset} bytes received (known: {_send.PeerReceived}, sent: {_send.Written}).");
                    answer = RejectReason.ResumeRefused;
                    break;
                default:
                    var ack = _responder.Accept(request, _send, _receive);
                    CheckFinishedLocked();
                    path = new ConnectionPath(flow, reader, ack, established: true);
                    ActivatePathLocked(path);
                    stall = _pathLostAt is { } lost ? _time.GetElapsedTime(lost) : TimeSpan.Zero;
                    _pathLostAt = null;
                    _stats.LastStall = stall;
                    _stats.Moves++;
                    _stateChanged.Pulse();
                    break;
            }
        }

        if (refusal is not null)
        {
            Raise(MobileConnectionEventKind.ResumeRejected, flow.LocalEndPoint, flow.RemoteEndPoint, refusal, TimeSpan.Zero);
        }

        if (violation is not null)
        {
            Fail(violation);
        }

        if (path is null)
        {
            return answer;
        }

        StartLoops(path);
        TransportLog.Resumed(_logger, Token, flow.RemoteEndPoint, stall.TotalMilliseconds);
        Raise(MobileConnectionEventKind.Resumed, flow.LocalEndPoint, flow.RemoteEndPoint, null, stall);
        return null;
    }
}
