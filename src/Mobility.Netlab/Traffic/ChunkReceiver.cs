using System.Diagnostics;

namespace Mobility.Netlab.Traffic;

/// <summary>Arrival of one complete chunk (Stopwatch timestamps; sender and receiver share the machine's clock).</summary>
public readonly record struct Arrival(long Sequence, long At, long SentAt = 0);

/// <summary>How the receiver's stream ended: <c>eof</c>, a socket error name, <c>corrupt</c>, or null while still open.</summary>
public sealed record ReceiverReport(IReadOnlyList<Arrival> Arrivals, long Duplicates, long Corrupt, string? End);

/// <summary>Reads chunks and records when each one completed; keeps at most <see cref="MaxArrivals"/>.</summary>
public sealed class ChunkReceiver(Stream stream)
{
    /// <summary>An hour at 200 chunks/s; beyond it arrivals are counted but not stored.</summary>
    public const int MaxArrivals = 720_000;

    private readonly List<Arrival> _arrivals = [];
    private readonly HashSet<long> _seen = [];
    private readonly Lock _lock = new();
    private long _duplicates;
    private long _corrupt;
    private long _highest = -1;

    /// <summary>Highest sequence received so far (-1: none).</summary>
    public long Highest => Interlocked.Read(ref _highest);

    public int UniqueCount
    {
        get
        {
            lock (_lock)
            {
                return _seen.Count;
            }
        }
    }

    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[Chunks.Size];
        try
        {
            // Bounded by the stream's end or the caller's deadline; every chunk makes progress or the loop exits.
            while (true)
            {
                var filled = 0;
                while (filled < Chunks.Size)
                {
                    var n = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken).ConfigureAwait(false);
                    if (n == 0)
                    {
                        return filled == 0 ? "eof" : "eof mid-chunk";
                    }

                    filled += n;
                }

                var at = Stopwatch.GetTimestamp();
                var sequence = Chunks.Read(buffer, out var sentAt);
                lock (_lock)
                {
                    if (sequence < 0)
                    {
                        _corrupt++;
                        return "corrupt";
                    }

                    if (!_seen.Add(sequence))
                    {
                        _duplicates++;
                    }
                    else if (_arrivals.Count < MaxArrivals)
                    {
                        _arrivals.Add(new Arrival(sequence, at, sentAt));
                    }

                    if (sequence > _highest)
                    {
                        Interlocked.Exchange(ref _highest, sequence);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            return "open at deadline";
        }
        catch (IOException e)
        {
            return ChunkSender.Describe(e);
        }
        catch (ObjectDisposedException)
        {
            return "stream closed";
        }
    }

    public ReceiverReport Report(string? end)
    {
        lock (_lock)
        {
            return new ReceiverReport([.. _arrivals], _duplicates, _corrupt, end);
        }
    }
}
