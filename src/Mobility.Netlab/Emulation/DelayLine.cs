namespace Mobility.Netlab.Emulation;

/// <summary>A packet waiting in a <see cref="DelayLine"/>; <see cref="Buffer"/> may be longer than <see cref="Length"/>.</summary>
public readonly record struct DelayedPacket(byte[] Buffer, int Length, long ReleaseAt);

/// <summary>
/// One direction of the emulated link: packets wait in a priority queue keyed on their release time
/// (arrival + delay ± jitter), may be dropped at random, and are tail-dropped beyond the queue limit.
/// Not thread-safe; <see cref="LinkEmulator"/> serialises access. Times are in <see cref="TimeProvider"/> ticks.
/// </summary>
public sealed class DelayLine
{
    private readonly PriorityQueue<DelayedPacket, (long ReleaseAt, long Sequence)> _queue = new();
    private readonly LinkEmulatorOptions _options;
    private readonly Random _random;
    private readonly long _delayTicks;
    private readonly long _jitterTicks;
    private long _sequence;

    public DelayLine(LinkEmulatorOptions options, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        options.Validate();
        _options = options;
        _random = options.Seed is { } seed ? new Random(seed) : new Random();
        _delayTicks = ToTicks(options.Delay, timeProvider.TimestampFrequency);
        _jitterTicks = ToTicks(options.Jitter, timeProvider.TimestampFrequency);
    }

    public int Count => _queue.Count;

    public long Forwarded { get; private set; }

    public long DroppedByLoss { get; private set; }

    public long DroppedByQueueLimit { get; private set; }

    /// <summary>Queues a packet that arrived at <paramref name="now"/>; returns false when it was dropped (loss or full queue).</summary>
    public bool Enqueue(byte[] buffer, int length, long now)
    {
        if (_options.Loss > 0 && _random.NextDouble() < _options.Loss)
        {
            DroppedByLoss++;
            return false;
        }

        if (_queue.Count >= _options.MaxQueuedPackets)
        {
            DroppedByQueueLimit++;
            return false;
        }

        var delay = _delayTicks;
        if (_jitterTicks > 0)
        {
            delay += _random.NextInt64(-_jitterTicks, _jitterTicks + 1);
            delay = Math.Max(0, delay);
        }

        var releaseAt = now + delay;
        // The sequence keeps packets with equal release times (no jitter) in arrival order.
        _queue.Enqueue(new DelayedPacket(buffer, length, releaseAt), (releaseAt, _sequence++));
        return true;
    }

    /// <summary>Takes the earliest packet if its release time has come.</summary>
    public bool TryDequeueDue(long now, out DelayedPacket packet)
    {
        if (_queue.TryPeek(out packet, out var key) && key.ReleaseAt <= now)
        {
            _queue.Dequeue();
            Forwarded++;
            return true;
        }

        packet = default;
        return false;
    }

    /// <summary>Release time of the earliest packet, or null when empty.</summary>
    public long? NextReleaseAt => _queue.TryPeek(out _, out var key) ? key.ReleaseAt : null;

    private static long ToTicks(TimeSpan value, long frequency) => (long)(value.TotalSeconds * frequency);
}
