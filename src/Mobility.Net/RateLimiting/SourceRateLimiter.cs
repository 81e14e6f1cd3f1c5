using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Net.RateLimiting;

/// <summary>What to do with a datagram after the rate limiter saw its source.</summary>
public enum RateLimitDecision
{
    /// <summary>Within the source's rate: process it.</summary>
    Allow,

    /// <summary>Over the rate: drop it without a reply.</summary>
    Drop,

    /// <summary>
    /// Over the rate, and the source has not been told for <see cref="SourceRateLimits.ReplyInterval"/>:
    /// answer "rate limited" once. Never returned when the interval is null (endpoints that never answer a refusal).
    /// </summary>
    ReplyRateLimited,
}

/// <summary>The settings of one <see cref="SourceRateLimiter"/>; each endpoint maps its own options onto these.</summary>
public sealed record SourceRateLimits
{
    public SourceRateLimits()
    {
    }

    [SetsRequiredMembers]
    public SourceRateLimits(double requestsPerSecond, int burst, int maxSources, TimeSpan? replyInterval)
    {
        RequestsPerSecond = requestsPerSecond;
        Burst = burst;
        MaxSources = maxSources;
        ReplyInterval = replyInterval;
    }

    /// <summary>Sustained requests per second per source.</summary>
    public required double RequestsPerSecond { get; init; }

    /// <summary>Requests a source may send at once before the rate applies.</summary>
    public required int Burst { get; init; }

    /// <summary>Sources with a bucket of their own; beyond it idle buckets are evicted, then new sources share one overflow bucket.</summary>
    public required int MaxSources { get; init; }

    /// <summary>
    /// A limited source is told at most once per this interval (<see cref="RateLimitDecision.ReplyRateLimited"/>);
    /// null: never told, every excess request is dropped silently.
    /// </summary>
    public TimeSpan? ReplyInterval { get; init; }
}

/// <summary>
/// A token bucket per source (an IPv4 address, or an IPv6 /64 — the smallest prefix a site is
/// given, so one site cannot multiply its rate by its addresses; an IPv4-mapped IPv6 address counts
/// as the IPv4 address) in a bounded table: <see cref="SourceRateLimiter{TKey}"/> keyed by that prefix.
/// Used by the GNS datagram endpoint, mobilityd's control endpoint and DNS stub, and the relay's per-source limits.
/// </summary>
public sealed class SourceRateLimiter
{
    private readonly SourceRateLimiter<UInt128> _buckets;

    public SourceRateLimiter(SourceRateLimits limits, TimeProvider time) => _buckets = new SourceRateLimiter<UInt128>(limits, time);

    /// <summary>Sources with a bucket of their own.</summary>
    public int TrackedSources => _buckets.TrackedSources;

    /// <summary>Takes one token for <paramref name="source"/>: allowed, dropped, or dropped with a "rate limited" answer.</summary>
    public RateLimitDecision Check(IPAddress source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return _buckets.Check(KeyOf(source));
    }

    /// <summary>True when <paramref name="source"/> had a token (and took it); for endpoints that never answer a refusal.</summary>
    public bool TryAcquire(IPAddress source) => Check(source) == RateLimitDecision.Allow;

    /// <summary>
    /// The source an address counts as: IPv4 as its IPv4-mapped IPv6 value; IPv6 as its /64 prefix (the low 64 bits,
    /// never zero for IPv4, are cleared). Also the key of per-source counts kept elsewhere (the relay's unidentified connections).
    /// </summary>
    public static UInt128 KeyOf(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        Span<byte> bytes = stackalloc byte[16];
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            address.TryWriteBytes(bytes[12..], out _);
            bytes[10] = 0xFF;
            bytes[11] = 0xFF;
            return BinaryPrimitives.ReadUInt128BigEndian(bytes);
        }

        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return BinaryPrimitives.ReadUInt128BigEndian(bytes);
    }
}

