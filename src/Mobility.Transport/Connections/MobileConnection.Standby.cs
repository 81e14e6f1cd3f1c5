using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;
using Mobility.Transport.Internal;

namespace Mobility.Transport;

/// <summary>
/// Standby paths (make-before-break, as MPTCP's backup subflows): the client joins extra flows from
/// its other local addresses (Join/JoinAck, MAC'd with the resume key, on the resume counter), both
/// ends keep them alive cheaply (PING/PONG on the idle schedule, no data), and when the active path
/// dies or its local address goes, the client promotes a standby at once and resends only what the
/// peer has not acknowledged; the server promotes a standby when anything but PING or PONG arrives
/// on it (the client's switch starts with an ACK). A PING or PONG on a standby is checked against
/// that path's own last counter (frames of two flows arrive in no common order), every other frame
/// against the connection's, as on the active path.
/// </summary>
public sealed partial class MobileConnection
{
    /// <summary>
    /// The host's usable local addresses (the daemon's address monitor calls this on every change).
    /// Client: a path whose local address is not in the list is dropped (the active one: the
    /// connection switches to a standby path at once, or resumes from another address as after
    /// <see cref="NotifyLocalAddressChanged"/>); an address not used by any path becomes a standby
    /// path (at most <see cref="MobileTransportOptions.MaxStandbyPaths"/>) while the active path
    /// works. A path whose address is still listed is left alone.
    /// </summary>
    public void NotifyLocalAddresses(IReadOnlyList<IPAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        if (_failure is not null || _publishedState == MobileConnectionState.Completed)
        {
            return;
        }

        IPAddress[] list = [.. addresses.Select(Plain)];
        _supervisor?.OnLocalAddresses(list);
        Post(new LocalAddressesChanged(list));
    }

    /// <summary>The standby paths, as last changed by the loop.</summary>
    internal ConnectionPath[] StandbyPaths => _paths.StandbySnapshot;

    ConnectionPath[] ISupervisedConnection.StandbyPaths => StandbyPaths;

    ConnectionPath? ISupervisedConnection.BeginJoin(Flows.IFlow flow)
    {
        if (_failure is not null || _publishedState == MobileConnectionState.Completed)
        {
            return null;
        }

        var reader = FlowReadBuffers.CreateReader(flow.Stream, bulk: true);
        var path = new ConnectionPath(flow, reader, null, established: false) { Joining = true };
        return Post(new PathStarted(path, resume: true)) ? path : null;
    }

