using System.Collections.Immutable;

namespace Mobility.Gns.Watch;

/// <summary>An in-process <see cref="IRecordChangeFeed"/>: publishing calls every subscriber synchronously.</summary>
public sealed class LocalRecordChangeFeed : IRecordChangeFeed
{
    private ImmutableArray<Action<RecordChange>> _handlers = [];

    public ValueTask PublishAsync(RecordChange change, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        // An ImmutableArray is one reference: reading it is atomic, and a publish sees a complete list.
        foreach (var handler in _handlers)
        {
            handler(change);
        }

        return ValueTask.CompletedTask;
    }

    public IDisposable Subscribe(Action<RecordChange> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ImmutableInterlocked.Update(ref _handlers, static (list, h) => list.Add(h), handler);
        return new Subscription(this, handler);
    }

    private sealed class Subscription(LocalRecordChangeFeed feed, Action<RecordChange> handler) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                ImmutableInterlocked.Update(ref feed._handlers, static (list, h) => list.Remove(h), handler);
            }
        }
    }
}
