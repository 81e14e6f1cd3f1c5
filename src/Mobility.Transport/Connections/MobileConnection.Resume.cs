using System.IO.Pipelines;
using System.Net;
using Microsoft.Extensions.Logging;
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

    /// <summary>Server side: resumes refused since the last accepted one (for tests and diagnostics), as last published.</summary>
    internal int ResumesRejected => Statistics.ResumesRejected;

    /// <summary>Client: attaches the handshake flow; the loop makes it the active path, then starts supervising the path.</summary>
    internal void StartClient(IFlow flow, PipeReader reader, byte[] clientFinish, MobileConnectionOptions options, IPeerLocator? locator, IReadOnlyList<IPEndPoint> endpoints, IPAddress? localAddress)
    {
        _supervisor = new PathSupervisor(this, options, locator, endpoints, localAddress, _logger);
        _supervisor.NoteFlowRtt(flow);
        var path = new ConnectionPath(flow, reader, clientFinish, established: true);
        // Visible at once (the caller may ask for the endpoints); the loop publishes from then on.
        _publishedPath = path;
        Post(new PathStarted(path, resume: false));
    }

    /// <summary>Server: attaches the flow the handshake ran on.</summary>
    internal void StartServer(IFlow flow, PipeReader reader)
    {
        PrefetchCallBackTargets();
        var path = new ConnectionPath(flow, reader, null, established: true);
        _publishedPath = path;
        Post(new PathStarted(path, resume: false));
        StartReversal();
    }

    private void UnsubscribeLocator() => _supervisor?.Detach();

    /// <summary>
    /// Client: the local address changed (the daemon calls this on OS events). The current flow is
    /// abandoned and a new one is opened at once from <paramref name="newLocalAddress"/> (null: let
    /// the OS choose), unless it is a resume still awaiting its answer from an address the host
    /// still has (and that is <paramref name="newLocalAddress"/>, when given). On the server side
    /// this only drops the current flow.
    /// </summary>
    public void NotifyLocalAddressChanged(IPAddress? newLocalAddress = null)
    {
        if (_failure is not null || _publishedState == MobileConnectionState.Completed)
        {
            return;
        }

        _timeline.Record(MoveEventKind.AddressEvent, newLocalAddress?.ToString() ?? "no address given");
        if (_isClient && _publishedPath is { Established: false, AwaitingResumeAck: not null } resuming
            && resuming.Flow.LocalEndPoint?.Address is { } bound
            && (newLocalAddress is null || newLocalAddress.Equals(bound)) && IsLocalAddress(bound))
        {
            // One move raises several address events (the old address gone, then the new one up):
            // a Resume already on its way from an address the host still has is not thrown away
            // (that cost another connect and round trip, and its late answer a refusal).
            _timeline.Record(MoveEventKind.AddressEvent, $"the resume in flight from {bound} goes on");
            return;
        }

        _supervisor?.OnLocalAddressChanged(newLocalAddress);
        Post(new PathLost(null, "local address changed") { LocalAddressGone = true });
    }

    /// <summary>Whether <paramref name="address"/> is still one of this host's (a socket can be bound to it).</summary>
    private static bool IsLocalAddress(IPAddress address)
    {
        try
        {
            using var probe = new System.Net.Sockets.Socket(address.AddressFamily, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
            probe.Bind(new IPEndPoint(address, 0));
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    /// <summary>Drops the current flow if it runs over <paramref name="localAddress"/> (the listener moved away from it).</summary>
    /// <param name="newAddress">Server: the listener's new address, from which the client is called back.</param>
    internal void DropFlowOnLocalAddress(IPAddress localAddress, IPAddress? newAddress = null)
        => Post(new PathLost(null, "local address removed", localAddress, newAddress));

    /// <summary>The path frames go on now (null: pathless), as last published by the loop.</summary>
    internal ConnectionPath? ActivePath => _publishedPath;

    ConnectionPath? ISupervisedConnection.ActivePath => ActivePath;

    bool ISupervisedConnection.NeedsPath()
    {
        if (_failure is not null || _publishedState == MobileConnectionState.Completed
            || _publishedPath is { Established: true } or { AwaitingResumeAck: not null })
        {
            return false;
        }

        var lostAt = Volatile.Read(ref _publishedPathLostAt);
        return lostAt == 0 || _time.GetElapsedTime(lostAt) <= _options.PathlessTimeout;
    }

    void ISupervisedConnection.CountResumeAttempt() => Post(ResumeAttemptCounted.Instance);

    TimeSpan? ISupervisedConnection.LastRtt => Statistics.LastRtt;

    void ISupervisedConnection.RecordMove(MoveEventKind kind, string? detail) => _timeline.Record(kind, detail);

    void ISupervisedConnection.OnFlowConnected(IFlow flow)
        => Raise(MobileConnectionEventKind.FlowConnected, flow.LocalEndPoint, flow.RemoteEndPoint, null, TimeSpan.Zero);

    ConnectionPath? ISupervisedConnection.BeginResume(IFlow flow)
    {
        if (_failure is not null || _publishedState == MobileConnectionState.Completed)
        {
            return null;
        }

        var reader = FlowReadBuffers.CreateReader(flow.Stream, bulk: true);
        var path = new ConnectionPath(flow, reader, null, established: false);
        return Post(new PathStarted(path, resume: true)) ? path : null;
    }

    /// <summary>On the loop: the path starts with a Resume and carries data optimistically right behind it.</summary>
    private void BeginResumeOnLoop(ConnectionPath path)
    {
        var counter = ++_resumeCounter;
        var request = ResumeRequest.Create(_resumeKey, ClientGuid, ServerGuid, Token, counter, (ulong)_receive.ReceivedValue);
        path.Preamble = request.ToArray();
        path.AwaitingResumeAck = counter;
        _timeline.Record(MoveEventKind.ResumeSent, $"counter {counter} via {path.Flow.RemoteEndPoint}");
        _receive.MarkAcked(withConsumed: false);
        ActivatePath(path);

        // Optimistic: resend from what the server is known to hold, right behind the Resume; or, when the lost path
        // could tell where its bytes stopped leaving this host, from there: the server most likely holds everything
        // before it (its ACKs lag by a round trip and a keepalive tick), so the SYN carries the bytes it lacks. Should it
        // lack more, it drops the gap and the ResumeAck's position rewinds the resend (OnResumeAnswered).
        _send.RewindToPeerReceived();
        if (_resendFrom is { } from && _peerDropsFirstFlightGaps && from > _send.PeerReceived && from <= _send.HighestSent)
        {
            _send.SkipTo(from);
            path.FirstFlightFrom = from;
        }

        StartReceiving(path);
    }

    /// <summary>
    /// Client, on the loop: <paramref name="path"/> sent from beyond what the server holds (a first flight, a standby's
    /// resend), the server dropped those frames and named its position: everything goes again from there.
    /// </summary>
    private void RewindToPeerPosition(ConnectionPath path)
    {
        _send.RewindToPeerReceived();
        path.ClearMarks();
        path.FinSent = false;
    }

    void ISupervisedConnection.Fail(Exception reason, uint? resetCode) => Fail(reason, resetCode);

    void ISupervisedConnection.PathFailed(ConnectionPath path, string reason) => Post(new PathLost(path, reason));

    void ISupervisedConnection.OnUnknownToPeer(IPEndPoint endpoint) => Post(new UnknownToPeer(endpoint));

    /// <summary>Client, on the loop: the answer to a resumed path's Resume (checked by its receive loop).</summary>
    private void OnResumeAnswered(ResumeAnswered answer)
    {
        var path = answer.Path;
        if (path.Joining)
        {
            OnJoinAnswered(answer);
            return;
        }

        if (answer.Reject is { } reason)
        {
            _stats.ResumesRejected++;
            _timeline.Record(MoveEventKind.ResumeRefused, $"{reason} via {path.Flow.RemoteEndPoint}");
            path.ResumeResult.TrySetResult(reason);
            return;
        }

        if (_paths.Active != path)
        {
            return;
        }

        path.LastReceived = _time.GetTimestamp();
        var serverHolds = (long)answer.Ack!.ReceivedOffset;
        _send.ApplyPeerReceived(serverHolds);
        _resendFrom = null;
        if (path.FirstFlightFrom is { } from && serverHolds < from)
        {
            // The first flight started beyond what the server holds: it dropped those frames; resend from its position.
            RewindToPeerPosition(path);
            FirstFlightLog.Rewound(_logger, Token, from, serverHolds);
        }

        path.Established = true;
        _state = MobileConnectionState.Connected;
        var stall = _pathLostAt is { } lost ? _time.GetElapsedTime(lost) : TimeSpan.Zero;
        _pathLostAt = null;
        _stats.LastStall = stall;
        _stats.Moves++;
        _awaitingFirstByte = true;
        _supervisor?.NoteFirstFlightOutcome(path.Flow);
        _timeline.Record(MoveEventKind.ResumeAnswered, $"via {path.Flow.RemoteEndPoint}" + path.Flow.FirstFlightTaken switch
        {
            true => " (the Resume rode in the SYN)",
            false => " (the SYN's data was not taken: sent again after the handshake)",
            null => "",
        });
        Publish();
        path.ResumeResult.TrySetResult(null);
        TransportLog.Resumed(_logger, Token, path.Flow.RemoteEndPoint, stall.TotalMilliseconds);
        Raise(MobileConnectionEventKind.Resumed, path.Flow.LocalEndPoint, path.Flow.RemoteEndPoint, null, stall);
    }

    /// <summary>
    /// Server: a Resume for this connection arrived on <paramref name="flow"/>. Accepted only with a
    /// valid MAC and a counter above every counter seen; otherwise the connection is untouched.
    /// The MAC (HMAC-SHA256) is checked here, the rest on the connection's loop.
    /// </summary>
    internal async Task<RejectReason?> TryAcceptResumeAsync(IFlow flow, PipeReader reader, ResumeRequest request)
    {
        var offer = new ResumeOffered(flow, reader, request, _responder.VerifyMac(request));
        if (!Post(offer))
        {
            return RejectReason.UnknownConnection;
        }

        return await offer.Answer.Task.ConfigureAwait(false);
    }

    private void OnResumeOffered(ResumeOffered offer)
    {
        var flow = offer.Flow;
        var request = offer.Request;
        if (offer.MacValid && (_failure is not null || _completed))
        {
            offer.Answer.TrySetResult(RejectReason.UnknownConnection);
            return;
        }

        switch (_responder.Check(request, offer.MacValid, _send))
        {
            case ResumeVerdict.BadMac:
                _stats.ResumesRejected++;
                Publish(); // counted before the Reject goes: a peer that has it finds it in Statistics
                offer.Answer.TrySetResult(RejectReason.ResumeRefused);
                _timeline.Record(MoveEventKind.ResumeRefused, $"bad MAC from {flow.RemoteEndPoint}");
                Raise(MobileConnectionEventKind.ResumeRejected, flow.LocalEndPoint, flow.RemoteEndPoint, "bad MAC", TimeSpan.Zero);
                return;
            case ResumeVerdict.Replayed:
                _stats.ResumesRejected++;
                Publish();
                offer.Answer.TrySetResult(RejectReason.ResumeRefused);
                _timeline.Record(MoveEventKind.ResumeRefused, $"replayed counter {request.Counter} from {flow.RemoteEndPoint}");
                Raise(MobileConnectionEventKind.ResumeRejected, flow.LocalEndPoint, flow.RemoteEndPoint, "replayed counter", TimeSpan.Zero);
                return;
            case ResumeVerdict.Contradiction:
                // MAC is valid, so this is the authenticated peer contradicting itself.
                FailNow(new MobileConnectionException(MobileConnectionError.ProtocolViolation,
                    $"Resume claims {(long)request.ReceivedOffset} bytes received (known: {_send.PeerReceived}, sent: {_send.Written})."), null);
                offer.Answer.TrySetResult(RejectReason.ResumeRefused);
                return;
            default:
                break;
        }

        if (request.Standby)
        {
            AcceptJoin(offer);
            return;
        }

        var ack = _responder.Accept(request, _send, _receive);
        var path = new ConnectionPath(flow, offer.Reader, ack, established: true) { DropsDataGaps = true };
        ActivatePath(path);
        SettleCallBack();
        var stall = _pathLostAt is { } lost ? _time.GetElapsedTime(lost) : TimeSpan.Zero;
        _pathLostAt = null;
        _stats.LastStall = stall;
        _stats.Moves++;
        _awaitingFirstByte = true;
        _supervisor?.NoteFirstFlightOutcome(path.Flow);
        _timeline.Record(MoveEventKind.ResumeAnswered, $"accepted counter {request.Counter} from {flow.RemoteEndPoint}");
        Publish();
        StartReceiving(path);
        offer.Answer.TrySetResult(null);
        TransportLog.Resumed(_logger, Token, flow.RemoteEndPoint, stall.TotalMilliseconds);
        Raise(MobileConnectionEventKind.Resumed, flow.LocalEndPoint, flow.RemoteEndPoint, null, stall);
    }

    private static partial class FirstFlightLog
    {
        [LoggerMessage(9320, LogLevel.Debug, "Connection {Token:x32}: the first flight started at {From}, beyond the server's {Holds}: resent from there")]
        public static partial void Rewound(ILogger logger, UInt128 token, long from, long holds);
    }
}