    private static IPAddress Plain(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private static IPAddress? LocalAddressOf(ConnectionPath path) => path.Flow.LocalEndPoint is { } local ? Plain(local.Address) : null;

    /// <summary>On the loop: drops every path whose local address is gone (the active one last, so it can switch to a standby that stays).</summary>
    private void OnLocalAddressesChanged(IPAddress[] addresses)
    {
        if (_failure is not null || _completed)
        {
            return;
        }

        foreach (var standby in _paths.StandbySnapshot)
        {
            if (LocalAddressOf(standby) is { } address && !addresses.Contains(address) && (_isClient || !IPAddress.IsLoopback(address)))
            {
                FlowFailed(standby, $"local address {address} gone");
            }
        }

        // A server's loopback paths stay: the daemon's address lists leave loopback out, and it never moves.
        if (_paths.Active is { } active && LocalAddressOf(active) is { } used && !addresses.Contains(used) && (_isClient || !IPAddress.IsLoopback(used)))
        {
            _timeline.Record(MoveEventKind.AddressEvent, $"{used} gone");
            FlowFailed(active, $"local address {used} gone", localAddressGone: true);
            MaybeCallBack(active, null);
        }

        MaybeCallBackOwed(addresses);
    }

    /// <summary>Client, on the loop: a joining path starts with a Join (the next resume counter) and a PING behind it.</summary>
    private void BeginJoinOnLoop(ConnectionPath path)
    {
        if (_paths.Active is not { Established: true } || _options.MaxStandbyPaths == 0)
        {
            // A resume took over meanwhile (or standby paths are off): this join is not wanted.
            _ = path.Stop();
            return;
        }

        var counter = ++_resumeCounter;
        path.Preamble = ResumeRequest.Create(_resumeKey, ClientGuid, ServerGuid, Token, counter, (ulong)_receive.ReceivedValue, standby: true).ToArray();
        path.AwaitingResumeAck = counter;
        AddStandby(path);
        StandbyLog.Joining(_logger, Token, path.Flow.LocalEndPoint, path.Flow.RemoteEndPoint, counter);
        StartReceiving(path);
    }

    /// <summary>Client, on the loop: the answer to a Join (checked by the path's receive loop).</summary>
    private void OnJoinAnswered(ResumeAnswered answer)
    {
        var path = answer.Path;
        if (answer.Reject is { } reason)
        {
            StandbyLog.JoinRefused(_logger, Token, path.Flow.RemoteEndPoint, reason.ToString());
            path.ResumeResult.TrySetResult(reason);
            return;
        }

        if (!_paths.IsStandby(path))
        {
            return;
        }

        path.Established = true;
        path.LastReceived = _time.GetTimestamp();
        path.ResumeResult.TrySetResult(null);
        StandbyLog.Joined(_logger, Token, path.Id, path.Flow.LocalEndPoint, path.Flow.RemoteEndPoint);
    }

    /// <summary>Server, on the loop: a Join passed the checks (MAC, counter, receive position); the flow becomes a standby path.</summary>
    private void AcceptJoin(ResumeOffered offer)
    {
        if (_options.MaxStandbyPaths == 0)
        {
            offer.Answer.TrySetResult(RejectReason.ResumeRefused);
            return;
        }

        var ack = _responder.AcceptJoin(offer.Request, _receive);
        var path = new ConnectionPath(offer.Flow, offer.Reader, ack, established: true);
        AddStandby(path);
        StartReceiving(path);
        offer.Answer.TrySetResult(null);
        StandbyLog.Joined(_logger, Token, path.Id, offer.Flow.LocalEndPoint, offer.Flow.RemoteEndPoint);
    }

    private void AddStandby(ConnectionPath path)
    {
        if (_paths.AddStandby(path, _options.MaxStandbyPaths) is { } dropped)
        {
            StandbyLog.Lost(_logger, Token, dropped.Id, "replaced by a newer standby path");
        }

        // Its clocks start now and a PING goes out behind the handshake: the path's RTT is known at once.
        _keepAlive.OnPathActivated(path, _time.GetTimestamp());
        path.Outbox.QueuePing();
    }

    /// <summary>A standby path failed or was dropped; the client may join another.</summary>
    private void OnStandbyLost(ConnectionPath path, string reason)
    {
        StandbyLog.Lost(_logger, Token, path.Id, reason);
        _supervisor?.OnStandbyLost();
    }

    /// <summary>
    /// Client, on the loop: the active path <paramref name="dead"/> was dropped; when a standby is up,
    /// it becomes the active path at once (no connect, no Resume) and true is returned.
    /// </summary>
    /// <param name="onWire">Where the dead path's bytes stopped leaving this host, when its own address went (else null).</param>
    private bool TrySwitchToStandby(ConnectionPath dead, string reason, long? onWire)
    {
        if (!_isClient || _paths.BestStandby() is not { } standby)
        {
            return false;
        }

        _paths.Promote(standby);
        _timeline.Record(MoveEventKind.PathDead, reason);
        Raise(MobileConnectionEventKind.PathLost, dead.Flow.LocalEndPoint, dead.Flow.RemoteEndPoint, reason, TimeSpan.Zero);
        OnPromoted(standby, $"{dead} dropped ({reason})", onWire);
        return true;
    }

    /// <summary>
    /// The frames of one read on the standby <paramref name="path"/>: PING and PONG (checked against
    /// the path's own counter) are answered and taken from <paramref name="next"/> on. On the server,
    /// the first other frame means the client switched to this path: it is promoted and true is
    /// returned (the caller applies the rest as the active path's). A client never gets other frames
    /// on a standby path: they fail it.
    /// </summary>
    private bool TakeStandbyFrames(ConnectionPath path, List<ReceivedFrame> frames, ref int next)
    {
        var now = _time.GetTimestamp();
        path.LastReceived = now;
        for (; next < frames.Count; next++)
        {
            var frame = frames[next];
            if (frame.Type is FrameType.Ping or FrameType.Pong)
            {
                if (frame.Counter <= path.StandbyCounter)
                {
                    throw new MalformedMessageException($"Frame counter {frame.Counter} not above {path.StandbyCounter} on a standby path (replayed frame).");
                }

                path.StandbyCounter = frame.Counter;
                if (frame.Type == FrameType.Ping)
                {
                    path.Outbox.QueuePong(frame.Value1);
                }
                else
                {
                    path.OnPong(frame.Value1, now, _time);
                }

                continue;
            }

            if (path.Demoted && (_isClient || frame.Counter <= _receive.Counter))
            {
                // Sent before the peer saw the switch to a direct path: resent on the active path.
                if (frame.Array is { } stale)
                {
                    ArrayPool<byte>.Shared.Return(stale);
                    frames[next] = frame with { Array = null };
                }

                continue;
            }

            if (_isClient || !path.Established)
            {
                throw new MalformedMessageException($"{frame.Type} on a standby path.");
            }

            path.Demoted = false;
            var old = KeepsRelayAsStandby(path) ? _paths.Swap(path) : _paths.Promote(path);
            _timeline.Record(MoveEventKind.PathDead, old is null ? "pathless" : $"{old} dropped: the client switched");
            // The client may resend from where its lost path's bytes stopped leaving its host (StandbyGapsFlag, which this
            // end sends): frames beyond what this end holds are dropped until one starts at or below it, and the ACK that
            // answers the switch names the position the client rewinds to.
            path.DropsDataGaps = true;
            OnPromoted(path, "the client switched to it");
            return true;
        }

        return false;
    }

    /// <summary>
    /// The standby <paramref name="path"/> is now the active one: it resends from what the peer acknowledged (or, on a client
    /// whose active path went with its own address, from <paramref name="onWire"/>: where that path's bytes stopped leaving
    /// the host), and an ACK leads its first batch.
    /// </summary>
    private void OnPromoted(ConnectionPath path, string why, long? onWire = null)
    {
        var now = _time.GetTimestamp();
        _keepAlive.OnPathPromoted(path, now);
        _send.RewindToPeerReceived();
        // What left this host on the lost path before its address went most likely arrived (as for a resume's first flight,
        // docs/transport.md): resending it from the last ACK filled the idle standby's first window with bytes the server
        // held, and the new bytes behind them waited for its ACK, a round trip.
        if (_isClient && onWire is { } skip && _peerDropsStandbyGaps && skip > _send.PeerReceived && skip <= _send.HighestSent)
        {
            _send.SkipTo(skip);
            path.SwitchSkippedTo = skip;
        }

        // The client's switch: the ACK that leads the batch promotes the path at the server, which answers with its own
        // ACK naming its offset. When more than a first window of what it resends may already be at the server, the
        // path carries one first window (the idle flow's initial window, sent at once: the oldest unacknowledged bytes)
        // and the rest follows from the offset the server's ACK names: resending it all through the idle flow's first
        // windows held the first new byte for rounds of slow start, and holding everything for the ACK cost a round
        // trip whenever the server's position was within that window. The receiver's ACKs stay fresh while a standby
        // is up (StandbyAckDelay), which keeps the doubt near a round trip's bytes; beyond the first window the new
        // bytes still wait a round trip (docs/evaluation.md, "Standby switch at the first window").
        path.HoldsForPeerAck = _isClient && _send.HighestSent - _send.Next > InitialWindowBytes;
        path.PeerAckBudget = InitialWindowBytes;
        if (_isClient)
        {
            path.SwitchResendFrom = _send.Next;
            StandbyLog.SwitchResend(_logger, Token, _send.HighestSent - _send.Next, _send.Next,
                (path.HoldsForPeerAck ? "a first window, the rest from the offset of the server's first ACK" : "all of it at once")
                + (path.SwitchSkippedTo is not null ? $" (from where the lost path's bytes stopped leaving this host, {_send.Next - _send.PeerReceived} bytes past the last ACK)" : ""));
        }
        _state = MobileConnectionState.Connected;
        var stall = _pathLostAt is { } lost ? _time.GetElapsedTime(lost, now) : TimeSpan.Zero;
        _pathLostAt = null;
        _stats.LastStall = stall;
        _stats.Moves++;
        _stats.StandbySwitches++;
        _awaitingFirstByte = true;
        _timeline.Record(MoveEventKind.ResumeAnswered, $"standby {path} promoted: {why}");
        Publish();
        StandbyLog.Promoted(_logger, Token, path.Id, path.Flow.LocalEndPoint, path.Flow.RemoteEndPoint, why);
        Raise(MobileConnectionEventKind.Resumed, path.Flow.LocalEndPoint, path.Flow.RemoteEndPoint, why, stall);
        TickSoon();
        _supervisor?.Kick();
    }

    /// <summary>A standby path's batch: its handshake answer or Join, then PONG and PING; nothing else.</summary>
    private void SendOnStandby(ConnectionPath path)
    {
        if (path.Preamble is null && !path.Outbox.HasProbe)
        {
            return;
        }

        var output = ArrayPool<byte>.Shared.Rent(SmallOutputSize);
        var length = PlaceProbes(path, output);
        SealAll(output);
        StartWrite(path, output, length, reset: false, close: false);
    }

    /// <summary>The standby paths' keepalive ticks (see <see cref="KeepAlivePolicy.OnStandbyTick"/>); returns when the next tick is due.</summary>
    private TimeSpan TickStandbys(TimeSpan next)
    {
        var now = _time.GetTimestamp();
        foreach (var path in _paths.StandbySnapshot)
        {
            var (ping, dead, due) = _keepAlive.OnStandbyTick(path, now);
            if (dead)
            {
                FlowFailed(path, "standby path silent");
                continue;
            }

            if (ping)
            {
                path.Outbox.QueuePing();
            }

            next = due < next ? due : next;
        }

        return next;
    }

    /// <summary>Client, on the server's first ACK on a standby it switched to: how far past the resend's start the server was (for the log).</summary>
    private static void LogSwitchAck(ILogger logger, UInt128 token, ConnectionPath path, long peerReceived)
    {
        if (path.SwitchResendFrom is { } from)
        {
            path.SwitchResendFrom = null;
            StandbyLog.SwitchAcked(logger, token, peerReceived - from);
        }
    }

    private static partial class StandbyLog
    {
        [LoggerMessage(9360, LogLevel.Debug, "Connection {Token:x32}: standby switch, {Doubt} bytes in doubt from offset {From}: resending {How}")]
        public static partial void SwitchResend(ILogger logger, UInt128 token, long doubt, long from, string how);

        [LoggerMessage(9362, LogLevel.Debug, "Connection {Token:x32}: the resend on the standby started at {From}, beyond the server's {Holds}: resent from there")]
        public static partial void SwitchRewound(ILogger logger, UInt128 token, long from, long holds);

        [LoggerMessage(9361, LogLevel.Debug, "Connection {Token:x32}: the server's first ACK after the standby switch names {Ahead} bytes past the resend's start")]
        public static partial void SwitchAcked(ILogger logger, UInt128 token, long ahead);

        [LoggerMessage(9500, LogLevel.Debug, "Connection {Token:x32}: joining a standby path {Local} -> {Remote} (counter {Counter})")]
        public static partial void Joining(ILogger logger, UInt128 token, IPEndPoint? local, IPEndPoint? remote, ulong counter);

        [LoggerMessage(9501, LogLevel.Debug, "Connection {Token:x32}: standby path {Id} up, {Local} -> {Remote}")]
        public static partial void Joined(ILogger logger, UInt128 token, int id, IPEndPoint? local, IPEndPoint? remote);

        [LoggerMessage(9502, LogLevel.Debug, "Connection {Token:x32}: join via {Remote} refused: {Reason}")]
        public static partial void JoinRefused(ILogger logger, UInt128 token, IPEndPoint? remote, string reason);

        [LoggerMessage(9503, LogLevel.Debug, "Connection {Token:x32}: standby path {Id} dropped: {Reason}")]
        public static partial void Lost(ILogger logger, UInt128 token, int id, string reason);

        [LoggerMessage(9504, LogLevel.Debug, "Connection {Token:x32}: standby path {Id} {Local} -> {Remote} is now active: {Reason}")]
        public static partial void Promoted(ILogger logger, UInt128 token, int id, IPEndPoint? local, IPEndPoint? remote, string reason);
    }
}

/// <summary>The host's usable local addresses changed (<see cref="MobileConnection.NotifyLocalAddresses"/>).</summary>
internal sealed class LocalAddressesChanged(IPAddress[] addresses) : ConnectionEvent
{
    public IPAddress[] Addresses { get; } = addresses;
}
