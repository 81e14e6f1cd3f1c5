namespace Mobility.Gns.Tests.Storage;

/// <summary>
/// The frame of a store contract (<see cref="GnsStoreContractTests"/>, <see cref="AddressClaimContractTests"/>):
/// a store made by <see cref="CreateStore"/> before each test and disposed after it, with the keys the test made.
/// </summary>
public abstract class StoreContractTestsBase : IAsyncLifetime
{
    private readonly TestKeys _keys = new();
    private IGnsStore? _store;

    protected IGnsStore Store => _store ?? throw new InvalidOperationException("Not initialized.");

    /// <summary>The store under test, opened afresh for each test.</summary>
    protected abstract IGnsStore CreateStore();

    public Task InitializeAsync()
    {
        _store = CreateStore();
        return Task.CompletedTask;
    }

    public virtual async Task DisposeAsync()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync().WithTimeout();
        }

        _keys.Dispose();
    }

    /// <summary>Closes the store and opens it again on the same data (what a restarted GNS sees).</summary>
    protected async Task ReopenAsync()
    {
        await Store.DisposeAsync().WithTimeout();
        _store = CreateStore();
    }

    protected HostKey NewKey() => _keys.New();

    /// <summary>Takes <paramref name="key"/> over: it is disposed after the test.</summary>
    protected HostKey Adopt(HostKey key) => _keys.Add(key);
}
