namespace Mobility.Testing;

/// <summary>
/// The one timeout of the test suites. Every await in a test is bounded by it (through
/// <see cref="TaskTimeoutExtensions"/>), so a hang fails the test instead of stalling the run. It is a
/// limit on hangs, never a performance bound: speed is measured in bench/, not asserted here.
/// </summary>
public static class TestTimeout
{
    /// <summary>30 s: long enough for a child process to start on a loaded two-core CI machine.</summary>
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(30);

    /// <summary>Polls <paramref name="condition"/> until it holds; fails with <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task Eventually(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        using var deadline = new CancellationTokenSource(timeout ?? Default);
        while (true)
        {
            if (await condition().WaitAsync(timeout ?? Default).ConfigureAwait(false))
            {
                return;
            }

            try
            {
                await Task.Delay(10, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // One last look: a poller held up (a starved thread pool on a loaded machine) may have last looked long
                // before the deadline, at a condition that has held since.
                if (await condition().WaitAsync(timeout ?? Default).ConfigureAwait(false))
                {
                    return;
                }

                throw new TimeoutException($"Timed out waiting until {what}.");
            }
        }
    }

    /// <inheritdoc cref="Eventually(Func{Task{bool}}, string, TimeSpan?)"/>
    public static Task Eventually(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return Eventually(() => Task.FromResult(condition()), what, timeout);
    }
}

/// <summary><c>await task.WithTimeout()</c>: the task's result, or a <see cref="TimeoutException"/> after <see cref="TestTimeout.Default"/>.</summary>
public static class TaskTimeoutExtensions
{
    public static Task WithTimeout(this Task task, TimeSpan? timeout = null) => task.WaitAsync(timeout ?? TestTimeout.Default);

    public static Task<T> WithTimeout<T>(this Task<T> task, TimeSpan? timeout = null) => task.WaitAsync(timeout ?? TestTimeout.Default);

    public static Task WithTimeout(this ValueTask task, TimeSpan? timeout = null) => task.AsTask().WaitAsync(timeout ?? TestTimeout.Default);

    public static Task<T> WithTimeout<T>(this ValueTask<T> task, TimeSpan? timeout = null) => task.AsTask().WaitAsync(timeout ?? TestTimeout.Default);
}
