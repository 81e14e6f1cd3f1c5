using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Mobility.Protocol;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;

namespace Mobility.Transport;

public sealed partial class MobileConnection
{
    /// <summary>A frame whose body is in place in the output buffer, to be sealed outside the lock.</summary>
    private readonly record struct PendingSeal(FrameType Type, ulong Counter, int BodyLength, int Position);

    /// <summary>Makes <paramref name="path"/> active (under the lock); the previous one is retired.</summary>
    private void ActivatePathLocked(ConnectionPath path)
    {
        _paths.Activate(path);
        _keepAlive.OnPathActivated(path, _time.GetTimestamp());
        if (path.Established)
        {
            _state = MobileConnectionState.Connected;
        }

        TickSoonLocked();
    }

    private void StartLoops(ConnectionPath path)
    {
        path.Loops = Task.WhenAll(
            Task.Run(() => SendLoopAsync(path)),
            Task.Run(() => ReceiveLoopAsync(path)));
    }

    /// <summary>Detaches a dead path; the client starts reconnecting, the server waits for a Resume.</summary>
    private void FlowFailed(ConnectionPath path, string reason)
    {
        lock (_lock)
        {
            if (!_paths.Deactivate(path) || _completed || _failure is not null)
            {
                return;
            }

            _pathLostAt ??= _time.GetTimestamp();
            _state = MobileConnectionState.Pathless;
            _stateChanged.Pulse();
        }

        TransportLog.PathLost(_logger, Token, path.Flow.RemoteEndPoint, reason);
        Raise(MobileConnectionEventKind.PathLost, path.Flow.LocalEndPoint, path.Flow.RemoteEndPoint, reason, TimeSpan.Zero);
        _supervisor?.Kick();
    }

