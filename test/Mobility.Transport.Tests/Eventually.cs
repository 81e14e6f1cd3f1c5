namespace Mobility.Transport.Tests;

/// <summary>Polls a condition with a deadline, so a test waits for an effect without a wall-clock assert and fails fast on a hang.</summary>
internal static class Eventually
{
    public static async Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TaskTimeoutExtensions.Default);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out waiting until {what}.");
            }

            await Task.Delay(10);
        }
    }
}
