using Mobility.Net.RateLimiting;

namespace Mobility.Gns.Tests.Udp;

public sealed class SourceRateLimiterTests
{
    private readonly FakeTimeProvider _time = new();

    private SourceRateLimiter Create(double rate = 10, int burst = 5, int capacity = 1000)
        => new(new GnsServerOptions
        {
            RequestsPerSecond = rate,
            Burst = burst,
            MaxRateLimitedSources = capacity,
            RateLimitedReplyInterval = TimeSpan.FromSeconds(1),
        }.ToRateLimits(), _time);

    private SourceRateLimiter CreateSilent(double rate, int burst, int capacity = 1000)
        => new(new SourceRateLimits { RequestsPerSecond = rate, Burst = burst, MaxSources = capacity, ReplyInterval = null }, _time);

    private static IPAddress Ip(string text) => IPAddress.Parse(text);

    [Fact]
    public void Burst_is_allowed_then_one_rate_limited_reply_then_silence_until_the_interval_passes()
    {
        var limiter = Create();
        var source = Ip("198.51.100.1");
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(RateLimitDecision.Allow, limiter.Check(source));
        }

        Assert.Equal(RateLimitDecision.ReplyRateLimited, limiter.Check(source));
        Assert.Equal(RateLimitDecision.Drop, limiter.Check(source));
        Assert.Equal(RateLimitDecision.Drop, limiter.Check(source));

