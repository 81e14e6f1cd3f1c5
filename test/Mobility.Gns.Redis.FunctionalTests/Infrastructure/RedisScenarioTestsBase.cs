namespace Mobility.Gns.Redis.FunctionalTests.Infrastructure;

/// <summary>
/// A test that plays several GNS processes on one Redis: what it opens (connections, feeds) and the
/// keys it makes are disposed after the test, newest first.
/// </summary>
public abstract class RedisScenarioTestsBase(string configuration) : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _disposables = [];
    private readonly TestKeys _keys = new();

    protected string Configuration => configuration;

    public Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        foreach (var disposable in Enumerable.Reverse(_disposables))
        {
            await disposable.DisposeAsync().AsTask().WithTimeout();
        }

        _keys.Dispose();
    }

    /// <summary>Disposes <paramref name="disposable"/> after the test.</summary>
    protected T Owned<T>(T disposable)
        where T : IAsyncDisposable
    {
        _disposables.Add(disposable);
        return disposable;
    }

    protected HostKey NewKey() => _keys.New();

    /// <summary>A connection of its own, as a separate GNS process would have.</summary>
    protected async Task<ConnectionMultiplexer> ConnectAsync() => Owned(await Redis.ConnectAsync(configuration));
}
