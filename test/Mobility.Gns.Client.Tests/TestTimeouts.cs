namespace Mobility.Gns.Client.Tests;

/// <summary>Every await in a test goes through these, so a hang fails fast instead of stalling the run.</summary>
internal static class TestTimeouts
{
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(15);

    public static Task<T> WithTimeout<T>(this Task<T> task) => task.WaitAsync(Default);

    public static Task WithTimeout(this Task task) => task.WaitAsync(Default);

    public static Task WithTimeout(this ValueTask task) => task.AsTask().WaitAsync(Default);

    /// <summary>Polls <paramref name="condition"/> until it holds, or fails after <see cref="Default"/>.</summary>
    public static async Task Until(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Default;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out waiting for {what}.");
            }

            await Task.Delay(5);
        }
    }
}
