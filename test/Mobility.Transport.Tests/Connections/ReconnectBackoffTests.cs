namespace Mobility.Transport.Tests.Connections;

public sealed class ReconnectBackoffTests
{
    private static readonly TimeSpan Min = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan Max = TimeSpan.FromSeconds(1);

    [Theory]
    [InlineData(1, 50)]
    [InlineData(2, 100)]
    [InlineData(3, 200)]
    [InlineData(5, 800)]
    [InlineData(6, 1000)]
    [InlineData(1000, 1000)]
    public void Without_jitter_the_pause_doubles_from_the_minimum_up_to_the_cap(int attempt, double milliseconds)
        => Assert.Equal(milliseconds, ReconnectBackoff.Delay(attempt, Min, Max, random: 0.5).TotalMilliseconds, precision: 6);

    [Fact]
    public void Jitter_spreads_the_pause_by_half_either_way_within_half_the_minimum_and_the_cap()
    {
        Assert.Equal(50, ReconnectBackoff.Delay(2, Min, Max, random: 0.0).TotalMilliseconds, precision: 6);
        Assert.Equal(149.9, ReconnectBackoff.Delay(2, Min, Max, random: 0.999).TotalMilliseconds, precision: 6);
        Assert.Equal(25, ReconnectBackoff.Delay(1, Min, Max, random: 0.0).TotalMilliseconds, precision: 6);
        Assert.Equal(1000, ReconnectBackoff.Delay(10, Min, Max, random: 0.999).TotalMilliseconds, precision: 6);
        Assert.Equal(500, ReconnectBackoff.Delay(10, Min, Max, random: 0.0).TotalMilliseconds, precision: 6);
    }

    [Fact]
    public void A_first_attempt_number_of_zero_or_less_counts_as_the_first()
        => Assert.Equal(ReconnectBackoff.Delay(1, Min, Max, 0.5), ReconnectBackoff.Delay(0, Min, Max, 0.5));
}
