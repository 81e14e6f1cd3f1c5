using System.Buffers;
using System.Buffers.Binary;
using Mobility.Protocol;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;

namespace Mobility.Transport;

public sealed partial class MobileConnection
{
    /// <summary>A frame whose body is in place in the output buffer, to be sealed once the batch is laid out.</summary>
    private readonly record struct PendingSeal(FrameType Type, ulong Counter, int BodyLength, int Position);

    private readonly List<PendingSeal> _seals = new(16);

    /// <summary>Makes <paramref name="path"/> active; the previous one is retired.</summary>
    private void ActivatePath(ConnectionPath path)
    {
        _paths.Activate(path);
        _keepAlive.OnPathActivated(path, _time.GetTimestamp());
        if (path.Established)
        {
            _state = MobileConnectionState.Connected;
        }

        TickSoon();
    }

    private void StartReceiving(ConnectionPath path)
        => path.Receiving = Task.Run(() => ReceiveLoopAsync(path));

    /// <summary>Detaches a dead path; the client starts reconnecting, the server waits for a Resume.</summary>
    private void FlowFailed(ConnectionPath path, string reason, bool localAddressGone = false)
    {
        var wasStandby = _paths.IsStandby(path);
        // Client, the path lost with this host's address: where its bytes stopped leaving the host (asked of the flow
        // before it is closed); what left before most likely arrived. Lost any other way (the peer moved, a silent
        // upstream), bytes that left may be lost too: the resume starts from the last ACK.
        var onWire = localAddressGone && _isClient && path.Established && _paths.Active == path ? path.StreamOffsetOnWire() : null;
        if (!_paths.Deactivate(path) || _completed || _failure is not null)
        {
            if (wasStandby)
            {
                OnStandbyLost(path, reason);
            }

            return;
        }

        if (TrySwitchToStandby(path, reason, onWire))
        {
            return;
        }

        _pathLostAt ??= _time.GetTimestamp();
        if (path.Established)
        {
            // A resume's own flow lost before its answer leaves the estimate of the path lost before it.
            _resendFrom = onWire;
        }

        _state = MobileConnectionState.Pathless;
        DropQueuedDatagrams();
        // Published before the supervisor is kicked: it asks NeedsPath at once.
        Publish();
        TransportLog.PathLost(_logger, Token, path.Flow.RemoteEndPoint, reason);
        _timeline.Record(MoveEventKind.PathDead, reason);
        Raise(MobileConnectionEventKind.PathLost, path.Flow.LocalEndPoint, path.Flow.RemoteEndPoint, reason, TimeSpan.Zero);
        _supervisor?.Kick();
    }

    /// <summary>
    /// The loop's send step for <paramref name="path"/>: unless a write is in flight on it, lays out
    /// what it should carry next (frame counters and stream offsets assigned, bodies copied into
    /// place), seals it (the loop is the only sealer) and starts the write. The next batch is laid
    /// out when this write is done (<see cref="WriteDone"/>), so a path has one write in flight and
    /// a slow socket holds back the loop's copies, not its events.
    /// </summary>
    private void SendOn(ConnectionPath path)
    {
        if (path.Writing || path.Closing || path.IsStopped)
        {
            return;
        }

        if (path.Outbox.Reset is not null)
        {
            // Abort or dispose: the path was detached with a RESET to deliver first.
            var resetOutput = ArrayPool<byte>.Shared.Rent(SmallOutputSize);
            var resetLength = BuildReset(path, resetOutput);
            SealAll(resetOutput);
            StartWrite(path, resetOutput, resetLength, reset: true, close: false);
            return;
        }

        if (path.IsStandby)
        {
            SendOnStandby(path);
            return;
        }

        if (_paths.Active != path || !HasSomethingToSend(path))
        {
            return;
        }

        var output = ArrayPool<byte>.Shared.Rent(SmallOutputSize);
        var length = BuildBatch(path, ref output, out var closeAfter);
        SealAll(output);
        if (length == 0 && !closeAfter)
        {
            ArrayPool<byte>.Shared.Return(output);
            return;
        }

        path.Closing = closeAfter;
        if (_isClient)
        {
            path.MarkWrite(length, _send.Next);
        }

        StartWrite(path, output, length, reset: false, close: closeAfter);
    }

