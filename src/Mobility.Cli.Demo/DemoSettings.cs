using System.Globalization;
using System.Net;

namespace Mobility.Cli.Demo;

/// <summary>How much to stream: for a time, or a number of bytes.</summary>
public enum DemoBudgetKind
{
    Duration,
    Size,
}

/// <summary>
/// What <c>mob demo</c> does, checked before anything starts. Each limit says why it is there.
/// </summary>
public sealed class DemoSettings
{
    /// <summary>Default streaming time: long enough to watch three moves, short enough for a first command.</summary>
    public static readonly TimeSpan DefaultDuration = TimeSpan.FromSeconds(8);

    /// <summary>Shortest run: the three moves are a quarter of it apart, and each must resume before the next.</summary>
    public static readonly TimeSpan MinDuration = TimeSpan.FromSeconds(1);

    /// <summary>Longest run: a demo, not a soak test.</summary>
    public static readonly TimeSpan MaxDuration = TimeSpan.FromHours(1);

    /// <summary>Smallest --size: four slices of at least one write each.</summary>
    public const long MinSize = 1L << 20;

    /// <summary>Largest --size (1 TiB): hashing both ends bounds the speed anyway.</summary>
    public const long MaxSize = 1L << 40;

    /// <summary>A move that has not resumed after this long fails the demo (the transport itself would wait 60 s).</summary>
    public static readonly TimeSpan DefaultMoveTimeout = TimeSpan.FromSeconds(15);

    public DemoBudgetKind Budget { get; init; } = DemoBudgetKind.Duration;

    public TimeSpan Duration { get; init; } = DefaultDuration;

    public long Size { get; init; }

    public TimeSpan MoveTimeout { get; init; } = DefaultMoveTimeout;

    /// <summary>Seed of the pseudo-random stream (printed, so a run's data can be produced again).</summary>
    public ulong Seed { get; init; }

    /// <summary>No live display, one line per event (also when stdout is not a terminal).</summary>
    public bool Plain { get; init; }

    public bool Json { get; init; }

    /// <summary>Logs of the GNS, the daemon parts and the transport on stderr.</summary>
    public bool Verbose { get; init; }

    /// <summary>
    /// Address <paramref name="index"/> of host <paramref name="host"/> (0 alice, 1 bob): alice is 127.0.0.2,
    /// .12, .22; bob 127.0.0.3, .13, .23. All of 127.0.0.0/8 is local on Linux, so no root is needed;
    /// the ports are ephemeral, so two demos (or a running gns or mobilityd) do not collide.
    /// </summary>
    public static IPAddress Address(int host, int index) => new([127, 0, 0, (byte)(2 + host + (10 * index))]);

    /// <summary>Parses "8s", "500ms", "2m", "1.5" (seconds).</summary>
    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        text = text.Trim();
        var (number, scale) = text switch
        {
            _ when text.EndsWith("ms", StringComparison.OrdinalIgnoreCase) => (text[..^2], 0.001),
            _ when text.EndsWith('s') || text.EndsWith('S') => (text[..^1], 1.0),
            _ when text.EndsWith('m') || text.EndsWith('M') => (text[..^1], 60.0),
            _ when text.EndsWith('h') || text.EndsWith('H') => (text[..^1], 3600.0),
            _ => (text, 1.0),
        };
        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)
            || !double.IsFinite(value) || value * scale > TimeSpan.MaxValue.TotalSeconds)
        {
            return false;
        }

        duration = TimeSpan.FromSeconds(value * scale);
        return true;
    }

    /// <summary>Parses "64MiB", "1G", "512k", "1000000" (bytes); K, M, G, T are binary (KiB, MiB, GiB, TiB).</summary>
    public static bool TryParseSize(string text, out long size)
    {
        size = 0;
        text = text.Trim();
        var upper = text.ToUpperInvariant();
        long scale = 1;
        foreach (var (suffix, factor) in new (string, long)[]
                 {
                     ("KIB", 1L << 10), ("MIB", 1L << 20), ("GIB", 1L << 30), ("TIB", 1L << 40),
                     ("KB", 1L << 10), ("MB", 1L << 20), ("GB", 1L << 30), ("TB", 1L << 40),
                     ("K", 1L << 10), ("M", 1L << 20), ("G", 1L << 30), ("T", 1L << 40), ("B", 1),
                 })
        {
            if (upper.EndsWith(suffix, StringComparison.Ordinal))
            {
                upper = upper[..^suffix.Length];
                scale = factor;
                break;
            }
        }

        if (!decimal.TryParse(upper, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value > long.MaxValue / scale)
        {
            return false;
        }

        size = (long)(value * scale);
        return true;
    }
}
