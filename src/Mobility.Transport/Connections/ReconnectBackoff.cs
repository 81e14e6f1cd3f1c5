namespace Mobility.Transport.Connections;

/// <summary>
/// The client's pause between failed resume attempts: capped exponential from
/// <see cref="MobileConnectionOptions.ReconnectBackoffMin"/> to <see cref="MobileConnectionOptions.ReconnectBackoffMax"/>,
/// × U(0.5, 1.5) jitter, clamped to [min / 2, max] (as NATS.Net's reconnect wait).
/// </summary>
internal static class ReconnectBackoff
{
    /// <param name="attempt">Failed attempts so far (1 after the first failure).</param>
    /// <param name="random">Uniform in [0, 1).</param>
    public static TimeSpan Delay(int attempt, TimeSpan min, TimeSpan max, double random)
    {
        var lo = min.TotalMilliseconds;
        var hi = max.TotalMilliseconds;
        var exp = Math.Min(hi, lo * Math.Pow(2, Math.Clamp(attempt - 1, 0, 20)));
        var jitter = 0.5 + random;
        return TimeSpan.FromMilliseconds(Math.Clamp(exp * jitter, lo / 2, hi));
    }
}
