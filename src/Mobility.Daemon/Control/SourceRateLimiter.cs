using System.Net;

namespace Mobility.Daemon.Control;

/// <summary>
/// Token buckets per source IP for the control endpoint. Memory is bounded by
/// <see cref="ControlLimits.MaxTrackedSources"/>: when full, idle (refilled) buckets are evicted, and
/// when none is idle new sources share one overflow bucket, so a flood from spoofed addresses can
/// neither grow memory nor reset the buckets of busy sources. Not thread-safe: one receive loop owns it.
/// </summary>
internal sealed class SourceRateLimiter
{
    private readonly double _rate;
    private readonly double _burst;
    private readonly int _maxSources;
    private readonly TimeProvider _time;
    private readonly Dictionary<IPAddress, Bucket> _buckets = [];
    private readonly Bucket _overflow;
    private readonly Lock _gate = new();

    public SourceRateLimiter(ControlLimits limits, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(limits);
        _rate = limits.RequestsPerSecond;
        _burst = limits.Burst;
        _maxSources = limits.MaxTrackedSources;
        _time = time;
        _overflow = new Bucket(_burst, _time.GetTimestamp());
    }

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

    /// <summary>Takes one token for <paramref name="source"/>; false when it has none left.</summary>
    public bool TryAcquire(IPAddress source)
    {
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            if (!_buckets.TryGetValue(source, out var bucket))
            {
                if (_buckets.Count >= _maxSources && !EvictIdle(now))
                {
                    bucket = _overflow;
                }
                else
                {
                    bucket = new Bucket(_burst, now);
                    _buckets[source] = bucket;
                }
            }

            Refill(bucket, now);
            if (bucket.Tokens < 1)
            {
                return false;
            }

            bucket.Tokens -= 1;
            return true;
        }
    }

    private void Refill(Bucket bucket, long now)
    {
        var elapsed = _time.GetElapsedTime(bucket.Stamp, now).TotalSeconds;
        bucket.Tokens = Math.Min(_burst, bucket.Tokens + (elapsed * _rate));
        bucket.Stamp = now;
    }

    private bool EvictIdle(long now)
    {
        var evicted = 0;
        foreach (var (source, bucket) in _buckets)
        {
            Refill(bucket, now);
            if (bucket.Tokens >= _burst)
            {
                _buckets.Remove(source);
                evicted++;
            }
        }

        return evicted > 0;
    }

    private sealed class Bucket(double tokens, long stamp)
    {
        public double Tokens { get; set; } = tokens;

        public long Stamp { get; set; } = stamp;
    }
}
