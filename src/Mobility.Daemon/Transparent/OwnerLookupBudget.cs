using System.Net;
using Mobility.Transport;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// An <see cref="IAddressOwnerResolver"/> that answers within a time budget (opportunistic mode, docs/transparent.md):
/// a cached answer at once; a lookup still running when <see cref="Budget"/> has passed is answered "no owner" (plain
/// TCP) and left to finish in the background, where the inner resolver caches its answer (positive or negative) for the
/// next connection to that address. So an unreachable GNS or an unanswered challenge delays a connection by at most the
/// budget.
/// </summary>
public sealed class OwnerLookupBudget(IAddressOwnerResolver inner, TimeSpan budget, TimeProvider time) : IAddressOwnerResolver
{
    private long _overBudget;

    public TimeSpan Budget => budget;

    /// <summary>Lookups answered "no owner" because the budget ran out.</summary>
    public long OverBudget => Interlocked.Read(ref _overBudget);

    public async ValueTask<AddressOwner?> ResolveAsync(IPAddress address, CancellationToken cancellationToken)
    {
        // Not the caller's token: the lookup outlives this connection and fills the cache.
        var lookup = inner.ResolveAsync(address, CancellationToken.None);
        if (lookup.IsCompleted)
        {
            return await lookup.ConfigureAwait(false);
        }

        try
        {
            return await lookup.AsTask().WaitAsync(budget, time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Interlocked.Increment(ref _overBudget);
            return null;
        }
    }

    public void Forget(IPAddress address) => inner.Forget(address);
}
