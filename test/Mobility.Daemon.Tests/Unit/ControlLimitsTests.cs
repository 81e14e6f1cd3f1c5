using Microsoft.Extensions.Time.Testing;
using Mobility.Net.RateLimiting;

namespace Mobility.Daemon.Tests.Unit;

/// <summary>The control endpoint uses the GNS's per-source limiter (its own tests are in Mobility.Gns.Tests/Udp).</summary>
public sealed class ControlLimitsTests
{
    [Fact]
    public void Control_limits_map_onto_the_shared_limiter_without_rate_limited_answers()
    {
        var limits = new ControlLimits { RequestsPerSecond = 2, Burst = 3, MaxTrackedSources = 7 }.ToRateLimits();
        Assert.Equal(new SourceRateLimits { RequestsPerSecond = 2, Burst = 3, MaxSources = 7, ReplyInterval = null }, limits);

        var limiter = new SourceRateLimiter(limits, new FakeTimeProvider());
        var source = IPAddress.Parse("2001:db8:5::1");
        var decisions = Enumerable.Range(0, 10).Select(_ => limiter.Check(source)).ToArray();
        Assert.Equal(3, decisions.Count(d => d == RateLimitDecision.Allow));
        Assert.DoesNotContain(RateLimitDecision.ReplyRateLimited, decisions);
        Assert.False(limiter.TryAcquire(IPAddress.Parse("2001:db8:5::2")), "an IPv6 /64 is one source");
    }
}