/// <summary>
/// A token bucket per source, whatever names the source (<typeparamref name="TKey"/>: an address prefix for
/// <see cref="SourceRateLimiter"/>, a GUID for the relay's per-GUID limits), in a bounded table. When the table is
/// full, buckets that have refilled completely (idle sources) are evicted — looked for at most once per refill time,
/// so a flood of new sources does not cost a table scan per request; when none is idle, new sources share one
/// overflow bucket, so a flood of made-up sources neither grows memory nor resets the buckets of the sources it
/// floods alongside. Thread-safe (one lock; the work under it is a dictionary lookup).
/// </summary>
public sealed class SourceRateLimiter<TKey>
    where TKey : notnull
{
    private readonly Lock _gate = new();
    private readonly Dictionary<TKey, Bucket> _buckets = [];
    private readonly Bucket _overflow;
    private readonly TimeProvider _time;
    private readonly double _ratePerSecond;
    private readonly double _burst;
    private readonly long _replyIntervalTicks;
    private readonly bool _replies;
    private readonly long _refillTicks;
    private readonly int _capacity;
    private long _nextSweep;

    public SourceRateLimiter(SourceRateLimits limits, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limits.RequestsPerSecond);
        ArgumentOutOfRangeException.ThrowIfLessThan(limits.Burst, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(limits.MaxSources, 1);
        _time = time;
        _ratePerSecond = limits.RequestsPerSecond;
        _burst = limits.Burst;
        _capacity = limits.MaxSources;
        _replies = limits.ReplyInterval is not null;
        _replyIntervalTicks = (long)((limits.ReplyInterval ?? TimeSpan.Zero).TotalSeconds * time.TimestampFrequency);
        // The time an empty bucket takes to refill: no bucket becomes idle faster, so sweeping more
        // often than this finds nothing new.
        _refillTicks = Math.Max(1, (long)(_burst / _ratePerSecond * time.TimestampFrequency));
        _overflow = new Bucket(_burst, time.GetTimestamp());
    }

    /// <summary>Sources with a bucket of their own.</summary>
    public int TrackedSources
    {
        get
        {
            lock (_gate)
            {
                return _buckets.Count;
            }
        }
    }

    /// <summary>Takes one token for <paramref name="key"/>: allowed, dropped, or dropped with a "rate limited" answer.</summary>
    public RateLimitDecision Check(TKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            if (!_buckets.TryGetValue(key, out var bucket))
            {
                if (_buckets.Count >= _capacity)
                {
                    Sweep(now);
                }

                if (_buckets.Count < _capacity)
                {
                    bucket = new Bucket(_burst, now);
                    _buckets.Add(key, bucket);
                }
                else
                {
                    bucket = _overflow;
                }
            }

            Refill(bucket, now);
            if (bucket.Tokens >= 1)
            {
                bucket.Tokens -= 1;
                return RateLimitDecision.Allow;
            }

            if (_replies && (bucket.LastReply == long.MinValue || now - bucket.LastReply >= _replyIntervalTicks))
            {
                bucket.LastReply = now;
                return RateLimitDecision.ReplyRateLimited;
            }

            return RateLimitDecision.Drop;
        }
    }

    /// <summary>True when <paramref name="key"/> had a token (and took it); for endpoints that never answer a refusal.</summary>
    public bool TryAcquire(TKey key) => Check(key) == RateLimitDecision.Allow;

    private void Refill(Bucket bucket, long now)
    {
        var elapsed = now - bucket.Updated;
        if (elapsed > 0)
        {
            bucket.Tokens = Math.Min(_burst, bucket.Tokens + (elapsed * _ratePerSecond / _time.TimestampFrequency));
            bucket.Updated = now;
        }
    }

    private void Sweep(long now)
    {
        if (now < _nextSweep)
        {
            return;
        }

        _nextSweep = now + _refillTicks;
        List<TKey>? idle = null;
        foreach (var (key, bucket) in _buckets)
        {
            Refill(bucket, now);
            if (bucket.Tokens >= _burst)
            {
                (idle ??= []).Add(key);
            }
        }

        if (idle is not null)
        {
            foreach (var key in idle)
            {
                _buckets.Remove(key);
            }
        }
    }

    private sealed class Bucket(double tokens, long updated)
    {
        public double Tokens { get; set; } = tokens;

        public long Updated { get; set; } = updated;

        public long LastReply { get; set; } = long.MinValue;
    }
}