        _time.Advance(TimeSpan.FromMilliseconds(50));   // half a token
        Assert.Equal(RateLimitDecision.Drop, limiter.Check(source));
        _time.Advance(TimeSpan.FromSeconds(1));
        // Refilled (capped at the burst) and the reply interval has passed.
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(RateLimitDecision.Allow, limiter.Check(source));
        }

        Assert.Equal(RateLimitDecision.ReplyRateLimited, limiter.Check(source));
    }

    [Fact]
    public void Sustained_rate_is_allowed_indefinitely()
    {
        var limiter = Create(rate: 10, burst: 1);
        var source = Ip("198.51.100.2");
        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(RateLimitDecision.Allow, limiter.Check(source));
            _time.Advance(TimeSpan.FromMilliseconds(100));
        }
    }

    [Fact]
    public void Sources_have_separate_buckets()
    {
        var limiter = Create(burst: 1);
        Assert.Equal(RateLimitDecision.Allow, limiter.Check(Ip("198.51.100.3")));
        Assert.NotEqual(RateLimitDecision.Allow, limiter.Check(Ip("198.51.100.3")));
        Assert.Equal(RateLimitDecision.Allow, limiter.Check(Ip("198.51.100.4")));
    }

    [Fact]
    public void Ipv6_addresses_of_one_slash64_share_a_bucket_and_ipv4_mapped_counts_as_ipv4()
    {
        var limiter = Create(burst: 1);
        Assert.Equal(RateLimitDecision.Allow, limiter.Check(Ip("2001:db8:1:2::1")));
        Assert.NotEqual(RateLimitDecision.Allow, limiter.Check(Ip("2001:db8:1:2:ffff::9")));
        Assert.Equal(RateLimitDecision.Allow, limiter.Check(Ip("2001:db8:1:3::1")));

        Assert.Equal(RateLimitDecision.Allow, limiter.Check(Ip("192.0.2.1")));
        Assert.NotEqual(RateLimitDecision.Allow, limiter.Check(Ip("::ffff:192.0.2.1")));
    }

    [Fact]
    public void Flood_of_new_sources_never_grows_the_table_past_its_capacity_nor_resets_busy_sources()
    {
        var limiter = Create(rate: 1, burst: 2, capacity: 100);
        var busy = Ip("10.0.0.1");
        Assert.Equal(RateLimitDecision.Allow, limiter.Check(busy));
        Assert.Equal(RateLimitDecision.Allow, limiter.Check(busy));
        Assert.NotEqual(RateLimitDecision.Allow, limiter.Check(busy));

        var allowed = 0;
        for (var i = 0; i < 10_000; i++)
        {
            var spoofed = new IPAddress(BitConverter.GetBytes(0x0A000000 + 2 + i).Reverse().ToArray());
            if (limiter.Check(spoofed) == RateLimitDecision.Allow)
            {
                allowed++;
            }

            Assert.InRange(limiter.TrackedSources, 0, 100);
        }

        // 99 new sources got buckets of their own (one datagram each, allowed); the rest shared the overflow bucket (burst 2).
        Assert.Equal((99 * 1) + 2, allowed);
        Assert.NotEqual(RateLimitDecision.Allow, limiter.Check(busy));
    }

    [Fact]
    public void Idle_sources_are_evicted_when_the_table_is_full()
    {
        var limiter = Create(rate: 10, burst: 2, capacity: 10);
        for (var i = 0; i < 10; i++)
        {
            limiter.Check(Ip($"10.1.0.{i}"));
        }

        Assert.Equal(10, limiter.TrackedSources);
        _time.Advance(TimeSpan.FromSeconds(1));   // every bucket refills: all are idle
        Assert.Equal(RateLimitDecision.Allow, limiter.Check(Ip("10.2.0.1")));
        Assert.Equal(1, limiter.TrackedSources);
    }

    // Ported from mobilityd's control endpoint limiter (now this class, without replies).

    [Fact]
    public void Without_a_reply_interval_a_source_gets_its_burst_then_the_rate_and_is_never_answered()
    {
        var limiter = CreateSilent(rate: 2, burst: 3);
        var a = Ip("192.0.2.1");
        var decisions = Enumerable.Range(0, 10).Select(_ => limiter.Check(a)).ToArray();
        Assert.Equal(3, decisions.Count(d => d == RateLimitDecision.Allow));
        Assert.DoesNotContain(RateLimitDecision.ReplyRateLimited, decisions);
        Assert.True(limiter.TryAcquire(Ip("192.0.2.2")), "another source has its own bucket");

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(2, Enumerable.Range(0, 10).Count(_ => limiter.TryAcquire(a)));
    }

    [Fact]
    public void Without_a_reply_interval_memory_is_bounded_and_a_spoofed_flood_shares_one_overflow_bucket()
    {
        var limiter = CreateSilent(rate: 1, burst: 2, capacity: 4);
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
    public void A_single_slot_table_evicts_an_idle_source_to_make_room()
    {
        var limiter = CreateSilent(rate: 10, burst: 1, capacity: 1);
        Assert.True(limiter.TryAcquire(Ip("192.0.2.1")));
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(limiter.TryAcquire(Ip("192.0.2.2")));
        Assert.Equal(1, limiter.TrackedSources);
    }

    [Fact]
    public void A_full_table_is_scanned_for_idle_sources_at_most_once_per_refill_time()
    {
        // Burst 2 at 1/s: a bucket needs 2 s to become idle, so a sweep finds nothing new sooner.
        var limiter = CreateSilent(rate: 1, burst: 2, capacity: 2);
        Assert.True(limiter.TryAcquire(Ip("10.3.0.1")));
        Assert.True(limiter.TryAcquire(Ip("10.3.0.2")));
        Assert.True(limiter.TryAcquire(Ip("10.3.0.3")));   // overflow bucket (the sweep found none idle)
        _time.Advance(TimeSpan.FromSeconds(1));            // both refilled (idle), but no sweep is due yet
        Assert.True(limiter.TryAcquire(Ip("10.3.0.4")));   // overflow, without a scan
        Assert.Equal(2, limiter.TrackedSources);
        _time.Advance(TimeSpan.FromSeconds(2));            // a sweep is due: both idle buckets go
        Assert.True(limiter.TryAcquire(Ip("10.3.0.5")));
        Assert.Equal(1, limiter.TrackedSources);
    }

    [Fact]
    public void Bad_settings_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CreateSilent(rate: 0, burst: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => CreateSilent(rate: 1, burst: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => CreateSilent(rate: 1, burst: 1, capacity: 0));
    }
}
