using System.Buffers;
using Mobility.Netlab.Interop;

namespace Mobility.Netlab.Emulation;

/// <summary>Counters of one direction, for the emulator's exit report.</summary>
public sealed record DirectionStats(string From, string To, long Received, long Forwarded, long DroppedByLoss, long DroppedByQueueLimit, long WriteFailures);

/// <summary>
/// Forwards IP packets between two TUN devices in both directions through a <see cref="DelayLine"/> each:
/// a reader thread per device blocks in read(2) and queues the packet; a writer thread per direction sleeps until
/// the earliest release time and writes the packet to the other device. Routes in the router namespace decide
/// which traffic enters which device.
/// </summary>
public sealed class LinkEmulator
{
    private readonly Direction _aToB;
    private readonly Direction _bToA;

    public LinkEmulator(TunDevice a, TunDevice b, LinkEmulatorOptions options, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(options);
        var time = timeProvider ?? TimeProvider.System;
        _aToB = new Direction(a, b, new DelayLine(options, time), time);
        // A different seed per direction so the two directions do not lose the same packets in lockstep.
        _bToA = new Direction(b, a, new DelayLine(options with { Seed = options.Seed + 1 }, time), time);
    }

    /// <summary>Runs until <paramref name="cancellationToken"/> fires; the reader threads are background threads left blocked in read(2).</summary>
    public IReadOnlyList<DirectionStats> Run(CancellationToken cancellationToken)
    {
        var threads = new[]
        {
            StartThread("read " + _aToB.Source.Name, () => _aToB.ReadLoop(cancellationToken)),
            StartThread("read " + _bToA.Source.Name, () => _bToA.ReadLoop(cancellationToken)),
            StartThread("write " + _aToB.Target.Name, () => _aToB.WriteLoop(cancellationToken)),
            StartThread("write " + _bToA.Target.Name, () => _bToA.WriteLoop(cancellationToken)),
        };
        cancellationToken.WaitHandle.WaitOne();
        // Writers notice the token within their bounded wait; readers stay blocked in read(2) and die with the process.
        threads[2].Join(TimeSpan.FromSeconds(2));
        threads[3].Join(TimeSpan.FromSeconds(2));
        return [_aToB.Stats(), _bToA.Stats()];
    }

    public IReadOnlyList<DirectionStats> Stats() => [_aToB.Stats(), _bToA.Stats()];

    private static Thread StartThread(string name, Action loop)
    {
        var thread = new Thread(() => loop()) { IsBackground = true, Name = name, Priority = ThreadPriority.AboveNormal };
        thread.Start();
        return thread;
    }

    private sealed class Direction(TunDevice source, TunDevice target, DelayLine line, TimeProvider time)
    {
        /// <summary>Longest a writer sleeps without re-checking the queue and the cancellation token.</summary>
        private const int MaxWaitMilliseconds = 100;

        private readonly object _gate = new();
        private long _received;
        private long _writeFailures;

        public TunDevice Source { get; } = source;

        public TunDevice Target { get; } = target;

        public DirectionStats Stats()
        {
            lock (_gate)
            {
                return new DirectionStats(Source.Name, Target.Name, Interlocked.Read(ref _received), line.Forwarded, line.DroppedByLoss, line.DroppedByQueueLimit, Interlocked.Read(ref _writeFailures));
            }
        }

        public void ReadLoop(CancellationToken cancellationToken)
        {
            var buffer = new byte[LinkEmulatorOptions.MaxPacketSize];
            while (!cancellationToken.IsCancellationRequested)
            {
                int length;
                try
                {
                    length = Source.Read(buffer);
                }
                catch (IOException)
                {
                    return;
                }

                if (length <= 0)
                {
                    return;
                }

                Interlocked.Increment(ref _received);
                var copy = ArrayPool<byte>.Shared.Rent(length);
                buffer.AsSpan(0, length).CopyTo(copy);
                lock (_gate)
                {
                    var before = line.NextReleaseAt;
                    if (!line.Enqueue(copy, length, time.GetTimestamp()))
                    {
                        ArrayPool<byte>.Shared.Return(copy);
                        continue;
                    }

                    if (before is null || line.NextReleaseAt < before)
                    {
                        Monitor.PulseAll(_gate);
                    }
                }
            }
        }

        public void WriteLoop(CancellationToken cancellationToken)
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                DelayedPacket packet;
                lock (_gate)
                {
                    var now = time.GetTimestamp();
                    if (!line.TryDequeueDue(now, out packet))
                    {
                        var wait = MaxWaitMilliseconds;
                        if (line.NextReleaseAt is { } next)
                        {
                            var ms = (int)Math.Ceiling((next - now) * 1000.0 / time.TimestampFrequency);
                            wait = Math.Clamp(ms, 1, MaxWaitMilliseconds);
                        }

                        Monitor.Wait(_gate, wait);
                        continue;
                    }
                }

                if (!Target.Write(packet.Buffer.AsSpan(0, packet.Length)))
                {
                    Interlocked.Increment(ref _writeFailures);
                }

                ArrayPool<byte>.Shared.Return(packet.Buffer);
            }
        }
    }
}
