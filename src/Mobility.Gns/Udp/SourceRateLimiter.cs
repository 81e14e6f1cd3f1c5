using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Mobility.Gns.Udp;

/// <summary>What to do with a datagram after the rate limiter saw its source.</summary>
public enum RateLimitDecision
{
    /// <summary>Within the source's rate: process it.</summary>
    Allow,

    /// <summary>Over the rate: drop it without a reply.</summary>
    Drop,

    /// <summary>Over the rate, and the source has not been told for a while: answer RateLimited once.</summary>
    ReplyRateLimited,
}

/// <summary>
/// A token bucket per source (an IPv4 address, or an IPv6 /64 — the smallest prefix a site is
/// given, so one site cannot multiply its rate by its addresses) in a bounded table. When the table
/// is full, buckets that have refilled completely (idle sources) are evicted; when none is idle, new
/// sources share one overflow bucket, so a flood from spoofed addresses neither grows memory nor
/// resets the buckets of the sources it floods alongside.
/// </summary>
public sealed class SourceRateLimiter
{
    private readonly Lock _gate = new();
    private readonly Dictionary<UInt128, Bucket> _buckets = [];
    private readonly Bucket _overflow;
    private readonly TimeProvider _time;
    private readonly double _ratePerSecond;
    private readonly double _burst;
    private readonly long _replyIntervalTicks;
    private readonly long _refillTicks;
    private readonly int _capacity;
    private long _nextSweep;

    public SourceRateLimiter(IOptions<GnsServerOptions> options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        var o = options.Value;
        _time = time;
        _ratePerSecond = o.RequestsPerSecond;
        _burst = o.Burst;
        _capacity = o.MaxRateLimitedSources;
        _replyIntervalTicks = (long)(o.RateLimitedReplyInterval.TotalSeconds * time.TimestampFrequency);
        // The time an empty bucket takes to refill: no bucket becomes idle faster, so sweeping more
        // often than this finds nothing new.
        _refillTicks = Math.Max(1, (long)(_burst / _ratePerSecond * time.TimestampFrequency));
        var now = time.GetTimestamp();
        _overflow = new Bucket(_burst, now);
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

    public RateLimitDecision Check(IPAddress source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var key = KeyOf(source);
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

            if (bucket.LastReply == long.MinValue || now - bucket.LastReply >= _replyIntervalTicks)
            {
                bucket.LastReply = now;
                return RateLimitDecision.ReplyRateLimited;
            }

            return RateLimitDecision.Drop;
        }
    }

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
        List<UInt128>? idle = null;
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

    /// <summary>IPv4 as its IPv4-mapped IPv6 value; IPv6 as its /64 prefix (the low 64 bits, never zero for IPv4, are cleared).</summary>
    internal static UInt128 KeyOf(IPAddress address)
    {
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

    private sealed class Bucket(double tokens, long updated)
    {
        public double Tokens { get; set; } = tokens;

        public long Updated { get; set; } = updated;

        public long LastReply { get; set; } = long.MinValue;
    }
}