    /// <summary>
    /// The socket pump's send half: takes what the connection has to send under the lock (frame
    /// counters and stream offsets are assigned there, bodies copied into place), seals it outside
    /// the lock with this path's own AEAD context, and writes it. Only this loop seals for its path,
    /// so the lock is held for copies, never for cryptography.
    /// </summary>
    private async Task SendLoopAsync(ConnectionPath path)
    {
        var ct = path.Cancellation;
        using var sealer = new FrameProtector(_sealKey, IsEncrypted);
        var seals = new List<PendingSeal>(16);
        // Buffers are rented per batch and returned before the loop waits: an idle connection
        // holds none (otherwise each idle path pins a pool array), and renting from the shared
        // pool's per-thread cache costs little next to a batch.
        byte[]? output = null;
        try
        {
            while (true)
            {
                int length;
                bool more;
                bool closeAfter;
                bool reset;
                output = ArrayPool<byte>.Shared.Rent(SmallOutputSize);
                lock (_lock)
                {
                    if (path.ResetToSend is { } code)
                    {
                        // Abort or dispose: the path was detached with a RESET to deliver first.
                        length = BuildResetLocked(path, code, output, seals);
                        more = false;
                        closeAfter = false;
                        reset = true;
                    }
                    else if (_paths.Active != path)
                    {
                        return;
                    }
                    else
                    {
                        length = BuildBatchLocked(path, ref output, seals, out more, out closeAfter);
                        reset = false;
                    }
                }

                foreach (var seal in seals)
                {
                    sealer.SealInPlace(seal.Type, seal.Counter, seal.BodyLength, output.AsSpan(seal.Position));
                }

                seals.Clear();
                if (length > 0)
                {
                    await path.Flow.Stream.WriteAsync(output.AsMemory(0, length), ct).ConfigureAwait(false);
                    lock (_lock)
                    {
                        path.LastSent = _time.GetTimestamp();
                    }
                }

                if (reset)
                {
                    await path.Flow.Stream.FlushAsync(ct).ConfigureAwait(false);
                    path.ResetFlushed.TrySetResult(true);
                    return;
                }

                if (closeAfter)
                {
                    // Server, both FINs acknowledged and our ACK of the client's FIN written: closing
                    // the flow tells the client that we know the connection is done.
                    await path.Flow.Stream.FlushAsync(ct).ConfigureAwait(false);
                    await path.Flow.DisposeAsync().ConfigureAwait(false);
                    Complete();
                    return;
                }

                ArrayPool<byte>.Shared.Return(output);
                output = null;
                if (!more)
                {
                    await path.Wake.WaitAsync(ct).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Path stopped.
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            path.ResetFlushed.TrySetResult(false);
            FlowFailed(path, "send failed: " + e.Message);
        }
        finally
        {
            if (output is not null)
            {
                ArrayPool<byte>.Shared.Return(output);
            }
        }
    }

    /// <summary>Places a control frame's body at <paramref name="position"/> + header and queues it for sealing; returns the position after it.</summary>
    private int PlaceControl(List<PendingSeal> seals, byte[] output, int position, FrameType type, int bodyLength)
    {
        seals.Add(new PendingSeal(type, ++_sendCounter, bodyLength, position));
        return position + TransportFrame.WireSize(bodyLength);
    }

    private static Span<byte> BodyAt(byte[] output, int position, int length)
        => output.AsSpan(position + TransportConstants.FrameHeaderSize, length);

    /// <summary>The path's pending preamble, then a RESET.</summary>
    private int BuildResetLocked(ConnectionPath path, uint code, byte[] output, List<PendingSeal> seals)
    {
        var position = 0;
        if (path.Preamble is { } preamble)
        {
            preamble.CopyTo(output, 0);
            position = preamble.Length;
            path.Preamble = null;
        }

        path.ResetToSend = null;
        BinaryPrimitives.WriteUInt32BigEndian(BodyAt(output, position, 4), code);
        return PlaceControl(seals, output, position, FrameType.Reset, 4);
    }

    /// <summary>
    /// Lays out in <paramref name="output"/> what the path should carry next (bodies in place,
    /// headers and tags written when <paramref name="seals"/> are sealed); returns the byte count.
    /// </summary>
    private int BuildBatchLocked(ConnectionPath path, ref byte[] output, List<PendingSeal> seals, out bool more, out bool closeAfter)
    {
        var position = 0;
        if (path.Preamble is { } preamble)
        {
            preamble.CopyTo(output, 0);
            position = preamble.Length;
            path.Preamble = null;
        }

        if (path.PongToSend is { } pong)
        {
            BinaryPrimitives.WriteUInt64BigEndian(BodyAt(output, position, 8), pong);
            position = PlaceControl(seals, output, position, FrameType.Pong, 8);
            path.PongToSend = null;
        }

        if (path.PingRequested)
        {
            path.PingRequested = false;
            path.PingId++;
            path.PingSentAt = _time.GetTimestamp();
            _stats.PingsSent++;
            BinaryPrimitives.WriteUInt64BigEndian(BodyAt(output, position, 8), path.PingId);
            position = PlaceControl(seals, output, position, FrameType.Ping, 8);
        }

        // ACKs are not sent per read: only when due (a threshold, the peer's FIN), forced (new path,
        // timer), or riding along with anything else this batch carries. Bulk data then costs one ACK
        // frame per AckEvery bytes instead of one per pipe read (each a send and two wake-ups).
        var piggyback = position > 0 || _send.HasUnsent || _send.FinDue(path.FinSent);
        if (path.AckForced || (_receive.AckChanged && (piggyback || path.AckRequested || _receive.AckDue)))
        {
            var body = BodyAt(output, position, 16);
            BinaryPrimitives.WriteUInt64BigEndian(body, (ulong)_receive.ReceivedValue);
            BinaryPrimitives.WriteUInt64BigEndian(body[8..], (ulong)_receive.Consumed);
            position = PlaceControl(seals, output, position, FrameType.Ack, 16);
            _receive.MarkAcked(withConsumed: true);
            path.AckForced = false;
        }

        path.AckRequested = false;

        if (_send.HasUnsent && output.Length < OutputBatchSize + (TransportConstants.MaxFrameWireSize * 2))
        {
            var large = ArrayPool<byte>.Shared.Rent(OutputBatchSize + (TransportConstants.MaxFrameWireSize * 2));
            output.AsSpan(0, position).CopyTo(large);
            ArrayPool<byte>.Shared.Return(output);
            output = large;
        }

        while (_send.HasUnsent && position < OutputBatchSize)
        {
            // The body is assembled where it will be sent and sealed in place.
            var body = BodyAt(output, position, 8 + TransportConstants.MaxFramePayload);
            var (offset, n, resent, fresh) = _send.TakeNext(body[8..]);
            BinaryPrimitives.WriteUInt64BigEndian(body, (ulong)offset);
            _stats.BytesResent += resent;
            _stats.BytesSent += fresh;
            position = PlaceControl(seals, output, position, FrameType.Data, 8 + n);
        }

        if (_send.FinDue(path.FinSent))
        {
            BinaryPrimitives.WriteUInt64BigEndian(BodyAt(output, position, 8), (ulong)_send.FinOffset);
            position = PlaceControl(seals, output, position, FrameType.Fin, 8);
            path.FinSent = true;
        }

        more = _send.HasUnsent;
        closeAfter = !_isClient && IsFinishedLocked() && _receive.AckedReceived == _receive.ReceivedValue;
        return position;
    }

    private bool IsFinishedLocked() => _send.FinAcked && _receive.PeerFin >= 0;

    private async Task ReceiveLoopAsync(ConnectionPath path)
    {
        var ct = path.Cancellation;
        using var opener = new FrameProtector(_openKey, IsEncrypted);
        try
        {
            while (true)
            {
                var result = await path.Reader.ReadAsync(ct).ConfigureAwait(false);
                var buffer = result.Buffer;
                // Rented while frames are processed only, not while the loop waits (idle connections).
                var scratch = ArrayPool<byte>.Shared.Rent(TransportConstants.MaxFrameWireSize + 64);
                SequencePosition position;
                bool stop;
                MobileConnectionException? reset = null;
                try
                {
                    position = ProcessReceived(path, opener, buffer, scratch, ref reset, out stop);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(scratch);
                }

                path.Reader.AdvanceTo(position, buffer.End);
                if (reset is not null)
                {
                    Fail(reset);
                    return;
                }

                if (stop)
                {
                    return;
                }

                if (result.IsCompleted)
                {
                    OnFlowEnded(path);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Path stopped.
        }
        catch (MalformedMessageException e)
        {
            // Unauthenticated garbage or a forged frame on this flow: drop the flow, keep the connection.
            TransportLog.BadFrame(_logger, Token, e.Message);
            FlowFailed(path, "bad frame: " + e.Message);
        }
        catch (ProtocolViolationException e)
        {
            Fail(new MobileConnectionException(MobileConnectionError.ProtocolViolation, "The peer violated the protocol: " + e.Message));
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            FlowFailed(path, "receive failed: " + e.Message);
        }
        finally
        {
            await path.Reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private void OnFlowEnded(ConnectionPath path)
    {
        bool done;
        lock (_lock)
        {
            done = _paths.Active == path && _isClient && IsFinishedLocked();
        }

        if (done)
        {
            // The server closes the flow only once it knows both FINs were acknowledged.
            Complete();
        }
        else
        {
            FlowFailed(path, "the peer closed the flow");
        }
    }

    private SequencePosition ProcessReceived(ConnectionPath path, FrameProtector opener, ReadOnlySequence<byte> buffer, byte[] scratch, ref MobileConnectionException? reset, out bool stop)
    {
        stop = false;
        var reader = new SequenceReader<byte>(buffer);
        lock (_lock)
        {
            if (_paths.Active != path)
            {
                stop = true;
                return buffer.End;
            }

            path.LastReceived = _time.GetTimestamp();
        }

        if (path.AwaitingResumeAck is { } counter)
        {
            if (!HandshakeMessage.TryRead(ref reader, out var message))
            {
                return reader.Position;
            }

            if (!HandleResumeAnswer(path, counter, message!))
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

                    var result = HandleFrame(path, frame, array.AsSpan(0, bodyLength), array, ref owned, ref reset);
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
                var result = HandleFrame(path, frame, span, null, ref owned, ref reset);
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
            path.Wake.Set();
        }

        return reader.Position;
    }

    private enum FrameResult
    {
        Nothing,
        WakeSender,
        Stop,
    }

    /// <summary>Applies one authenticated frame of the active path (under the lock).</summary>
    private FrameResult HandleFrame(ConnectionPath path, in RawFrame frame, ReadOnlySpan<byte> body, byte[]? array, ref bool owned, ref MobileConnectionException? reset)
    {
        lock (_lock)
        {
            if (_paths.Active != path || _failure is not null)
            {
                return FrameResult.Stop;
            }

            _receive.AcceptCounter(frame.Counter);
            switch (frame.Type)
            {
                case FrameType.Data:
                    {
                        var offset = (long)BinaryPrimitives.ReadUInt64BigEndian(body);
                        var (delivered, duplicate, taken) = _receive.AcceptData(offset, array!, 8, body.Length - 8);
                        _stats.DuplicateBytesReceived += duplicate;
                        if (!taken)
                        {
                            return FrameResult.Nothing;
                        }

                        owned = true;
                        _stats.BytesReceived += delivered;
                        MarkActiveLocked();
                        _readable.Pulse();
                        return _receive.AckDue ? FrameResult.WakeSender : FrameResult.Nothing;
                    }

                case FrameType.Ack:
                    {
                        var (received, consumed) = TransportFrame.ReadAck(body);
                        ApplyPeerReceivedLocked((long)received);
                        if (_send.ApplyPeerConsumed((long)consumed))
                        {
                            _writable.Pulse();
                        }

                        return CheckFinishedLocked() ? FrameResult.WakeSender : FrameResult.Nothing;
                    }

                case FrameType.Fin:
                    {
                        if (!_receive.AcceptFin((long)TransportFrame.ReadU64(FrameType.Fin, body)))
                        {
                            return FrameResult.Nothing;
                        }

                        MarkActiveLocked();
                        _readable.Pulse();
                        CheckFinishedLocked();
                        return FrameResult.WakeSender;
                    }

                case FrameType.Ping:
                    path.PongToSend = TransportFrame.ReadU64(FrameType.Ping, body);
                    return FrameResult.WakeSender;

                case FrameType.Pong:
                    if (path.OnPong(TransportFrame.ReadU64(FrameType.Pong, body), _time.GetTimestamp(), _time))
                    {
                        _stats.LastRtt = path.Rtt;
                    }

                    return FrameResult.Nothing;

                case FrameType.Reset:
                    {
                        // Failed by the receive loop once the lock is released.
                        var code = TransportFrame.ReadReset(body);
                        reset = new MobileConnectionException(MobileConnectionError.ResetByPeer, $"The connection was reset by the peer (code {code}).");
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
        if (_send.ApplyPeerReceived(received))
        {
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

    /// <summary>A keepalive (or a write after idling) is waiting for the first frame back on the active path.</summary>
    internal bool AwaitingAnswer
    {
        get
        {
            lock (_lock)
            {
                return _paths.Active is { AwaitingAnswer: true };
            }
        }
    }

    /// <summary>Data moved (written by the application, received, FIN): the connection is active (see <see cref="KeepAlivePolicy.OnDataMoved"/>).</summary>
    private void MarkActiveLocked()
    {
        if (_keepAlive.OnDataMoved(_paths.Active, _time.GetTimestamp()))
        {
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

        var due = _keepAlive.FastTick;
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

    /// <summary>The timer: asks the keepalive policy what to do now and does it.</summary>
    private void OnTick()
    {
        ConnectionPath? dead = null;
        var verdict = default(KeepAliveVerdict);
        lock (_lock)
        {
            if (_failure is not null || _completed)
            {
                return;
            }

            var path = _paths.Active;
            verdict = _keepAlive.OnTick(path, _send.HasUnacknowledged, _receive.AckChanged, _pathLostAt, _time.GetTimestamp());
            if (path is not null && (verdict.RequestAck || verdict.Ping))
            {
                path.AckRequested |= verdict.RequestAck;
                path.PingRequested |= verdict.Ping;
                path.Wake.Set();
            }

            if (verdict.PathDead)
            {
                dead = path;
                if (verdict.SilentDeath)
                {
                    _supervisor?.RelocateFirst();
                }
            }

            if (!verdict.NoPath)
            {
                ArmTimerLocked(verdict.NextTick);
            }
        }

        if (dead is not null)
        {
            FlowFailed(dead, $"nothing received for {verdict.DeadFor.TotalMilliseconds:0} ms");
        }

        if (verdict.NoPath)
        {
            Fail(new MobileConnectionException(MobileConnectionError.NoPath,
                $"No path to peer {RemoteGuid.ToShortString()} for {_options.PathlessTimeout.TotalSeconds:0.###} s."));
        }
    }
}
