using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Mobility.Protocol;
using Mobility.Protocol.Transport;
using Mobility.Transport.Flows;
using Mobility.Transport.Internal;

namespace Mobility.Transport;

public sealed partial class MobileConnection
{
    /// <summary>One flow carrying the connection, with its two loops.</summary>
    internal sealed class FlowContext
    {
        private readonly CancellationTokenSource _cts = new();

        public FlowContext(int id, IFlow flow, PipeReader reader, byte[]? preamble, bool established)
        {
            Id = id;
            Flow = flow;
            Reader = reader;
            Preamble = preamble;
            Established = established;
        }

        public int Id { get; set; }

        public IFlow Flow { get; }

        public PipeReader Reader { get; }

        /// <summary>Handshake bytes the send loop writes before any frame (ClientFinish, Resume or ResumeAck).</summary>
        public byte[]? Preamble { get; set; }

        public bool Established { get; set; }

        /// <summary>Client flow opened by a Resume: the first thing to read is ResumeAck or Reject.</summary>
        public ulong? AwaitingResumeAck { get; set; }

        public TaskCompletionSource<RejectReason?> ResumeResult { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public AsyncAutoResetSignal Wake { get; } = new();

        public CancellationToken Cancellation => _cts.Token;

        public long LastReceived { get; set; }

        public long LastSent { get; set; }

        /// <summary>When the connection last turned active on this flow: the dead-path timeout counts from here or the last frame received, whichever is later.</summary>
        public long ProbeSince { get; set; }

        /// <summary>Client, idle: send a keepalive after this long without receiving (jittered per keepalive).</summary>
        public TimeSpan IdleInterval { get; set; }

        public bool FinSent { get; set; }

        /// <summary>A new flow starts with an ACK: Resume/ResumeAck carry the receive position but not the consumed one.</summary>
        public bool AckForced { get; set; } = true;

        public bool PingRequested { get; set; }

        /// <summary>The timer asks for an ACK of whatever was received or consumed since the last one.</summary>
        public bool AckRequested { get; set; }

        public ulong PingId { get; set; }

        public long PingSentAt { get; set; }

        public ulong? PongToSend { get; set; }

        public Task Loops { get; set; } = Task.CompletedTask;

        private int _stopped;

        /// <summary>Stops both loops and closes the flow at once; the loops' task joins <paramref name="retired"/>.</summary>
        public void Stop(List<Task> retired)
        {
            if (Interlocked.Exchange(ref _stopped, 1) != 0)
            {
                return;
            }

            // Cancelling ends the loops' pending reads and writes; the socket is closed once they
            // have let go of it, on a pool thread: closing a socket still in use by another thread
            // spins, and this may run under the connection's lock or in an event handler that
            // moves a hundred connections.
            _cts.Cancel();
            ResumeResult.TrySetResult(RejectReason.ResumeRefused);
            retired.RemoveAll(static t => t.IsCompleted);
            retired.Add(Loops.ContinueWith(static (_, flow) => ((IFlow)flow!).Abort(), Flow,
                CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default));
        }
    }

    private sealed class ProtocolViolationException(string message) : Exception(message);

    /// <summary>Makes <paramref name="flow"/> current (under the lock) and returns the previous flow, already stopped.</summary>
    private void AttachFlowLocked(FlowContext flow)
    {
        var old = _flow;
        _flow = flow;
        old?.Stop(_retiredLoops);
        var now = _time.GetTimestamp();
        flow.LastReceived = now;
        flow.LastSent = now;
        flow.ProbeSince = now;
        flow.IdleInterval = JitteredIdleInterval();
        if (flow.Established)
        {
            _state = MobileConnectionState.Connected;
        }

        TickSoonLocked();
    }

    private void StartLoops(FlowContext flow)
    {
        flow.Loops = Task.WhenAll(
            Task.Run(() => SendLoopAsync(flow)),
            Task.Run(() => ReceiveLoopAsync(flow)));
    }