    private bool HasSomethingToSend(ConnectionPath path)
        => path.Preamble is not null
            || path.Outbox.HasFrames
            || _send.HasUnsent
            || HasDatagramsToSend
            || _candidatesDue
            || _punchDue != 0
            || _send.FinDue(path.FinSent)
            || (_receive.AckChanged && _receive.AckDue)
            || (!_isClient && IsFinished() && _receive.AckedReceived == _receive.ReceivedValue);

    private void SealAll(byte[] output)
    {
        foreach (var seal in _seals)
        {
            _sealer.SealInPlace(seal.Type, seal.Counter, seal.BodyLength, output.AsSpan(seal.Position));
        }

        _seals.Clear();
    }

    private void StartWrite(ConnectionPath path, byte[] output, int length, bool reset, bool close)
    {
        path.Writing = true;
        path.Sending = WriteAsync(path, output, length, reset, close);
    }

    /// <summary>
    /// The socket pump: writes one sealed batch (and flushes it after a RESET; closes the flow after
    /// the server's last batch), then tells the loop. Returns the buffer to the pool.
    /// </summary>
    private async Task WriteAsync(ConnectionPath path, byte[] output, int length, bool reset, bool close)
    {
        var ct = path.Cancellation;
        Exception? error = null;
        try
        {
            if (length > 0)
            {
                await path.Flow.Stream.WriteAsync(output.AsMemory(0, length), ct).ConfigureAwait(false);
                // Its bytes are the socket's now: an address event the loop handles before this WriteDone (posted behind
                // it) must not count them twice, as in flight and as unsent (ConnectionPath.StreamOffsetOnWire).
                path.PendingWrite = 0;
            }

            if (reset || close)
            {
                await path.Flow.Stream.FlushAsync(ct).ConfigureAwait(false);
            }

            if (close)
            {
                // Server, both FINs acknowledged and our ACK of the client's FIN written: closing
                // the flow tells the client that we know the connection is done.
                await path.Flow.DisposeAsync().ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            error = e;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(output);
        }

        if (!Post(new WriteDone(path, reset, error)))
        {
            path.ResetFlushed.TrySetResult(false);
        }
    }

    private void OnWriteDone(WriteDone done)
    {
        var path = done.Path;
        path.Writing = false;
        path.PendingWrite = 0;
        if (done.Error is { } error)
        {
            path.ResetFlushed.TrySetResult(false);
            if (!(error is OperationCanceledException && path.IsStopped))
            {
                FlowFailed(path, "send failed: " + error.Message);
            }

            return;
        }

        path.LastSent = _time.GetTimestamp();
        if (done.Reset)
        {
            path.ResetFlushed.TrySetResult(true);
            return;
        }

        if (path.Closing)
        {
            Complete();
            return;
        }

        if (path.Outbox.Reset is not null)
        {
            // A RESET was queued while this write was in flight.
            SendOn(path);
        }
    }

    /// <summary>Places a control frame's body at <paramref name="position"/> + header and queues it for sealing; returns the position after it.</summary>
    private int PlaceControl(int position, FrameType type, int bodyLength)
    {
        _seals.Add(new PendingSeal(type, ++_sendCounter, bodyLength, position));
        return position + TransportFrame.WireSize(bodyLength);
    }

    private static Span<byte> BodyAt(byte[] output, int position, int length)
        => output.AsSpan(position + TransportConstants.FrameHeaderSize, length);

    /// <summary>The start of every batch (a standby path's whole batch): the path's pending preamble, then PONG and PING if queued; returns the position after them.</summary>
    private int PlaceProbes(ConnectionPath path, byte[] output)
    {
        var position = PlacePreamble(path, output);
        if (path.Outbox.TryTakePong(out var pong))
        {
            BinaryPrimitives.WriteUInt64BigEndian(BodyAt(output, position, 8), pong);
            position = PlaceControl(position, FrameType.Pong, 8);
        }

        if (path.Outbox.TakePing())
        {
            path.PingId++;
            path.PingSentAt = _time.GetTimestamp();
            _stats.PingsSent++;
            BinaryPrimitives.WriteUInt64BigEndian(BodyAt(output, position, 8), path.PingId);
            position = PlaceControl(position, FrameType.Ping, 8);
        }

        return position;
    }

    /// <summary>The path's pending handshake bytes (ClientFinish, Resume, ResumeAck, Join, JoinAck) at the start of <paramref name="output"/>; returns their length.</summary>
    private static int PlacePreamble(ConnectionPath path, byte[] output)
    {
        if (path.Preamble is not { } preamble)
        {
            return 0;
        }

        preamble.CopyTo(output, 0);
        path.Preamble = null;
        return preamble.Length;
    }

    /// <summary>The path's pending preamble, then a RESET.</summary>
    private int BuildReset(ConnectionPath path, byte[] output)
    {
        var position = PlacePreamble(path, output);

        var code = path.Outbox.TakeReset()!.Value;
        BinaryPrimitives.WriteUInt32BigEndian(BodyAt(output, position, 4), code);
        return PlaceControl(position, FrameType.Reset, 4);
    }

    /// <summary>
    /// Lays out in <paramref name="output"/> what the path should carry next (bodies in place,
    /// headers and tags written when the pending seals are sealed); returns the byte count.
    /// </summary>
    private int BuildBatch(ConnectionPath path, ref byte[] output, out bool closeAfter)
    {
        var firstWrite = path.Preamble is not null;
        var position = PlaceProbes(path, output);

        // ACKs are not sent per read: only when due (a threshold, the peer's FIN), forced (new path,
        // timer), or riding along with anything else this batch carries. Bulk data then costs one ACK
        // frame per AckEvery bytes instead of one per pipe read (each a send and two wake-ups).
        var piggyback = position > 0 || _send.HasUnsent || _send.FinDue(path.FinSent);
        var (forced, requested) = path.Outbox.TakeAckRequests();
        if (forced || (_receive.AckChanged && (piggyback || requested || _receive.AckDue)))
        {
            var body = BodyAt(output, position, 16);
            BinaryPrimitives.WriteUInt64BigEndian(body, (ulong)_receive.ReceivedValue);
            BinaryPrimitives.WriteUInt64BigEndian(body[8..], (ulong)_receive.Consumed);
            position = PlaceControl(position, FrameType.Ack, 16);
            _receive.MarkAcked(withConsumed: true);
        }

        position = PlaceCandidates(output, position);
        position = PlacePunch(output, position);

        // A Resume in a first flight: the SYN carries one segment, the new flow's first window ten more.
        // The resend starts where the server's last ACK said (stale by up to a keepalive tick); when more
        // than that window may be bytes the server already holds, only what fits in the SYN goes before
        // the answer, and the rest follows from the offset the ResumeAck names. Long.MaxValue: no limit.
        var dataRoom = FirstFlightDataRoom(path, position, firstWrite);
        if ((_send.HasUnsent || HasDatagramsToSend) && output.Length < OutputBufferSize && dataRoom > FirstFlightBytes)
        {
            var large = ArrayPool<byte>.Shared.Rent(OutputBufferSize);
            output.AsSpan(0, position).CopyTo(large);
            ArrayPool<byte>.Shared.Return(output);
            output = large;
        }

        // DATA and DATAGRAM frames share the batch byte for byte (whichever has placed fewer bytes
        // goes next), so bulk data cannot starve datagrams nor a datagram flood the stream.
        // Datagrams queued by the application after the buffer was chosen wait for a large one.
        long dataBytes = 0, datagramBytes = 0;
        var roomForDatagrams = output.Length >= OutputBufferSize;
        while (position < OutputBatchSize && dataBytes < dataRoom)
        {
            if (roomForDatagrams && HasDatagramsToSend && (datagramBytes <= dataBytes || !_send.HasUnsent))
            {
                position = PlaceDatagram(output, position, ref datagramBytes);
                continue;
            }

            if (!_send.HasUnsent)
            {
                break;
            }

            // The body is assembled where it will be sent and sealed in place.
            var payload = (int)Math.Min(FramePayloadLimit(path), dataRoom - dataBytes);
            var body = BodyAt(output, position, 8 + payload);
            var (offset, n, resent, fresh) = _send.TakeNext(body[8..]);
            path.DataSent += n;
            BinaryPrimitives.WriteUInt64BigEndian(body, (ulong)offset);
            _stats.BytesResent += resent;
            _stats.BytesSent += fresh;
            dataBytes += n;
            position = PlaceControl(position, FrameType.Data, 8 + n);
        }

        if (_send.FinDue(path.FinSent))
        {
            BinaryPrimitives.WriteUInt64BigEndian(BodyAt(output, position, 8), (ulong)_send.FinOffset);
            position = PlaceControl(position, FrameType.Fin, 8);
            path.FinSent = true;
        }

        if (path.HoldsForPeerAck)
        {
            path.PeerAckBudget -= position;
        }

        closeAfter = !_isClient && IsFinished() && _receive.AckedReceived == _receive.ReceivedValue;
        return position;
    }

    private bool IsFinished() => _send.FinAcked && _receive.PeerFin >= 0;

    /// <summary>
    /// DATA payload that may still be laid out on <paramref name="path"/> in the batch whose other frames
    /// end at <paramref name="position"/>: on a client path whose Resume rides in a first flight, is not
    /// answered yet and resends more than <see cref="InitialWindowBytes"/> the server may already hold
    /// (decided at the first write, <paramref name="firstWrite"/>), what is left of
    /// <see cref="FirstFlightBytes"/> in that write and nothing after it; otherwise no limit
    /// (<see cref="long.MaxValue"/>): bytes never sent before then ride in the first window.
    /// </summary>
    private long FirstFlightDataRoom(ConnectionPath path, int position, bool firstWrite)
    {
        if (path.Established)
        {
            // A standby the client switched to sends one first window, then waits for the server's first ACK on it (OnPromoted).
            return path.HoldsForPeerAck ? PayloadWithin(path.PeerAckBudget - position) : long.MaxValue;
        }

        if (path.AwaitingResumeAck is null || !path.Flow.OpensWithFirstFlight)
        {
            return long.MaxValue;
        }

        if (firstWrite)
        {
            // A first flight that starts beyond the last ACK (where the lost path's bytes stopped leaving the host) may
            // start beyond what the server holds: only the SYN's room goes before the answer, so that a miss costs the
            // ResumeAck's round trip and not a first window of frames the server drops.
            path.HoldsUntilAnswered = path.FirstFlightFrom is not null || _send.HighestSent - _send.Next > InitialWindowBytes;
            // Whole frames in the SYN's room: the first DATA frame holds a kilobyte, so more room takes a second frame's overhead too.
            return path.HoldsUntilAnswered ? PayloadWithin(FirstFlightRoom(path) - position) : long.MaxValue;
        }

        return path.HoldsUntilAnswered ? 0 : long.MaxValue;
    }

    /// <summary>What the kernel puts in the SYN of <paramref name="path"/>'s flow: <see cref="FirstFlightBytes"/> to an IPv4 address, else <see cref="FirstFlightBytesIpv6"/>.</summary>
    internal static int FirstFlightRoom(ConnectionPath path)
        => path.Flow.RemoteEndPoint is { } remote && Plain(remote.Address).AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? FirstFlightBytesIpv6
            : FirstFlightBytes;

    /// <summary>
    /// DATA payload that fits in <paramref name="wireBytes"/> as frames of <see cref="FirstFramePayload"/> (a path's
    /// smallest; its frames are never smaller, so the frames actually laid out take no more room).
    /// </summary>
    internal static long PayloadWithin(long wireBytes)
    {
        if (wireBytes <= 0)
        {
            return 0;
        }

        var frame = TransportFrame.WireSize(8 + FirstFramePayload);
        var overhead = TransportFrame.WireSize(8);
        return ((wireBytes / frame) * FirstFramePayload) + Math.Max(0, (wireBytes % frame) - overhead);
    }

    /// <summary>
    /// The largest DATA payload of the next frame on <paramref name="path"/>: a frame is opened only once
    /// all of it arrived, and a new flow delivers its first bytes a segment (SYN) and then an initial
    /// window at a time, so a path's frames start at <see cref="FirstFramePayload"/> and grow with the
    /// bytes it carried (1, 1, 2, 4, … KiB) up to <see cref="TransportConstants.MaxFramePayload"/>
    /// (reached after 64 KiB; the overhead of the small frames is under 3 % of those bytes).
    /// </summary>
    private static int FramePayloadLimit(ConnectionPath path)
        => (int)Math.Clamp(path.DataSent, FirstFramePayload, TransportConstants.MaxFramePayload);

    /// <summary>
    /// A path's receive loop: reads the flow, answers nothing itself. On a resumed client path it
    /// first checks the Resume's answer; then it opens frames with its own AEAD context and hands
    /// each read's frames to the connection's loop, waiting until the loop has taken them (so a
    /// path never has more than one read's frames queued).
    /// </summary>
    private async Task ReceiveLoopAsync(ConnectionPath path)
    {
        var ct = path.Cancellation;
        using var opener = new FrameProtector(_openKey, IsEncrypted);
        var awaitingResume = path.AwaitingResumeAck;
        try
        {
            while (true)
            {
                var result = await path.Reader.ReadAsync(ct).ConfigureAwait(false);
                var buffer = result.Buffer;
                List<ReceivedFrame>? frames = null;
                var position = buffer.Start;
                if (awaitingResume is { } counter)
                {
                    var (answered, rejected, at) = ReadResumeAnswer(path, buffer, counter);
                    position = at;
                    if (rejected)
                    {
                        return;
                    }

                    if (answered)
                    {
                        awaitingResume = null;
                    }
                }

                if (awaitingResume is null)
                {
                    // Rented while frames are opened only, not while the loop waits (idle connections).
                    var scratch = ArrayPool<byte>.Shared.Rent(TransportConstants.MaxFrameWireSize + 64);
                    frames = [];
                    try
                    {
                        position = OpenFrames(opener, buffer.Slice(position), scratch, frames);
                    }
                    catch
                    {
                        ReturnArrays(frames, 0);
                        throw;
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(scratch);
                    }
                }

                path.Reader.AdvanceTo(position, buffer.End);
                if (frames is not null && (frames.Count > 0 || !buffer.IsEmpty))
                {
                    var received = new FramesReceived(path, frames);
                    if (!Post(received))
                    {
                        ReturnArrays(frames, 0);
                        return;
                    }

                    if (!await received.Processed.Task.WaitAsync(ct).ConfigureAwait(false))
                    {
                        return;
                    }
                }

                if (result.IsCompleted)
                {
                    Post(new FlowEnded(path));
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
            Post(new PathLost(path, "bad frame: " + e.Message));
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            Post(new PathLost(path, "receive failed: " + e.Message));
        }
        finally
        {
            await path.Reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Client: the first message on a resumed flow (ResumeAck or Reject), checked here and handed to the loop.</summary>
    private (bool Answered, bool Rejected, SequencePosition Position) ReadResumeAnswer(ConnectionPath path, ReadOnlySequence<byte> buffer, ulong counter)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (!HandshakeMessage.TryRead(ref reader, out var message))
        {
            return (false, false, buffer.Start);
        }

        if (message is HandshakeReject reject)
        {
            Post(new ResumeAnswered(path, null, reject.Reason));
            return (true, true, reader.Position);
        }

        if (message is not ResumeAck ack || ack.Standby != path.Joining || ack.Token != Token || ack.Counter != counter || !ack.VerifyMac(_resumeKey))
        {
            throw new MalformedMessageException("Invalid answer to Resume.");
        }

        Post(new ResumeAnswered(path, ack, null));
        return (true, false, reader.Position);
    }

    /// <summary>Opens every complete frame in <paramref name="buffer"/> (a DATA body into a rented array); returns the position after the last.</summary>
    private static SequencePosition OpenFrames(FrameProtector opener, ReadOnlySequence<byte> buffer, byte[] scratch, List<ReceivedFrame> frames)
    {
        var reader = new SequenceReader<byte>(buffer);
        Span<byte> control = stackalloc byte[16];
        while (TransportFrame.TryRead(ref reader, TransportConstants.MaxFrameLength, out var frame))
        {
            var bodyLength = frame.BodyLength;
            if (frame.Type is FrameType.Data or FrameType.Datagram or FrameType.Candidates)
            {
                var array = ArrayPool<byte>.Shared.Rent(bodyLength);
                if (!opener.TryOpen(frame, array.AsSpan(0, bodyLength), scratch))
                {
                    ArrayPool<byte>.Shared.Return(array);
                    throw new MalformedMessageException("Frame authentication failed.");
                }

                frames.Add(new ReceivedFrame(frame.Type, frame.Counter, array, bodyLength, 0, 0));
                continue;
            }

            var span = control[..bodyLength];
            if (!opener.TryOpen(frame, span, scratch))
            {
                throw new MalformedMessageException("Frame authentication failed.");
            }

            frames.Add(frame.Type switch
            {
                FrameType.Ack => FromAck(frame.Counter, TransportFrame.ReadAck(span)),
                FrameType.Fin or FrameType.Ping or FrameType.Pong => new ReceivedFrame(frame.Type, frame.Counter, null, bodyLength, TransportFrame.ReadU64(frame.Type, span), 0),
                FrameType.Reset => new ReceivedFrame(FrameType.Reset, frame.Counter, null, bodyLength, TransportFrame.ReadReset(span), 0),
                FrameType.Punch => new ReceivedFrame(FrameType.Punch, frame.Counter, null, bodyLength, TransportFrame.ReadPunch(span), 0),
                _ => throw new MalformedMessageException($"Unknown frame type {(byte)frame.Type}."),
            });
        }

        return reader.Position;
    }

    private static ReceivedFrame FromAck(ulong counter, (ulong Received, ulong Consumed) ack)
        => new(FrameType.Ack, counter, null, 16, ack.Received, ack.Consumed);

    private static void ReturnArrays(List<ReceivedFrame> frames, int from)
    {
        for (var i = from; i < frames.Count; i++)
        {
            if (frames[i].Array is { } array)
            {
                ArrayPool<byte>.Shared.Return(array);
            }
        }
    }

    /// <summary>Applies a read's frames if they came on the active path; tells the receive loop whether to go on.</summary>
    private void OnFramesReceived(FramesReceived received)
    {
        var path = received.Path;
        var frames = received.Frames;
        var next = 0;
        var keep = false;
        try
        {
            if (_failure is null && _paths.IsStandby(path) && !TakeStandbyFrames(path, frames, ref next))
            {
                keep = true;
                return;
            }

            if (_paths.Active != path || _failure is not null)
            {
                return;
            }

            path.LastReceived = _time.GetTimestamp();
            keep = true;
            while (next < frames.Count)
            {
                var frame = frames[next];
                var taken = HandleFrame(path, frame);
                // Counted only once handled: a frame that throws gets its array back in the finally.
                next++;
                if (!taken && frame.Array is { } unused)
                {
                    // The array of a DATA frame the receive state did not take goes back to the pool.
                    ArrayPool<byte>.Shared.Return(unused);
                }

                if (_paths.Active != path || _failure is not null)
                {
                    keep = false;
                    return;
                }
            }

            if (_receive.AckChanged && !_receive.AckDue && _paths.StandbySnapshot.Length > 0)
            {
                // With a standby up, the peer may switch to it at any moment and resend from our last ACK: keep that
                // ACK fresh (at most StandbyAckDelay behind), so the switch has little in doubt (see OnPromoted).
                TickWithin(_keepAlive.StandbyAckDelay(path));
            }
        }
        catch (MalformedMessageException e)
        {
            keep = false;
            TransportLog.BadFrame(_logger, Token, e.Message);
            FlowFailed(path, "bad frame: " + e.Message);
        }
        catch (ProtocolViolationException e)
        {
            keep = false;
            FailNow(new MobileConnectionException(MobileConnectionError.ProtocolViolation, "The peer violated the protocol: " + e.Message), null);
        }
        finally
        {
            ReturnArrays(frames, next);
            ServeReads();
            received.Processed.TrySetResult(keep);
        }
    }

    /// <summary>Applies one authenticated frame of the active path; true when the receive state took the frame's array.</summary>
    private bool HandleFrame(ConnectionPath path, in ReceivedFrame frame)
    {
        if (path.WasStandby && frame.Type is (FrameType.Ping or FrameType.Pong) && frame.Counter <= _receive.Counter && frame.Counter > path.StandbyCounter)
        {
            // A probe the peer sent while this path was still its standby (a direct path the client just
            // switched to): frames of two flows arrive in no common order, so it is checked per path, as there.
            path.StandbyCounter = frame.Counter;
            if (frame.Type == FrameType.Ping)
            {
                path.Outbox.QueuePong(frame.Value1);
            }
            else
            {
                path.OnPong(frame.Value1, _time.GetTimestamp(), _time);
            }

            return false;
        }

        _receive.AcceptCounter(frame.Counter);
        path.StandbyCounter = frame.Counter;
        switch (frame.Type)
        {
            case FrameType.Data:
                {
                    var array = frame.Array!;
                    var offset = (long)BinaryPrimitives.ReadUInt64BigEndian(array);
                    if (path.DropsDataGaps)
                    {
                        if (offset > _receive.Received)
                        {
                            // A first flight that started beyond what this end holds: the client rewinds to the ResumeAck's position.
                            _stats.GapBytesDropped += frame.Length - 8;
                            Publish();
                            return false;
                        }

                        path.DropsDataGaps = false;
                    }

                    var (delivered, duplicate, taken) = _receive.AcceptData(offset, array, 8, frame.Length - 8);
                    _stats.DuplicateBytesReceived += duplicate;
                    if (!taken)
                    {
                        return false;
                    }

                    _stats.BytesReceived += delivered;
                    if (_awaitingFirstByte && delivered > 0)
                    {
                        _awaitingFirstByte = false;
                        _timeline.Record(MoveEventKind.FirstByteDelivered, $"{delivered} bytes");
                    }

                    // Parked reads are served once the whole read's frames are in (OnFramesReceived), not per
                    // frame: a waiting read then takes up to a pipe read's worth, not one frame's 32 KiB.
                    MarkActive();
                    return true;
                }

            case FrameType.Ack:
                _send.ApplyPeerReceived((long)frame.Value1);
                path.HoldsForPeerAck = false;
                LogSwitchAck(_logger, Token, path, _send.PeerReceived);
                if (path.SwitchSkippedTo is { } skipped)
                {
                    path.SwitchSkippedTo = null;
                    if (_send.PeerReceived < skipped)
                    {
                        // The resend on the standby started beyond what the server holds: it dropped those frames; resend from its position.
                        RewindToPeerPosition(path);
                        StandbyLog.SwitchRewound(_logger, Token, skipped, _send.PeerReceived);
                        TickSoon();
                    }
                }
                if (_send.ApplyPeerConsumed((long)frame.Value2))
                {
                    ContinueWrite();
                }

                return false;

            case FrameType.Fin:
                if (path.DropsDataGaps && (long)frame.Value1 > _receive.Received)
                {
                    return false;   // behind a first flight's gap (above): sent again after the rewind
                }

                if (_receive.AcceptFin((long)frame.Value1))
                {
                    MarkActive();
                }

                return false;

            case FrameType.Ping:
                path.Outbox.QueuePong(frame.Value1);
                return false;

            case FrameType.Pong:
                if (path.OnPong(frame.Value1, _time.GetTimestamp(), _time))
                {
                    _stats.LastRtt = path.Rtt;
                }

                return false;

            case FrameType.Datagram:
                return AcceptDatagram(frame.Array!, frame.Length);

            case FrameType.Candidates:
                OnPeerCandidates(frame.Array.AsSpan(0, frame.Length));
                return false;

            case FrameType.Punch:
                OnPeerPunch((uint)frame.Value1);
                return false;

            case FrameType.Reset:
                FailNow(new MobileConnectionException(MobileConnectionError.ResetByPeer, $"The connection was reset by the peer (code {frame.Value1})."), null);
                return false;

            default:
                throw new MalformedMessageException($"Unknown frame type {(byte)frame.Type}.");
        }
    }

    private void OnFlowEnded(ConnectionPath path)
    {
        if (_paths.Active == path && _isClient && IsFinished())
        {
            // The server closes the flow only once it knows both FINs were acknowledged.
            Complete();
        }
        else
        {
            FlowFailed(path, "the peer closed the flow");
        }
    }

    /// <summary>A keepalive (or a write after idling) is waiting for the first frame back on the active path.</summary>
    internal bool AwaitingAnswer => _publishedPath is { AwaitingAnswer: true };

    /// <summary>Data moved (written by the application, received, FIN): the connection is active (see <see cref="KeepAlivePolicy.OnDataMoved"/>).</summary>
    private void MarkActive()
    {
        if (_keepAlive.OnDataMoved(_paths.Active, _time.GetTimestamp()))
        {
            TickSoon();
        }
    }

    /// <summary>Arms the timer for a fast tick unless one is already due sooner.</summary>
    private void TickSoon() => TickWithin(_keepAlive.FastTick);

    /// <summary>Arms the timer to tick after <paramref name="due"/> unless a tick is already due sooner.</summary>
    private void TickWithin(TimeSpan due)
    {
        if (_failure is not null || _completed)
        {
            return;
        }

        var dueAt = _time.GetTimestamp() + ToTicks(due);
        if (dueAt < _tickDueAt)
        {
            ArmTimer(due);
        }
    }

    private void ArmTimer(TimeSpan due)
    {
        if (due < TimeSpan.FromMilliseconds(1))
        {
            due = TimeSpan.FromMilliseconds(1);
        }

        _tickDueAt = _time.GetTimestamp() + ToTicks(due);
        _timer.Change(due, Timeout.InfiniteTimeSpan);
    }

    private long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    /// <summary>The timer's tick, on the loop: asks the keepalive policy what to do now and does it.</summary>
    private void OnTick()
    {
        if (_failure is not null || _completed)
        {
            return;
        }

        var path = _paths.Active;
        var verdict = _keepAlive.OnTick(path, _send.HasUnacknowledged, _receive.AckChanged, _pathLostAt, _time.GetTimestamp());
        if (path is not null)
        {
            if (verdict.RequestAck)
            {
                path.Outbox.RequestAck();
            }

            if (verdict.Ping)
            {
                path.Outbox.QueuePing();
            }
        }

        if (verdict.PathDead && verdict.SilentDeath)
        {
            _supervisor?.RelocateFirst(path?.Flow.LocalEndPoint?.Address);
        }

        var nextTick = TickStandbys(verdict.NextTick);
        if (!verdict.NoPath)
        {
            ArmTimer(nextTick);
        }

        if (verdict.PathDead && path is not null)
        {
            FlowFailed(path, $"nothing received for {verdict.DeadFor.TotalMilliseconds:0} ms");
        }

        if (verdict.NoPath)
        {
            FailNow(new MobileConnectionException(MobileConnectionError.NoPath,
                $"No path to peer {RemoteGuid.ToShortString()} for {_options.PathlessTimeout.TotalSeconds:0.###} s."), null);
        }
    }
}
