namespace Mobility.Transport.Connections;

/// <summary>
/// The paths of one connection: at most one active (the one that carries frames), the standby
/// paths (joined, authenticated, carrying only PING and PONG until one is promoted: bounded by the
/// caller's maximum, the oldest dropped first), and the retired ones whose loops are still winding
/// down (awaited by <see cref="MobileConnection.DisposeAsync"/>). A path that is none of these is
/// unknown to the connection, so a frame arriving late on it is dropped. Not thread-safe: owned by
/// the connection's loop (<see cref="StandbySnapshot"/> may be read from any thread).
/// </summary>
internal sealed class PathSet
{
    private readonly List<Task> _retired = [];
    private readonly List<ConnectionPath> _standby = [];
    private volatile ConnectionPath[] _standbySnapshot = [];
    private int _ids;

    /// <summary>The standby paths (joining or joined), oldest first; a copy replaced whole on every change, readable from any thread.</summary>
    public ConnectionPath[] StandbySnapshot => _standbySnapshot;

    /// <summary>Whether <paramref name="path"/> is one of the standby paths.</summary>
    public bool IsStandby(ConnectionPath path) => path.IsStandby && _standby.Contains(path);

    /// <summary>
    /// Adds <paramref name="path"/> as a standby path; when that makes more than
    /// <paramref name="max"/>, the oldest standby is retired and returned.
    /// </summary>
    public ConnectionPath? AddStandby(ConnectionPath path, int max)
    {
        path.Id = ++_ids;
        path.IsStandby = true;
        path.WasStandby = true;
        _standby.Add(path);
        ConnectionPath? dropped = null;
        if (_standby.Count > max)
        {
            dropped = _standby[0];
            _standby.RemoveAt(0);
            Retire(dropped);
        }

        _standbySnapshot = [.. _standby];
        return dropped;
    }

    /// <summary>The standby to switch to: an established one, the one heard from last; null when none is up.</summary>
    public ConnectionPath? BestStandby()
    {
        ConnectionPath? best = null;
        foreach (var path in _standby)
        {
            if (path.Established && !path.IsStopped && (best is null || path.LastReceived > best.LastReceived))
            {
                best = path;
            }
        }

        return best;
    }

    /// <summary>
    /// Makes the standby <paramref name="path"/> the active path (make-before-break); the previous
    /// active path, if any, is retired and returned.
    /// </summary>
    public ConnectionPath? Promote(ConnectionPath path)
    {
        _standby.Remove(path);
        _standbySnapshot = [.. _standby];
        path.IsStandby = false;
        path.Demoted = false;
        var old = Active;
        Active = path;
        if (old is not null && old != path)
        {
            Retire(old);
        }

        return old;
    }

    /// <summary>
    /// Makes the standby <paramref name="path"/> the active path and keeps the previous active path as
    /// a standby, marked <see cref="ConnectionPath.Demoted"/> (a direct path took over from a relayed
    /// one, which stays as the fallback); returns the previous active path.
    /// </summary>
    public ConnectionPath? Swap(ConnectionPath path)
    {
        _standby.Remove(path);
        path.IsStandby = false;
        var old = Active;
        Active = path;
        if (old is not null && old != path)
        {
            old.IsStandby = true;
            old.WasStandby = true;
            old.Demoted = true;
            _standby.Add(old);
        }

        _standbySnapshot = [.. _standby];
        return old;
    }

    /// <summary>Retires every standby path (the connection failed or completed).</summary>
    public void DropStandbys()
    {
        foreach (var path in _standby)
        {
            Retire(path);
        }

        _standby.Clear();
        _standbySnapshot = [];
    }

    /// <summary>The path frames are sent on and accepted from (null: pathless).</summary>
    public ConnectionPath? Active { get; private set; }

    /// <summary>Paths made active or joined as standby so far (the next path's <see cref="ConnectionPath.Id"/> is one more).</summary>
    public int Count => _ids;

    /// <summary>Makes <paramref name="path"/> the active path; the previous one is retired (its loops stop, its flow closes).</summary>
    public void Activate(ConnectionPath path)
    {
        path.Id = ++_ids;
        var old = Active;
        Active = path;
        if (old is not null && old != path)
        {
            Retire(old);
        }
    }

    /// <summary>Retires <paramref name="path"/> (active or standby); true when it was the active one (the connection is now pathless).</summary>
    public bool Deactivate(ConnectionPath path)
    {
        var wasActive = Active == path;
        if (wasActive)
        {
            Active = null;
        }
        else if (_standby.Remove(path))
        {
            _standbySnapshot = [.. _standby];
        }

        Retire(path);
        return wasActive;
    }

    /// <summary>
    /// Detaches the active path with a RESET queued in its outbox; it is retired once the caller
    /// (the connection's loop) has written the RESET, or after <paramref name="bound"/> on
    /// <paramref name="time"/> if it cannot be (a full socket buffer, a dead peer). Returns the path
    /// that should carry the RESET, or null (none active, or not established: retired at once).
    /// </summary>
    public ConnectionPath? DeactivateWithReset(uint code, TimeSpan bound, TimeProvider time)
    {
        if (Active is not { } path)
        {
            return null;
        }

        Active = null;
        if (!path.Established || path.IsStopped)
        {
            Retire(path);
            return null;
        }

        path.Outbox.QueueReset(code);
        Track(FlushThenStopAsync(path, bound, time));
        return path;
    }

    /// <summary>Tasks of retired paths still winding down (each ends when its flow is closed).</summary>
    public Task[] Retiring()
    {
        _retired.RemoveAll(static t => t.IsCompleted);
        return [.. _retired];
    }

    private void Retire(ConnectionPath path) => Track(path.Stop());

    private void Track(Task task)
    {
        _retired.RemoveAll(static t => t.IsCompleted);
        if (!task.IsCompleted)
        {
            _retired.Add(task);
        }
    }

    private static async Task FlushThenStopAsync(ConnectionPath path, TimeSpan bound, TimeProvider time)
    {
        try
        {
            await path.ResetFlushed.Task.WaitAsync(bound, time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The RESET could not be written in time; close the flow anyway.
        }

        await path.Stop().ConfigureAwait(false);
    }
}
