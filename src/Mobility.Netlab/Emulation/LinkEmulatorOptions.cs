using System.Globalization;

namespace Mobility.Netlab.Emulation;

/// <summary>Characteristics of the emulated link, applied to each direction separately.</summary>
public sealed record LinkEmulatorOptions
{
    /// <summary>
    /// Packets held per direction. 4096 packets of 1500 bytes is about 6 MB: more than a bandwidth-delay product the
    /// harness creates (a few MB/s at 100 ms RTT), small enough that a flood cannot exhaust memory. Tail drop beyond it.
    /// </summary>
    public const int DefaultMaxQueuedPackets = 4096;

    /// <summary>Largest packet accepted from a TUN device; the TUN MTU is 1500, 64 KiB covers any GSO-free IP packet.</summary>
    public const int MaxPacketSize = 65_535;

    /// <summary>One-way delay added to every packet.</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>Each packet's delay is Delay plus a uniform random value in [-Jitter, +Jitter] (never below zero). Packets may reorder, as with netem.</summary>
    public TimeSpan Jitter { get; init; }

    /// <summary>Probability (0..1) that a packet is dropped, independently per packet.</summary>
    public double Loss { get; init; }

    public int MaxQueuedPackets { get; init; } = DefaultMaxQueuedPackets;

    /// <summary>Seed for jitter and loss, so a run can be repeated; null picks one.</summary>
    public int? Seed { get; init; }

    public static LinkEmulatorOptions ForRtt(TimeSpan rtt) => new() { Delay = rtt / 2 };

    public void Validate()
    {
        if (Delay < TimeSpan.Zero || Delay > TimeSpan.FromSeconds(10))
        {
            throw new ArgumentOutOfRangeException(nameof(Delay), Delay, "delay must be within 0..10 s");
        }

        if (Jitter < TimeSpan.Zero || Jitter > TimeSpan.FromSeconds(10))
        {
            throw new ArgumentOutOfRangeException(nameof(Jitter), Jitter, "jitter must be within 0..10 s");
        }

        if (Loss is < 0 or > 1 || double.IsNaN(Loss))
        {
            throw new ArgumentOutOfRangeException(nameof(Loss), Loss, "loss must be a probability within 0..1");
        }

        if (MaxQueuedPackets is < 1 or > 1_000_000)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxQueuedPackets), MaxQueuedPackets, "queue limit must be within 1..1000000 packets");
        }
    }

    /// <summary>The command-line flags of <c>netlab link</c> that reproduce these options.</summary>
    public IEnumerable<string> ToArguments()
    {
        yield return "--delay";
        yield return Durations.Format(Delay);
        yield return "--jitter";
        yield return Durations.Format(Jitter);
        yield return "--loss";
        yield return (Loss * 100).ToString("0.####", CultureInfo.InvariantCulture) + "%";
        yield return "--queue-limit";
        yield return MaxQueuedPackets.ToString(CultureInfo.InvariantCulture);
        if (Seed is { } seed)
        {
            yield return "--seed";
            yield return seed.ToString(CultureInfo.InvariantCulture);
        }
    }
}

/// <summary>Parses and prints durations like <c>25ms</c>, <c>1.5s</c>, <c>250us</c>, and loss like <c>1%</c> or <c>0.01</c>.</summary>
public static class Durations
{
    public static TimeSpan Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim();
        (string Suffix, double Scale)[] units = [("us", 0.001), ("ms", 1), ("s", 1000)];
        foreach (var (suffix, scale) in units)
        {
            if (t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && double.TryParse(t[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= 0)
            {
                return TimeSpan.FromMilliseconds(value * scale);
            }
        }

        throw new FormatException($"'{text}' is not a duration (examples: 25ms, 1.5s, 250us)");
    }

    public static string Format(TimeSpan value) => value.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture) + "ms";

    public static double ParseLoss(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim();
        var percent = t.EndsWith('%');
        if (!double.TryParse(percent ? t[..^1] : t, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            throw new FormatException($"'{text}' is not a loss rate (examples: 1%, 0.01)");
        }

        return percent ? value / 100 : value;
    }
}
