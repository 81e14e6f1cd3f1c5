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
    // Client side (null on the server).
    private PathSupervisor? _supervisor;
    private ulong _resumeCounter; // the client's last Resume

    // Server side.
    private readonly ResumeResponder _responder;

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
        _supervisor = new PathSupervisor(this, options, locator, endpoints, localAddress, _logger);
        var path = new ConnectionPath(flow, reader, clientFinish, established: true);
        lock (_lock)
        {
            ActivatePathLocked(path);
        }

        StartLoops(path);
        _supervisor.Start();
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

    private void UnsubscribeLocator() => _supervisor?.Detach();

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

            old = _paths.Active;
        }

        _supervisor?.OnLocalAddressChanged(newLocalAddress);
        if (old is not null)
        {
            FlowFailed(old, "local address changed");
        }

        _supervisor?.Kick();
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

    /// <summary>The path frames go on now (null: pathless).</summary>
    internal ConnectionPath? ActivePath
    {
        get
        {
            lock (_lock)
            {
                return _paths.Active;
            }
        }
    }

    ConnectionPath? ISupervisedConnection.ActivePath => ActivePath;

    bool ISupervisedConnection.NeedsPath()
    {
        lock (_lock)
        {
            if (_failure is not null || _completed || _paths.Active is { Established: true } or { AwaitingResumeAck: not null })
            {
                return false;
            }

            _pathLostAt ??= _time.GetTimestamp();
            return _time.GetElapsedTime(_pathLostAt.Value) <= _options.PathlessTimeout;
        }
    }

    void ISupervisedConnection.CountResumeAttempt()
    {
        lock (_lock)
        {
            _stats.ResumeAttempts++;
        }
    }

    void ISupervisedConnection.OnFlowConnected(IFlow flow)
        => Raise(MobileConnectionEventKind.FlowConnected, flow.LocalEndPoint, flow.RemoteEndPoint, null, TimeSpan.Zero);

    ConnectionPath? ISupervisedConnection.BeginResume(IFlow flow)
    {
        var reader = PipeReader.Create(flow.Stream, FlowPipeOptions);
        ConnectionPath path;
        lock (_lock)
        {
            if (_failure is not null || _completed)
            {
                return null;
            }

            var counter = ++_resumeCounter;
            var request = ResumeRequest.Create(_resumeKey, ClientGuid, ServerGuid, Token, counter, (ulong)_receive.ReceivedValue);
            path = new ConnectionPath(flow, reader, request.ToArray(), established: false)
            {
                AwaitingResumeAck = counter,
            };
            _receive.MarkAcked(withConsumed: false);
            ActivatePathLocked(path);

            // Optimistic: resend from what the server is known to hold, right behind the Resume.
            _send.RewindToPeerReceived();
        }

        StartLoops(path);
        return path;
    }

    void ISupervisedConnection.Fail(Exception reason, uint? resetCode) => Fail(reason, resetCode);

    void ISupervisedConnection.PathFailed(ConnectionPath path, string reason) => FlowFailed(path, reason);

    void ISupervisedConnection.OnUnknownToPeer(IPEndPoint endpoint)
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
