namespace Mobility.Transport.Connections;

/// <summary>
/// The paths of one connection: at most one active (the one that carries frames), and the retired
/// ones whose loops are still winding down (awaited by <see cref="MobileConnection.DisposeAsync"/>).
/// A path that is neither is unknown to the connection, so a frame arriving late on it is dropped.
/// Not thread-safe: owned by the connection's loop.
/// </summary>
internal sealed class PathSet
{
    private readonly List<Task> _retired = [];
    private int _ids;

    /// <summary>The path frames are sent on and accepted from (null: pathless).</summary>
    public ConnectionPath? Active { get; private set; }

    /// <summary>Paths made active so far (the next path's <see cref="ConnectionPath.Id"/> is one more).</summary>
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

    /// <summary>Retires <paramref name="path"/>; true when it was the active one (the connection is now pathless).</summary>
    public bool Deactivate(ConnectionPath path)
    {
        var wasActive = Active == path;
        if (wasActive)
        {
            Active = null;
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
