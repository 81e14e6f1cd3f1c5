namespace Mobility.Daemon.Tests.Infrastructure;

/// <summary>Every await in these tests has a timeout, so a hang fails fast instead of stalling the run.</summary>
public static class TaskTimeouts
{
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(15);

    public static Task<T> Timed<T>(this Task<T> task, TimeSpan? timeout = null) => task.WaitAsync(timeout ?? Default);

    public static Task Timed(this Task task, TimeSpan? timeout = null) => task.WaitAsync(timeout ?? Default);

    public static Task<T> Timed<T>(this ValueTask<T> task, TimeSpan? timeout = null) => task.AsTask().WaitAsync(timeout ?? Default);

    /// <summary>Polls <paramref name="condition"/> until true or the timeout passes (then fails with <paramref name="what"/>).</summary>
    public static async Task Eventually(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? Default);
        while (true)
        {
            if (await condition().WaitAsync(timeout ?? Default))
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out waiting until {what}.");
            }

            await Task.Delay(10);
        }
    }

    public static Task Eventually(Func<bool> condition, string what, TimeSpan? timeout = null)
        => Eventually(() => Task.FromResult(condition()), what, timeout);
}
