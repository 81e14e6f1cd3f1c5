using Microsoft.Extensions.Time.Testing;
using Mobility.Net.RateLimiting;
using Mobility.Protocol.Identity;

namespace Mobility.Net.Tests;

/// <summary>The token buckets keyed by something other than an address: the relay's per-GUID limits.</summary>
public sealed class KeyedRateLimiterTests
{
    private readonly FakeTimeProvider _time = new();

    private static HostGuid Guid(byte first, byte last)
    {
        var bytes = new byte[HostGuid.Size];
        bytes[0] = first;
        bytes[^1] = last;
        return HostGuid.FromBytes(bytes);
    }

    [Fact]
    public void Guids_that_agree_in_all_but_their_last_byte_have_buckets_of_their_own()
    {
        var limiter = new SourceRateLimiter<HostGuid>(new SourceRateLimits(requestsPerSecond: 1, burst: 1, maxSources: 10, replyInterval: null), _time);

        Assert.True(limiter.TryAcquire(Guid(0x20, 1)));
        Assert.Equal(RateLimitDecision.Drop, limiter.Check(Guid(0x20, 1)));
        Assert.True(limiter.TryAcquire(Guid(0x20, 2)));
        Assert.Equal(2, limiter.TrackedSources);

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(limiter.TryAcquire(Guid(0x20, 1)));
    }

    [Fact]
    public void A_flood_of_new_guids_shares_the_overflow_bucket_once_the_table_is_full()
    {
        var limiter = new SourceRateLimiter<HostGuid>(new SourceRateLimits(requestsPerSecond: 1, burst: 1, maxSources: 3, replyInterval: TimeSpan.FromSeconds(1)), _time);

        var allowed = Enumerable.Range(0, 50).Count(i => limiter.TryAcquire(Guid(0x30, (byte)i)));

        // Three keys of their own and one token of the shared overflow bucket.
        Assert.Equal(4, allowed);
        Assert.Equal(3, limiter.TrackedSources);
        Assert.Equal(RateLimitDecision.Drop, limiter.Check(Guid(0x30, 200)));
    }
}