    /// <summary>Detaches a dead flow; the client starts reconnecting, the server waits for a Resume.</summary>
    private void FlowFailed(FlowContext flow, string reason)
    {
        lock (_lock)
        {
            if (_flow != flow)
            {
                flow.Stop(_retiredLoops);
                return;
            }

            _flow = null;
            flow.Stop(_retiredLoops);
            if (_completed || _failure is not null)
            {
                return;
            }

            _pathLostAt ??= _time.GetTimestamp();
            _state = MobileConnectionState.Pathless;
            _stateChanged.Pulse();
        }

        TransportLog.PathLost(_logger, Token, flow.Flow.RemoteEndPoint, reason);
        Raise(MobileConnectionEventKind.PathLost, flow.Flow.LocalEndPoint, flow.Flow.RemoteEndPoint, reason, TimeSpan.Zero);
        _kick.Set();
    }

    private async Task SendLoopAsync(FlowContext flow)
    {
        var ct = flow.Cancellation;
        // Buffers are rented per batch and returned before the loop waits: an idle connection
        // holds none (otherwise each idle flow pins a 64 KiB pool array for the frame body and a
        // 4 KiB one for the output), and renting from the shared pool's per-thread cache costs
        // little next to a batch.
        byte[]? output = null;
        try
        {
            while (true)
            {
                int length;
                bool more;
                bool closeAfter;
                output = ArrayPool<byte>.Shared.Rent(SmallOutputSize);
                var body = ArrayPool<byte>.Shared.Rent(TransportConstants.MaxFrameBody);
                try
                {
                    lock (_lock)
                    {
                        if (_flow != flow)
                        {
                            return;
                        }

                        length = BuildBatchLocked(flow, ref output, body, out more, out closeAfter);
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(body);
                }

                if (length > 0)
                {
                    await flow.Flow.Stream.WriteAsync(output.AsMemory(0, length), ct).ConfigureAwait(false);
                    lock (_lock)
                    {
                        flow.LastSent = _time.GetTimestamp();
                    }
                }

                if (closeAfter)
                {
                    // Server, both FINs acknowledged and our ACK of the client's FIN written: closing
                    // the flow tells the client that we know the connection is done.
                    await flow.Flow.Stream.FlushAsync(ct).ConfigureAwait(false);
                    await flow.Flow.DisposeAsync().ConfigureAwait(false);
                    Complete();
                    return;
                }

                ArrayPool<byte>.Shared.Return(output);
                output = null;
                if (!more)
                {
                    await flow.Wake.WaitAsync(ct).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Flow stopped.
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            FlowFailed(flow, "send failed: " + e.Message);
        }
        finally
        {
            if (output is not null)
            {
                ArrayPool<byte>.Shared.Return(output);
            }
        }
    }

    /// <summary>Fills <paramref name="output"/> with what the flow should carry next; returns the byte count.</summary>
    private int BuildBatchLocked(FlowContext flow, ref byte[] output, byte[] body, out bool more, out bool closeAfter)
    {
        var position = 0;
        closeAfter = false;
        if (flow.Preamble is { } preamble)
        {
            preamble.CopyTo(output, 0);
            position = preamble.Length;
            flow.Preamble = null;
        }

        if (_resetToSend is { } code)
        {
            BinaryPrimitives.WriteUInt32BigEndian(body, code);
            position += Seal(FrameType.Reset, body.AsSpan(0, 4), output.AsSpan(position));
            _resetToSend = null;
            more = false;
            return position;
        }

        if (flow.PongToSend is { } pong)
        {
            BinaryPrimitives.WriteUInt64BigEndian(body, pong);
            position += Seal(FrameType.Pong, body.AsSpan(0, 8), output.AsSpan(position));
            flow.PongToSend = null;
        }

        if (flow.PingRequested)
        {
            flow.PingRequested = false;
            flow.PingId++;
            flow.PingSentAt = _time.GetTimestamp();
            _pingsSent++;
            BinaryPrimitives.WriteUInt64BigEndian(body, flow.PingId);
            position += Seal(FrameType.Ping, body.AsSpan(0, 8), output.AsSpan(position));
        }

        // ACKs are not sent per read: only when due (a threshold, the peer's FIN), forced (new flow,
        // timer), or riding along with anything else this batch carries. Bulk data then costs one ACK
        // frame per AckEvery bytes instead of one per pipe read (each a send and two wake-ups).
        var receivedValue = ReceivedValueLocked();
        var ackChanged = receivedValue != _ackedReceived || _consumed != _ackedConsumed;
        var piggyback = position > 0 || _sendNext < _written || (_finOffset >= 0 && _sendNext == _finOffset && !flow.FinSent && !_finAcked);
        if (flow.AckForced || (ackChanged && (piggyback || flow.AckRequested || AckDueLocked())))
        {
            BinaryPrimitives.WriteUInt64BigEndian(body, (ulong)receivedValue);
            BinaryPrimitives.WriteUInt64BigEndian(body.AsSpan(8), (ulong)_consumed);
            position += Seal(FrameType.Ack, body.AsSpan(0, 16), output.AsSpan(position));
            _ackedReceived = receivedValue;
            _ackedConsumed = _consumed;
            flow.AckForced = false;
        }

        flow.AckRequested = false;

        if (_sendNext < _written && output.Length < OutputBatchSize + TransportConstants.MaxFrameWireSize * 2)
        {
            var large = ArrayPool<byte>.Shared.Rent(OutputBatchSize + TransportConstants.MaxFrameWireSize * 2);
            output.AsSpan(0, position).CopyTo(large);
            ArrayPool<byte>.Shared.Return(output);
            output = large;
        }

        while (_sendNext < _written && position < OutputBatchSize)
        {
            // The body is assembled where it will be sent and sealed in place.
            var n = (int)Math.Min(TransportConstants.MaxFramePayload, _written - _sendNext);
            var frame = output.AsSpan(position);
            BinaryPrimitives.WriteUInt64BigEndian(frame[TransportConstants.FrameHeaderSize..], (ulong)_sendNext);
            _sendBuffer.CopyTo(_sendNext, frame.Slice(TransportConstants.FrameHeaderSize + 8, n));
            position += _sealer.SealInPlace(FrameType.Data, ++_sendCounter, 8 + n, frame);
            if (_sendNext < _highestSent)
            {
                _bytesResent += Math.Min(n, _highestSent - _sendNext);
            }

            _sendNext += n;
            if (_sendNext > _highestSent)
            {
                _bytesSent += _sendNext - _highestSent;
                _highestSent = _sendNext;
            }
        }

        if (_finOffset >= 0 && _sendNext == _finOffset && !flow.FinSent && !_finAcked)
        {
            BinaryPrimitives.WriteUInt64BigEndian(body, (ulong)_finOffset);
            position += Seal(FrameType.Fin, body.AsSpan(0, 8), output.AsSpan(position));
            flow.FinSent = true;
        }

        more = _sendNext < _written;
        closeAfter = !_isClient && IsFinishedLocked() && _ackedReceived == ReceivedValueLocked();
        return position;
    }

    private int Seal(FrameType type, ReadOnlySpan<byte> body, Span<byte> destination)
        => _sealer.Seal(type, ++_sendCounter, body, destination);

    /// <summary>Bytes received or consumed after which an ACK is sent without waiting for anything else to carry it.</summary>
    private long AckEvery => Math.Min(_receiveWindow / 8, 256 * 1024);

    /// <summary>An ACK must go now: the peer's FIN is unacknowledged, or enough was received or consumed since the last ACK.</summary>
    private bool AckDueLocked()
    {
        var receivedValue = ReceivedValueLocked();
        return (_peerFin >= 0 && receivedValue != _ackedReceived)
            || receivedValue - _ackedReceived >= AckEvery
            || _consumed - _ackedConsumed >= AckEvery;
    }

    /// <summary>Our cumulative receive position: data bytes, plus one once the peer's FIN is in.</summary>
    private long ReceivedValueLocked() => _received + (_peerFin >= 0 ? 1 : 0);

    private bool IsFinishedLocked() => _finAcked && _peerFin >= 0;

    private async Task ReceiveLoopAsync(FlowContext flow)
    {
        var ct = flow.Cancellation;
        using var opener = new FrameProtector(_openKey, IsEncrypted);
        try
        {
            while (true)
            {
                var result = await flow.Reader.ReadAsync(ct).ConfigureAwait(false);
                var buffer = result.Buffer;
                // Rented while frames are processed only, not while the loop waits (idle connections).
                var scratch = ArrayPool<byte>.Shared.Rent(TransportConstants.MaxFrameWireSize + 64);
                SequencePosition position;
                bool stop;
                try
                {
                    position = ProcessReceived(flow, opener, buffer, scratch, out stop);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(scratch);
                }

                flow.Reader.AdvanceTo(position, buffer.End);
                if (stop)
                {
                    return;
                }

                if (result.IsCompleted)
                {
                    OnFlowEnded(flow);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Flow stopped.
        }
        catch (MalformedMessageException e)
        {
            // Unauthenticated garbage or a forged frame on this flow: drop the flow, keep the connection.
            TransportLog.BadFrame(_logger, Token, e.Message);
            FlowFailed(flow, "bad frame: " + e.Message);
        }
        catch (ProtocolViolationException e)
        {
            Fail(new MobileConnectionException(MobileConnectionError.ProtocolViolation, "The peer violated the protocol: " + e.Message));
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            FlowFailed(flow, "receive failed: " + e.Message);
        }
        finally
        {
            await flow.Reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private void OnFlowEnded(FlowContext flow)
    {
        bool done;
        lock (_lock)
        {
            done = _flow == flow && _isClient && IsFinishedLocked();
        }

        if (done)
        {
            // The server closes the flow only once it knows both FINs were acknowledged.
            Complete();
        }
        else
        {
            FlowFailed(flow, "the peer closed the flow");
        }
    }

    private SequencePosition ProcessReceived(FlowContext flow, FrameProtector opener, ReadOnlySequence<byte> buffer, byte[] scratch, out bool stop)
    {
        stop = false;
        var reader = new SequenceReader<byte>(buffer);
        lock (_lock)
        {
            if (_flow != flow)
            {
                stop = true;
                return buffer.End;
            }

            flow.LastReceived = _time.GetTimestamp();
        }

        if (flow.AwaitingResumeAck is { } counter)
        {
            if (!HandshakeMessage.TryRead(ref reader, out var message))
            {
                return reader.Position;
            }

            if (!HandleResumeAnswer(flow, counter, message!))
            {
                stop = true;
                return reader.Position;
            }
        }

        Span<byte> control = stackalloc byte[16];
        var wake = false;
        while (TransportFrame.TryRead(ref reader, TransportConstants.MaxFrameLength, out var frame))
        {
            var bodyLength = frame.BodyLength;
            if (frame.Type == FrameType.Data)
            {
                var array = ArrayPool<byte>.Shared.Rent(bodyLength);
                var owned = false;
                try
                {
                    if (!opener.TryOpen(frame, array.AsSpan(0, bodyLength), scratch))
                    {
                        throw new MalformedMessageException("Frame authentication failed.");
                    }

                    var result = HandleFrame(flow, frame, array.AsSpan(0, bodyLength), array, ref owned);
                    wake |= result != FrameResult.Nothing;
                    if (result == FrameResult.Stop)
                    {
                        stop = true;
                        return reader.Position;
                    }
                }
                finally
                {
                    if (!owned)
                    {
                        ArrayPool<byte>.Shared.Return(array);
                    }
                }
            }
            else
            {
                var span = control[..bodyLength];
                if (!opener.TryOpen(frame, span, scratch))
                {
                    throw new MalformedMessageException("Frame authentication failed.");
                }

                var owned = false;
                var result = HandleFrame(flow, frame, span, null, ref owned);
                wake |= result != FrameResult.Nothing;
                if (result == FrameResult.Stop)
                {
                    stop = true;
                    return reader.Position;
                }
            }
        }

        if (wake)
        {
            flow.Wake.Set();
        }

        return reader.Position;
    }

    private enum FrameResult
    {
        Nothing,
        WakeSender,
        Stop,
    }

    private FrameResult HandleFrame(FlowContext flow, in RawFrame frame, ReadOnlySpan<byte> body, byte[]? array, ref bool owned)
    {
        lock (_lock)
        {
            if (_flow != flow || _failure is not null)
            {
                return FrameResult.Stop;
            }

            if (frame.Counter <= _receiveCounter)
            {
                throw new MalformedMessageException($"Frame counter {frame.Counter} not above {_receiveCounter} (replayed frame).");
            }

            _receiveCounter = frame.Counter;
            switch (frame.Type)
            {
                case FrameType.Data:
                    {
                        var offset = (long)BinaryPrimitives.ReadUInt64BigEndian(body);
                        var payload = body.Length - 8;
                        var end = offset + payload;
                        if (offset < 0 || end < offset)
                        {
                            throw new ProtocolViolationException("DATA offset overflow.");
                        }

                        if (end <= _received)
                        {
                            _duplicateBytes += payload;
                            return FrameResult.Nothing;
                        }

                        if (offset > _received)
                        {
                            throw new ProtocolViolationException($"DATA at {offset} leaves a gap after {_received}.");
                        }

                        if (_peerFin >= 0)
                        {
                            throw new ProtocolViolationException("DATA after FIN.");
                        }

                        if (end > _consumed + _receiveWindow)
                        {
                            throw new ProtocolViolationException($"DATA up to {end} exceeds the receive window ending at {_consumed + _receiveWindow}.");
                        }

                        var skip = (int)(_received - offset);
                        _duplicateBytes += skip;
                        _receiveBuffer.Append(array!, 8 + skip, payload - skip);
                        owned = true;
                        _bytesReceived += payload - skip;
                        _received = end;
                        MarkActiveLocked();
                        _readable.Pulse();
                        return AckDueLocked() ? FrameResult.WakeSender : FrameResult.Nothing;
                    }

                case FrameType.Ack:
                    {
                        var (received, consumed) = TransportFrame.ReadAck(body);
                        ApplyPeerReceivedLocked((long)received);
                        var c = Math.Min((long)consumed, _written);
                        if (c > _peerConsumed)
                        {
                            _peerConsumed = c;
                            _writable.Pulse();
                        }

                        return CheckFinishedLocked() ? FrameResult.WakeSender : FrameResult.Nothing;
                    }

                case FrameType.Fin:
                    {
                        var fin = (long)TransportFrame.ReadU64(FrameType.Fin, body);
                        if (_peerFin >= 0)
                        {
                            if (fin != _peerFin)
                            {
                                throw new ProtocolViolationException("A second FIN at another offset.");
                            }

                            return FrameResult.Nothing;
                        }

                        if (fin != _received)
                        {
                            throw new ProtocolViolationException($"FIN at {fin} while {_received} bytes were received.");
                        }

                        _peerFin = fin;
                        MarkActiveLocked();
                        _readable.Pulse();
                        CheckFinishedLocked();
                        return FrameResult.WakeSender;
                    }

                case FrameType.Ping:
                    flow.PongToSend = TransportFrame.ReadU64(FrameType.Ping, body);
                    return FrameResult.WakeSender;

                case FrameType.Pong:
                    if (TransportFrame.ReadU64(FrameType.Pong, body) == flow.PingId)
                    {
                        _lastRtt = _time.GetElapsedTime(flow.PingSentAt);
                    }

                    return FrameResult.Nothing;

                case FrameType.Reset:
                    {
                        var code = TransportFrame.ReadReset(body);
                        var error = new MobileConnectionException(MobileConnectionError.ResetByPeer, $"The connection was reset by the peer (code {code}).");
                        ThreadPool.UnsafeQueueUserWorkItem(static s => s.Item1.Fail(s.Item2), (this, error), preferLocal: false);
                        return FrameResult.Stop;
                    }

                default:
                    throw new MalformedMessageException($"Unknown frame type {(byte)frame.Type}.");
            }
        }
    }

    /// <summary>Applies the peer's cumulative receive position (from ACK, Resume or ResumeAck).</summary>
    private void ApplyPeerReceivedLocked(long received)
    {
        var max = _written + (_finOffset >= 0 ? 1 : 0);
        if (received > max)
        {
            throw new ProtocolViolationException($"The peer acknowledged {received} bytes of {max} sent.");
        }

        var data = Math.Min(received, _written);
        if (data > _peerReceived)
        {
            _peerReceived = data;
            _sendBuffer.ReleaseTo(data);
        }

        if (_sendNext < _peerReceived)
        {
            _sendNext = _peerReceived;
        }

        if (_finOffset >= 0 && received == _finOffset + 1 && !_finAcked)
        {
            _finAcked = true;
            _stateChanged.Pulse();
        }
    }

    private bool CheckFinishedLocked()
    {
        if (IsFinishedLocked())
        {
            _stateChanged.Pulse();
            return true;
        }

        return false;
    }

    /// <summary>A keepalive (or a write after idling) is waiting for the first frame back on the current flow.</summary>
    internal bool AwaitingAnswer
    {
        get
        {
            lock (_lock)
            {
                return _flow is { } flow && flow.ProbeSince > flow.LastReceived;
            }
        }
    }

    /// <summary>
    /// Data moved (written by the application, received, FIN): the connection is active. Turning
    /// active from idle restarts the dead-path clock and switches the timer to fast ticks at once,
    /// so a write on a long-idle connection over a dead path is noticed within DeadPathTimeout.
    /// </summary>
    private void MarkActiveLocked()
    {
        var now = _time.GetTimestamp();
        _lastDataAt = now;
        if (!_fastTicks)
        {
            _fastTicks = true;
            if (_flow is { } flow)
            {
                flow.ProbeSince = now;
            }

            TickSoonLocked();
        }
    }

    /// <summary>Arms the timer for a fast tick unless one is already due sooner.</summary>
    private void TickSoonLocked()
    {
        if (_failure is not null || _completed)
        {
            return;
        }

        var due = _options.KeepAliveInterval / 2;
        var dueAt = _time.GetTimestamp() + ToTicks(due);
        if (dueAt < _tickDueAt)
        {
            ArmTimerLocked(due);
        }
    }

    private void ArmTimerLocked(TimeSpan due)
    {
        if (due < TimeSpan.FromMilliseconds(1))
        {
            due = TimeSpan.FromMilliseconds(1);
        }

        _tickDueAt = _time.GetTimestamp() + ToTicks(due);
        _timer.Change(due, Timeout.InfiniteTimeSpan);
    }

    private long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private TimeSpan JitteredIdleInterval()
    {
#pragma warning disable CA5394 // Jitter, not security.
        return _options.IdleKeepAliveInterval * (0.75 + (Random.Shared.NextDouble() * 0.5));
#pragma warning restore CA5394
    }

    /// <summary>
    /// Whether the established <paramref name="flow"/> should be probed fast: unacknowledged data
    /// (or an unacknowledged FIN), data moved within the last two DeadPathTimeouts, or a keepalive
    /// sent since the last frame received.
    /// </summary>
    private bool IsActiveLocked(FlowContext flow)
    {
        return _written > _peerReceived
            || (_finOffset >= 0 && !_finAcked)
            || _time.GetElapsedTime(_lastDataAt) < _options.DeadPathTimeout * 2
            || flow.ProbeSince > flow.LastReceived;
    }

    /// <summary>
    /// Keepalive and dead-path timer, re-armed by every tick. Active connection: a tick every
    /// KeepAliveInterval / 2, PING after KeepAliveInterval without sending, dead after
    /// DeadPathTimeout without receiving. Idle connection: the client sends one PING after its
    /// jittered IdleKeepAliveInterval without receiving (and is active until something comes back);
    /// the server only answers and declares the flow dead after 2 × IdleKeepAliveInterval +
    /// DeadPathTimeout of silence. Without an established flow: the pathless deadline.
    /// </summary>
    private void OnTick()
    {
        FlowContext? dead = null;
        var deadFor = _options.DeadPathTimeout;
        var pathless = false;
        lock (_lock)
        {
            if (_failure is not null || _completed)
            {
                return;
            }

            var fast = _options.KeepAliveInterval / 2;
            var next = fast;
            var flow = _flow;
            if (flow is not null && flow.Established)
            {
                if (IsActiveLocked(flow))
                {
                    if (!_fastTicks)
                    {
                        _fastTicks = true;
                        flow.ProbeSince = _time.GetTimestamp();
                    }

                    if (ReceivedValueLocked() != _ackedReceived || _consumed != _ackedConsumed)
                    {
                        // ACKs below AckEvery wait for a ride or for this tick (at most KeepAliveInterval / 2).
                        flow.AckRequested = true;
                        flow.Wake.Set();
                    }

                    var since = Math.Max(flow.LastReceived, flow.ProbeSince);
                    if (_time.GetElapsedTime(since) > _options.DeadPathTimeout)
                    {
                        dead = flow;
                        _relocateFirst = true;
                    }
                    else if (_time.GetElapsedTime(flow.LastSent) >= _options.KeepAliveInterval)
                    {
                        flow.PingRequested = true;
                        flow.Wake.Set();
                    }
                }
                else
                {
                    _fastTicks = false;
                    var quiet = _time.GetElapsedTime(flow.LastReceived);
                    if (_isClient)
                    {
                        if (quiet >= flow.IdleInterval)
                        {
                            // One keepalive; until it is answered the connection counts as active.
                            _fastTicks = true;
                            flow.ProbeSince = _time.GetTimestamp();
                            flow.IdleInterval = JitteredIdleInterval();
                            flow.PingRequested = true;
                            flow.Wake.Set();
                        }
                        else
                        {
                            next = flow.IdleInterval - quiet;
                        }
                    }
                    else
                    {
                        var limit = (_options.IdleKeepAliveInterval * 2) + _options.DeadPathTimeout;
                        if (quiet > limit)
                        {
                            dead = flow;
                            deadFor = limit;
                        }
                        else
                        {
                            next = limit - quiet + fast;
                        }
                    }
                }
            }
            else if (_pathLostAt is { } lost)
            {
                var elapsed = _time.GetElapsedTime(lost);
                if (elapsed > _options.PathlessTimeout)
                {
                    pathless = true;
                }
                else if (flow is null && !_isClient)
                {
                    // A server without a flow only waits for a Resume (which re-arms the timer).
                    next = _options.PathlessTimeout - elapsed + fast;
                }
            }

            if (!pathless)
            {
                ArmTimerLocked(dead is not null ? fast : next);
            }
        }

        if (dead is not null)
        {
            FlowFailed(dead, $"nothing received for {deadFor.TotalMilliseconds:0} ms");
        }

        if (pathless)
        {
            Fail(new MobileConnectionException(MobileConnectionError.NoPath,
                $"No path to peer {RemoteGuid.ToShortString()} for {_options.PathlessTimeout.TotalSeconds:0.###} s."));
        }
    }
}
