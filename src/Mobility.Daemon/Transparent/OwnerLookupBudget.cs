using System.Collections.Concurrent;
using System.Net;
using Mobility.Transport;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// An <see cref="IAddressOwnerResolver"/> that answers within a time budget (opportunistic mode, docs/transparent.md):
/// a cached answer at once; a lookup still running when <see cref="Budget"/> has passed is answered "no owner" (plain
/// TCP) and left to finish in the background, where the inner resolver caches its answer (positive or negative) for the
/// next connection to that address; a connection to an address whose lookup already ran over the budget and still runs
/// goes plain at once. So an unreachable GNS or an unanswered challenge delays a connection by at most the budget, and
/// only the first connection to an address while its lookup runs.
/// </summary>
public sealed class OwnerLookupBudget(IAddressOwnerResolver inner, TimeSpan budget, TimeProvider time) : IAddressOwnerResolver
{
    private readonly ConcurrentDictionary<IPAddress, Task<AddressOwner?>> _late = new();
    private long _overBudget;

    public TimeSpan Budget => budget;

    /// <summary>Lookups answered "no owner" because the budget ran out.</summary>
    public long OverBudget => Interlocked.Read(ref _overBudget);

    public async ValueTask<AddressOwner?> ResolveAsync(IPAddress address, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(address);
        // Not the caller's token: the lookup outlives this connection and fills the cache.
        var lookup = inner.ResolveAsync(address, CancellationToken.None);
        if (lookup.IsCompleted)
        {
            return await lookup.ConfigureAwait(false);
        }

        // A lookup of this address already ran over the budget and is still running: plain at once, no second wait.
        var task = lookup.AsTask();
        if (_late.TryGetValue(address, out var late) && !late.IsCompleted)
        {
            Interlocked.Increment(ref _overBudget);
            return null;
        }

        try
        {
            return await task.WaitAsync(budget, time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Interlocked.Increment(ref _overBudget);
            if (_late.TryAdd(address, task))
            {
                // Held only while the lookup runs (the inner resolver bounds how long that is).
                _ = task.ContinueWith(t => _late.TryRemove(new KeyValuePair<IPAddress, Task<AddressOwner?>>(address, t)), CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }

            return null;
        }
    }

    public void Forget(IPAddress address) => inner.Forget(address);
}
