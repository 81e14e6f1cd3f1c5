using Microsoft.Extensions.Time.Testing;
using Mobility.Net.Threading;

namespace Mobility.Net.Tests;

public sealed class AsyncAutoResetSignalTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Sets_before_a_wait_count_once()
    {
        var signal = new AsyncAutoResetSignal();
        signal.Set();
        signal.Set();
        Assert.True(await signal.WaitAsync(CancellationToken.None).AsTask().WaitAsync(Limit));
        Assert.False(signal.TryReset());
        var second = signal.WaitAsync(CancellationToken.None).AsTask();
        Assert.False(second.IsCompleted);
        signal.Set();
        Assert.True(await second.WaitAsync(Limit));
    }

    [Fact]
    public void TryReset_clears_a_set_flag()
    {
        var signal = new AsyncAutoResetSignal();
        Assert.False(signal.TryReset());
        signal.Set();
        Assert.True(signal.TryReset());
        Assert.False(signal.TryReset());
    }

    [Fact]
    public async Task A_timed_wait_ends_false_when_the_time_passes_on_the_time_provider()
    {
        var time = new FakeTimeProvider();
        var signal = new AsyncAutoResetSignal();
        var wait = signal.WaitAsync(TimeSpan.FromSeconds(30), time, CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(29));
        Assert.False(wait.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(await wait.WaitAsync(Limit));
    }

    [Fact]
    public async Task A_timed_wait_ends_true_when_set()
    {
        var time = new FakeTimeProvider();
        var signal = new AsyncAutoResetSignal();
        var wait = signal.WaitAsync(TimeSpan.FromSeconds(30), time, CancellationToken.None);
        signal.Set();
        Assert.True(await wait.WaitAsync(Limit));
        Assert.False(signal.TryReset());
    }

    [Fact]
    public async Task Complete_ends_every_later_wait_after_the_last_set_is_taken()
    {
        var signal = new AsyncAutoResetSignal();
        signal.Set();
        signal.Complete();
        signal.Set();
        Assert.True(await signal.WaitAsync(CancellationToken.None).AsTask().WaitAsync(Limit));
        Assert.False(await signal.WaitAsync(CancellationToken.None).AsTask().WaitAsync(Limit));
        Assert.False(await signal.WaitAsync(Timeout.InfiniteTimeSpan, TimeProvider.System, CancellationToken.None).WaitAsync(Limit));
    }

    [Fact]
    public async Task Cancelling_the_caller_throws_instead_of_answering_false()
    {
        var time = new FakeTimeProvider();
        var signal = new AsyncAutoResetSignal();
        using var cts = new CancellationTokenSource();
        var wait = signal.WaitAsync(TimeSpan.FromSeconds(30), time, cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Limit));
    }
}
