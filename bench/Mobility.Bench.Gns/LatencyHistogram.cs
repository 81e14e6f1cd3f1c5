using System.Numerics;

namespace Mobility.Bench.Gns;

/// <summary>
/// Log-linear histogram of latencies in microseconds: exact below 1,024 µs, then 512 sub-buckets per
/// power of two (under 0.2% error), up to about 35 minutes. Fixed size, no allocation when recording;
/// not thread-safe (one per socket, merged at the end).
/// </summary>
public sealed class LatencyHistogram
{
    private const int Linear = 1024;
    private const int SubBuckets = 512;
    private const int MaxLog = 40;

    private readonly long[] _counts = new long[Linear + ((MaxLog - 9) * SubBuckets)];

    public long Count { get; private set; }

    public long MaxMicros { get; private set; }

    public double SumMicros { get; private set; }

    public void Record(long micros)
    {
        if (micros < 0)
        {
            micros = 0;
        }

        _counts[Index(micros)]++;
        Count++;
        SumMicros += micros;
        if (micros > MaxMicros)
        {
            MaxMicros = micros;
        }
    }

    public void Add(LatencyHistogram other)
    {
        ArgumentNullException.ThrowIfNull(other);
        for (var i = 0; i < _counts.Length; i++)
        {
            _counts[i] += other._counts[i];
        }

        Count += other.Count;
        SumMicros += other.SumMicros;
        MaxMicros = Math.Max(MaxMicros, other.MaxMicros);
    }

    public double MeanMicros => Count == 0 ? 0 : SumMicros / Count;

    /// <summary>The value at quantile <paramref name="q"/> (0..1), as the lower bound of its bucket.</summary>
    public long Percentile(double q)
    {
        if (Count == 0)
        {
            return 0;
        }

        var rank = (long)Math.Ceiling(q * Count);
        rank = Math.Clamp(rank, 1, Count);
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return Math.Min(LowerBound(i), MaxMicros);
            }
        }

        return MaxMicros;
    }

    private static int Index(long micros)
    {
        if (micros < Linear)
        {
            return (int)micros;
        }

        var log = 63 - BitOperations.LeadingZeroCount((ulong)micros);
        if (log >= MaxLog)
        {
            return Linear + ((MaxLog - 10) * SubBuckets) + (SubBuckets - 1);
        }

        var shift = log - 9;
        return Linear + ((shift - 1) * SubBuckets) + (int)((micros >> shift) - SubBuckets);
    }

    private static long LowerBound(int index)
    {
        if (index < Linear)
        {
            return index;
        }

        var shift = ((index - Linear) / SubBuckets) + 1;
        var sub = (index - Linear) % SubBuckets;
        return (long)(sub + SubBuckets) << shift;
    }
}
