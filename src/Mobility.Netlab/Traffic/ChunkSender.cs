using System.Diagnostics;

namespace Mobility.Netlab.Traffic;

/// <summary>How the sender's stream ended.</summary>
public sealed record SenderReport(long ChunksWritten, string? Error);

/// <summary>
/// Writes one chunk every <see cref="Interval"/> (a steady rate) until a deadline or cancellation. Several calls of
/// <see cref="RunAsync"/> continue the sequence (a pause between them is an idle connection).
/// </summary>
public sealed class ChunkSender(Stream stream, TimeSpan interval)
{
    private long _written;

    public TimeSpan Interval { get; } = interval;

    /// <summary>Chunks fully handed to the stream so far (sequence numbers 0..ChunksWritten-1).</summary>
    public long ChunksWritten => Interlocked.Read(ref _written);

    public async Task<SenderReport> RunAsync(TimeSpan duration, CancellationToken cancellationToken)
    {
        var buffer = new byte[Chunks.Size];
        var start = Stopwatch.GetTimestamp();
        var maxChunks = (long)(duration / Interval) + 1;
        var first = ChunksWritten;
        try
        {
            for (var sequence = first; sequence < first + maxChunks; sequence++)
            {
                var due = TimeSpan.FromTicks(Interval.Ticks * (sequence - first)) - Stopwatch.GetElapsedTime(start);
                if (due > TimeSpan.FromMilliseconds(1))
                {
                    await Task.Delay(due, cancellationToken).ConfigureAwait(false);
                }

                Chunks.Write(buffer, sequence, Stopwatch.GetTimestamp());
                await stream.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
                Interlocked.Increment(ref _written);
            }

            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            return new SenderReport(ChunksWritten, null);
        }
        catch (OperationCanceledException)
        {
            return new SenderReport(ChunksWritten, "cancelled (write blocked until the deadline)");
        }
        catch (IOException e)
        {
            return new SenderReport(ChunksWritten, Describe(e));
        }
        catch (ObjectDisposedException)
        {
            return new SenderReport(ChunksWritten, "stream closed");
        }
    }

    internal static string Describe(Exception e) => e.InnerException is System.Net.Sockets.SocketException s ? s.SocketErrorCode.ToString() : e.Message;
}
