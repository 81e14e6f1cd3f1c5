using Mobility.Protocol.Transport;

namespace Mobility.Transport.Connections;

/// <summary>
/// The control frames a path owes the peer, queued by the connection's loop and taken by the same
/// loop when it lays out the path's next write. Repeated requests coalesce (one PING, the latest
/// PONG, one ACK), so the outbox stays a few bytes however long a write is stuck behind a full
/// socket buffer. Frames go out in a fixed order: RESET alone; otherwise PONG, PING, then the ACK
/// (whose values are read at layout time). Not thread-safe: owned by the connection's loop.
/// </summary>
internal sealed class ControlOutbox
{
    private ulong? _pong;
    private bool _ping;

    /// <summary>A new path starts with an ACK: Resume/ResumeAck carry the receive position but not the consumed one.</summary>
    public bool AckForced { get; private set; } = true;

    /// <summary>The keepalive policy asked for an ACK of whatever was received or consumed since the last one.</summary>
    public bool AckRequested { get; private set; }

    /// <summary>A RESET to write before anything else (abort, dispose); the path then carries nothing more.</summary>
    public uint? Reset { get; private set; }

    public bool HasFrames => _pong is not null || _ping || AckForced || AckRequested || Reset is not null;

    /// <summary>A PING or PONG is queued (all a standby path ever carries).</summary>
    public bool HasProbe => _pong is not null || _ping;

    /// <summary>Answers the peer's PING <paramref name="id"/> (a later PING replaces an unsent answer).</summary>
    public void QueuePong(ulong id) => _pong = id;

    public void QueuePing() => _ping = true;

    public void RequestAck() => AckRequested = true;

    public void QueueReset(uint code) => Reset ??= code;

    /// <summary>Takes the RESET (null if none is queued).</summary>
    public uint? TakeReset()
    {
        var code = Reset;
        Reset = null;
        return code;
    }

    public bool TryTakePong(out ulong id)
    {
        id = _pong ?? 0;
        var had = _pong is not null;
        _pong = null;
        return had;
    }

    public bool TakePing()
    {
        var had = _ping;
        _ping = false;
        return had;
    }

    /// <summary>Takes the ACK requests: (forced, requested).</summary>
    public (bool Forced, bool Requested) TakeAckRequests()
    {
        var taken = (AckForced, AckRequested);
        AckForced = false;
        AckRequested = false;
        return taken;
    }

    /// <summary>The frame types queued now, in the order they will be laid out (for tests and logs).</summary>
    public IReadOnlyList<FrameType> Pending()
    {
        if (Reset is not null)
        {
            return [FrameType.Reset];
        }

        var list = new List<FrameType>(3);
        if (_pong is not null)
        {
            list.Add(FrameType.Pong);
        }

        if (_ping)
        {
            list.Add(FrameType.Ping);
        }

        if (AckForced || AckRequested)
        {
            list.Add(FrameType.Ack);
        }

        return list;
    }
}
