using System.Net;
using Microsoft.Extensions.Time.Testing;
using Mobility.Daemon.Control;

namespace Mobility.Daemon.Tests.Unit;

public sealed class SourceRateLimiterTests
{
    private static readonly IPAddress A = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress B = IPAddress.Parse("192.0.2.2");

    [Fact]
    public void A_source_gets_its_burst_then_the_rate()
    {
        var time = new FakeTimeProvider();
        var limiter = new SourceRateLimiter(new ControlLimits { RequestsPerSecond = 2, Burst = 3 }, time);

        Assert.Equal(3, Enumerable.Range(0, 10).Count(_ => limiter.TryAcquire(A)));
        Assert.True(limiter.TryAcquire(B), "another source has its own bucket");

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(2, Enumerable.Range(0, 10).Count(_ => limiter.TryAcquire(A)));
    }

    [Fact]
    public void Memory_is_bounded_and_a_spoofed_flood_shares_one_overflow_bucket()
    {
        var time = new FakeTimeProvider();
        var limiter = new SourceRateLimiter(new ControlLimits { RequestsPerSecond = 1, Burst = 2, MaxTrackedSources = 4 }, time);
        var allowed = 0;
        for (var i = 0; i < 1000; i++)
        {
            // Each source spends a token, so no bucket is idle and none can be evicted.
            allowed += limiter.TryAcquire(new IPAddress([10, 0, (byte)(i / 256), (byte)i])) ? 1 : 0;
        }

        Assert.Equal(4, limiter.TrackedSources);
        Assert.Equal((4 * 1) + 2, allowed);
    }

    [Fact]
    public void Idle_sources_are_evicted_to_make_room()
    {
        var time = new FakeTimeProvider();
        var limiter = new SourceRateLimiter(new ControlLimits { RequestsPerSecond = 10, Burst = 1, MaxTrackedSources = 1 }, time);
        Assert.True(limiter.TryAcquire(A));
        time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(limiter.TryAcquire(B));
        Assert.Equal(1, limiter.TrackedSources);
    }
}
