using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Mobility.Protocol;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;

namespace Mobility.Transport;

public sealed partial class MobileConnection
{
    // The connection's loop: the single reader of _events, and the only code that changes the
    // connection's state (send and receive state, paths, keepalive, statistics) or seals frames.
    private readonly Channel<ConnectionEvent> _events = Channel.CreateUnbounded<ConnectionEvent>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = false, AllowSynchronousContinuations = false });

    private readonly Task _loop;

    // Application operations the loop could not finish at once (no data yet, window full).
    private readonly Queue<AppRead> _reads = new();
    private AppWrite? _parkedWrite;
    private MobileConnectionState _state = MobileConnectionState.Connected;
    private bool _failedOnLoop;

    /// <summary>Hands <paramref name="e"/> to the loop; false once the loop has ended (after dispose).</summary>
    private bool Post(ConnectionEvent e) => _events.Writer.TryWrite(e);

    private async Task RunLoopAsync()
    {
        var reader = _events.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out var e))
            {
                if (e is LoopShutdown)
                {
                    EndLoop();
                    return;
                }

                Timed(e);
            }

            // After each batch of events: lay out and seal what the active path should carry next.
            if (_paths.Active is { } active)
            {
                Timed(active);
            }

            foreach (var standby in _paths.StandbySnapshot)
            {
                Timed(standby);
            }

            Publish();
        }
    }

    /// <summary>
    /// A loop step that took longer than this is logged at Debug with what it handled (event 9300): the loop
    /// does no I/O, so a long step is CPU or a wait for it, and a move's timeline can be read against it.
    /// </summary>
    internal static readonly TimeSpan SlowStep = TimeSpan.FromMilliseconds(2);

    private void Timed(object work)
    {
        var started = _time.GetTimestamp();
        Run(work);
        var took = _time.GetElapsedTime(started);
        if (took >= SlowStep)
        {
            LoopLog.SlowStep(_logger, Token, work is ConnectionPath ? "send" : work.GetType().Name, took.TotalMilliseconds);
        }
    }

    private void Run(object work)
    {
        try
        {
            if (work is ConnectionEvent e)
            {
                Handle(e);
            }
            else
            {
                SendOn((ConnectionPath)work);
            }
        }
        catch (ProtocolViolationException e)
        {
            FailNow(new MobileConnectionException(MobileConnectionError.ProtocolViolation, "The peer violated the protocol: " + e.Message), null);
        }
#pragma warning disable CA1031 // The loop must outlive a bug in one event's handling: the connection fails instead of hanging.
        catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            FailNow(new MobileConnectionException(MobileConnectionError.Aborted, "The connection's loop failed: " + e.Message, e), null);
        }
    }

    private void Handle(ConnectionEvent e)
    {
        switch (e)
        {
            case AppWrite write:
                OnAppWrite(write);
                break;
            case AppRead read:
                _reads.Enqueue(read);
                ServeReads();
                break;
            case AppCancel cancel:
                OnAppCancel(cancel);
                break;
            case AppShutdownWrite:
                if (_failure is null && !_completed && _send.ShutDown())
                {
                    MarkActive();
                }

                break;
            case FramesReceived frames:
                OnFramesReceived(frames);
                break;
            case ResumeAnswered answer:
                OnResumeAnswered(answer);
                break;
            case FlowEnded ended:
                OnFlowEnded(ended.Path);
                break;
            case PathLost lost:
                OnPathLost(lost);
                break;
            case WriteDone done:
                OnWriteDone(done);
                break;
            case TimerTick:
                OnTick();
                break;
            case PathStarted started:
                OnPathStarted(started);
                break;
            case ResumeOffered offer:
                OnResumeOffered(offer);
                break;
            case ServerDialOffered<CallBackRequest> callBack:
                OnCallBackOffered(callBack);
                break;
            case ServerDialOffered<ReverseRequest> reverse:
                OnReverseOffered(reverse);
                break;
            case FailRequested fail:
                FailNow(fail.Reason, fail.ResetCode);
                break;
            case UnknownToPeer unknown:
                if (IsFinished())
                {
                    // The server completed and forgot the connection: our close is done.
                    Complete();
                }
                else
                {
                    FailNow(new MobileConnectionException(MobileConnectionError.UnknownToPeer,
                        $"The server at {unknown.Endpoint} does not know this connection any more."), null);
                }

                break;
            case LocalAddressesChanged changed:
                OnLocalAddressesChanged(changed.Addresses);
                break;
            case ResumeAttemptCounted:
                _stats.ResumeAttempts++;
                break;
            case DrainRequested drain:
                drain.Answer.TrySetResult([.. _paths.Retiring(), _supervisor?.Completion ?? Task.CompletedTask, _punching, _callingBack, _reversing, _reverseJoin]);
                break;
            case LoopBarrier barrier:
                barrier.Reached.TrySetResult();
                break;
            case DatagramsQueued:
                OnDatagramsQueued();
                break;
            case DirectCandidatesSet candidates:
                OnDirectCandidatesSet(candidates.Body);
                break;
            case PunchRequested punch:
                OnPunchRequested(punch.Attempt);
                break;
            case DirectJoined joined:
                OnDirectJoined(joined.Path);
                break;
            default:
                throw new InvalidOperationException($"Unexpected event {e.GetType().Name}.");
        }
    }

    /// <summary>Dispose, last step: nothing more is accepted; what is still queued is answered, the buffers are freed.</summary>
    private void EndLoop()
    {
        _events.Writer.TryComplete();
        var disposed = new ObjectDisposedException(nameof(MobileConnection));
        while (_events.Reader.TryRead(out var e))
        {
            switch (e)
            {
                case FramesReceived frames:
                    ReturnArrays(frames.Frames, 0);
                    frames.Processed.TrySetResult(false);
                    break;
                case AppWrite write:
                    write.Done.TrySetException(disposed);
                    break;
                case AppRead read:
                    read.Done.TrySetException(disposed);
                    break;
                case ResumeOffered offer:
                    offer.Answer.TrySetResult(RejectReason.UnknownConnection);
                    break;
                case ServerDialOffered<CallBackRequest> callBack:
                    callBack.Answer.TrySetResult(false);
                    break;
                case ServerDialOffered<ReverseRequest> reverse:
                    reverse.Answer.TrySetResult(false);
                    break;
                case DrainRequested drain:
                    drain.Answer.TrySetResult([]);
                    break;
                case LoopBarrier barrier:
                    barrier.Reached.TrySetResult();
                    break;
                case PathStarted started:
                    _ = started.Path.Stop();
                    break;
                default:
                    break;
            }
        }

        _parkedWrite?.Done.TrySetException(disposed);
        _parkedWrite = null;
        while (_reads.TryDequeue(out var read))
        {
            read.Done.TrySetException(disposed);
        }

        _send.Clear();
        _receive.Clear();
    }

    /// <summary>
    /// Completes once the loop has handled everything posted before this call (at once if the loop
    /// has ended). Tests on a fake clock use it after advancing time: the timer only posts a tick.
    /// </summary>
    internal Task SettleAsync()
    {
        var barrier = new LoopBarrier();
        return Post(barrier) ? barrier.Reached.Task : Task.CompletedTask;
    }

    /// <summary>Makes what the loop changed visible to other threads (state, active path, statistics).</summary>
    private void Publish()
    {
        // A failure from another thread (Abort, Dispose) is published by Fail at once; the loop may not have handled it
        // yet, and must not publish its older state over it (a test saw Connected right after Abort).
        _publishedState = _state != MobileConnectionState.Completed && Volatile.Read(ref _failure) is not null ? MobileConnectionState.Failed : _state;
        _publishedPath = _paths.Active;
        KickReversal(_paths.Active);
        Volatile.Write(ref _publishedPathLostAt, _pathLostAt ?? 0);
        Volatile.Write(ref _publishedAvailable, _receive.Buffered);
        var stats = _stats.Snapshot();
        if (_publishedStats is not MobileConnectionStatistics last || last != stats)
        {
            _publishedStats = stats;
        }
    }

    private void OnAppWrite(AppWrite write)
    {
        if (_failure is { } failure)
        {
            write.Done.TrySetException(AsConnectionException(failure));
            return;
        }

        if (_send.IsShutDown)
        {
            write.Done.TrySetException(new InvalidOperationException("Writes were shut down on this connection."));
            return;
        }

        _parkedWrite = write;
        ContinueWrite();
    }

    /// <summary>Copies as much of the parked write as the window allows; completes it once all is copied.</summary>
    private void ContinueWrite()
    {
        if (_parkedWrite is not { } write || _send.Space <= 0)
        {
            return;
        }

        var n = _send.Append(write.Data.Span);
        write.Data = write.Data[n..];
        MarkActive();
        if (write.Data.IsEmpty)
        {
            _parkedWrite = null;
            write.Done.TrySetResult();
        }
    }

    /// <summary>Serves parked reads from the receive buffer (or the end, or the failure).</summary>
    private void ServeReads()
    {
        while (_reads.TryPeek(out var read))
        {
            if (_receive.Buffered > 0)
            {
                _reads.Dequeue();
                var n = read.Buffer.IsEmpty ? 0 : _receive.Read(read.Buffer.Span);
                // Published before the reader resumes, so that what it sees is never more than is buffered, and the
                // statistics already count the bytes it got (a test saw BytesReceived 0 right after reading its byte).
                Publish();
                read.Done.TrySetResult(n);
            }
            else if (_receive.AtEnd)
            {
                _reads.Dequeue();
                read.Done.TrySetResult(0);
            }
            else if (_failure is { } failure)
            {
                _reads.Dequeue();
                read.Done.TrySetException(AsConnectionException(failure));
            }
            else
            {
                return;
            }
        }
    }

    private void OnAppCancel(AppCancel cancel)
    {
        if (cancel.Operation == _parkedWrite)
        {
            // Bytes already copied stay written; the caller's buffer is not touched again.
            _parkedWrite = null;
            ((AppWrite)cancel.Operation).Done.TrySetCanceled(cancel.Token);
            return;
        }

        if (cancel.Operation is AppRead read && _reads.Contains(read))
        {
            var kept = _reads.Where(r => r != read).ToList();
            _reads.Clear();
            foreach (var r in kept)
            {
                _reads.Enqueue(r);
            }

            read.Done.TrySetCanceled(cancel.Token);
        }
    }

    private void OnPathStarted(PathStarted started)
    {
        var path = started.Path;
        if (_failure is not null || _completed)
        {
            _ = path.Stop();
            return;
        }

        if (started.Resume)
        {
            if (!path.Joining && _paths.Active is { CalledBack: true, IsStopped: false } calledBack && calledBack != path)
            {
                // The server called back and the Resume on its flow is on its way or answered: a resume this
                // end dialled meanwhile (a push, a timer) is not wanted; its attempt sees a refusal and stops.
                _timeline.Record(MoveEventKind.AttemptFailed, $"resume via {path.Flow.RemoteEndPoint} dropped: the call back's path is in use");
                _ = path.Stop();
                return;
            }

            if (path.Joining)
            {
                BeginJoinOnLoop(path);
            }
            else
            {
                BeginResumeOnLoop(path);
            }

            return;
        }

        ActivatePath(path);
        StartReceiving(path);
        if (_isClient)
        {
            _supervisor?.Start();
        }
    }

    private void OnPathLost(PathLost lost)
    {
        var path = lost.Path ?? _paths.Active;
        if (lost.OnlyOnLocalAddress is { } address)
        {
            if (path?.Flow.LocalEndPoint is { } local && local.Address.Equals(address))
            {
                FlowFailed(path, lost.Reason);
                MaybeCallBack(path, lost.CallBackFrom);
            }

            return;
        }

        if (path is not null)
        {
            FlowFailed(path, lost.Reason, lost.LocalAddressGone);
        }

        if (lost.Path is null)
        {
            _supervisor?.Kick();
        }
    }

    /// <summary>
    /// Fails the connection with the first reason; later reasons are ignored. With
    /// <paramref name="resetCode"/>, the active path first carries a RESET to the peer (written by
    /// this loop, the path closed once it is out or <see cref="ResetFlushTimeout"/> has passed).
    /// </summary>
    private void FailNow(Exception reason, uint? resetCode)
    {
        if (_failedOnLoop)
        {
            return;
        }

        if (_completed)
        {
            // A completed connection keeps its data readable; only release the path.
            if (_paths.Active is { } active)
            {
                _paths.Deactivate(active);
            }

            Publish();
            return;
        }

        // Fail may have recorded the first reason already (off the loop, so that Abort is seen at once).
        if (Interlocked.CompareExchange(ref _failure, reason, null) is { } first)
        {
            reason = first;
        }

        _failedOnLoop = true;
        _state = MobileConnectionState.Failed;
        _paths.DropStandbys();
        if (resetCode is { } code)
        {
            if (_paths.DeactivateWithReset(code, ResetFlushTimeout, _time) is { } resetPath)
            {
                SendOn(resetPath);
            }
        }
        else if (_paths.Active is { } active)
        {
            _paths.Deactivate(active);
        }

        var failure = AsConnectionException(reason);
        _parkedWrite?.Done.TrySetException(failure);
        _parkedWrite = null;
        ServeReads();
        Publish();
        _ended.TrySetResult();
        TransportLog.ConnectionFailed(_logger, Token, reason.Message);
        _closed.Cancel();
        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        OnEndedCore();
        Raise(MobileConnectionEventKind.Failed, null, null, reason.Message, TimeSpan.Zero);
    }

    private void Complete()
    {
        if (_completed || _failure is not null)
        {
            return;
        }

        _completed = true;
        _state = MobileConnectionState.Completed;
        _paths.DropStandbys();
        if (_paths.Active is { } active)
        {
            _paths.Deactivate(active);
        }

        ServeReads();
        Publish();
        _ended.TrySetResult();
        TransportLog.ConnectionCompleted(_logger, Token);
        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _closed.Cancel();
        OnEndedCore();
        Raise(MobileConnectionEventKind.Completed, null, null, null, TimeSpan.Zero);
    }

    private static partial class LoopLog
    {
        [LoggerMessage(9300, LogLevel.Debug, "Connection {Token:x32}: loop step {Work} took {Ms:0.0} ms")]
        public static partial void SlowStep(ILogger logger, UInt128 token, string work, double ms);
    }
}
