using Mobility.Gns.Client;

namespace Mobility.Gns.Client.Tests;

/// <summary>When the GNS's names are resolved again (<see cref="GnsClientOptions.Resolve"/>): the answer's TTL, within bounds.</summary>
public sealed class ResolveIntervalTests
{
    private static readonly GnsClientOptions Options = new()
    {
        ResolveMinInterval = TimeSpan.FromSeconds(10),
        ResolveMaxInterval = TimeSpan.FromMinutes(30),
        ResolveInterval = TimeSpan.FromMinutes(5),
    };

    [Theory]
    [InlineData(0, 10)]
    [InlineData(3, 10)]
    [InlineData(60, 60)]
    [InlineData(3600, 1800)]
    public void The_TTL_sets_the_next_resolution_within_its_bounds(int ttlSeconds, int expectedSeconds)
        => Assert.Equal(TimeSpan.FromSeconds(expectedSeconds), Options.ResolveIntervalFor(TimeSpan.FromSeconds(ttlSeconds)));

    [Fact]
    public void An_unknown_TTL_uses_the_default_interval_and_failures_retry_sooner_up_to_the_minimum()
    {
        Assert.Equal(TimeSpan.FromMinutes(5), Options.ResolveIntervalFor(null));
        Assert.Equal(new double[] { 1, 2, 4, 8, 10, 10 }, Enumerable.Range(1, 6).Select(f => Options.ResolveRetryDelay(f).TotalSeconds));
    }

    [Fact]
    public void A_maximum_below_the_minimum_is_refused()
        => Assert.Throws<ArgumentException>(() => new GnsClientOptions { ResolveMinInterval = TimeSpan.FromMinutes(1), ResolveMaxInterval = TimeSpan.FromSeconds(1) }.Validate());
}
