using System.Runtime.CompilerServices;
using Mobility.Net.Threading;
using Mobility.Protocol.Identity;

namespace Mobility.Gns.Watch;

/// <summary>
/// One watcher's view of a set of GUIDs. Changes wait in a buffer that holds at most one state per
/// GUID (a newer state replaces an older one that was not read yet), so a slow reader costs at most
/// one entry per watched GUID and always ends with the latest state of each. States older than one
/// already delivered are never delivered.
/// </summary>
public sealed class WatchSubscription : IDisposable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<HostGuid, RecordChange> _pending = [];
    private readonly Queue<HostGuid> _order = new();
    private readonly Dictionary<HostGuid, ulong> _delivered = [];
    private readonly AsyncAutoResetSignal _signal = new();

    private readonly Action<WatchSubscription>? _onDispose;
    private int _disposed;

    internal WatchSubscription(IReadOnlyCollection<HostGuid> guids, Action<WatchSubscription>? onDispose)
    {
        Guids = guids;
        _onDispose = onDispose;
    }

    public IReadOnlyCollection<HostGuid> Guids { get; }

    /// <summary>States waiting to be read; never more than the number of watched GUIDs.</summary>
    public int PendingCount
    {
        get
        {
            lock (_gate)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Buffers <paramref name="change"/> unless a state at least as new was delivered or is waiting.</summary>
    internal void Offer(RecordChange change)
    {
        lock (_gate)
        {
            if (_delivered.TryGetValue(change.Guid, out var delivered) && change.Version <= delivered)
            {
                return;
            }

            if (_pending.TryGetValue(change.Guid, out var waiting))
            {
                if (change.Version < waiting.Version)
                {
                    return;
                }

                _pending[change.Guid] = change;
            }
            else
            {
                _pending.Add(change.Guid, change);
                _order.Enqueue(change.Guid);
            }
        }

        _signal.Set();
    }

    /// <summary>The buffered states in arrival order of their GUIDs, then each later change, until cancelled or disposed.</summary>
    public async IAsyncEnumerable<RecordChange> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (true)
        {
            while (TryTake(out var next))
            {
                yield return next;
            }

            if (!await _signal.WaitAsync(cancellationToken).ConfigureAwait(false))
            {
                yield break;
            }
        }
    }

    /// <summary>Takes the oldest buffered state, if any.</summary>
    public bool TryTake(out RecordChange change)
    {
        lock (_gate)
        {
            if (_order.TryDequeue(out var guid))
            {
                change = _pending[guid];
                _pending.Remove(guid);
                _delivered[guid] = change.Version;
                return true;
            }
        }

        change = null!;
        return false;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _signal.Complete();
            _onDispose?.Invoke(this);
        }
    }
}
