using System.Buffers;

namespace Mobility.Daemon.Forwarding;

/// <summary>How one direction of a relay ended.</summary>
public enum CopyResult
{
    /// <summary>The source ended (EOF) and the end was passed on (half-close).</summary>
    Success,
    SourceFailed,
    DestinationFailed,
    /// <summary>Neither direction made progress for the idle timeout.</summary>
    Idle,
    Canceled,
}

/// <summary>
/// One side of a relay: its stream, how to half-close it (shutdown of the write side), and optionally whether a read
/// would return at once (<see cref="HasBufferedData"/>, e.g. a mobile connection's <c>Available</c> above 0): then the
/// copier reads again into the buffer it holds instead of giving it back and waiting with a zero-byte read first.
/// </summary>
public sealed record RelaySide(Stream Stream, Action ShutdownWrite, Func<bool>? HasBufferedData = null);

/// <summary>
/// Copies bytes between two sides in both directions with pooled buffers (YARP's StreamCopier):
/// an EOF on one side is passed on as a half-close of the other, a shared idle timer is reset by
/// progress in either direction, and the result says which side failed instead of throwing.
/// </summary>
public static class StreamCopier
{
    /// <summary>
    /// Buffer per direction while data flows, rented, not allocated. 256 KiB, a size class of the shared pool: each read
    /// and write moves up to that much, so a bulk transfer costs a quarter of the reads, writes and (on a mobile side)
    /// trips through the connection's loop that 64 KiB cost (docs/benchmarks.md, issue 17). An idle relay holds none.
    /// </summary>
    public const int BufferSize = 256 * 1024;

    /// <summary>Relays until both directions ended, one failed, or nothing moved for <paramref name="idleTimeout"/>.</summary>
    public static async Task<(CopyResult AToB, CopyResult BToA)> RelayAsync(RelaySide a, RelaySide b, TimeSpan idleTimeout, TimeProvider time,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        using var activity = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var idle = new IdleTimer(time, activity, idleTimeout);
        var aToB = CopyAsync(a, b, idle, activity.Token);
        var bToA = CopyAsync(b, a, idle, activity.Token);
        var first = await Task.WhenAny(aToB, bToA).ConfigureAwait(false);
        if (first.Result != CopyResult.Success)
        {
            // One direction failed: the other cannot go on meaningfully.
            await activity.CancelAsync().ConfigureAwait(false);
        }

        var results = (await aToB.ConfigureAwait(false), await bToA.ConfigureAwait(false));
        if (idle.Fired)
        {
            results = (results.Item1 == CopyResult.Success ? CopyResult.Success : CopyResult.Idle,
                results.Item2 == CopyResult.Success ? CopyResult.Success : CopyResult.Idle);
        }

        return results;
    }

    private static async Task<CopyResult> CopyAsync(RelaySide from, RelaySide to, IdleTimer idle, CancellationToken cancellationToken)
    {
        // The buffer is held only while data flows: a zero-byte read waits for the first bytes, and
        // when a read does not fill the buffer (the source has nothing more for now) it goes back to
        // the pool until the next zero-byte read returns (YARP's StreamCopier does the same). An
        // idle relay then holds no buffer: ten thousand idle sessions would otherwise pin 5 GiB. A source that says more
        // is buffered already (HasBufferedData) keeps the buffer for the next read: no zero-byte read per chunk in bulk.
        byte[]? buffer = null;
        try
        {
            while (true)
            {
                int read;
                try
                {
                    if (buffer is null)
                    {
                        _ = await from.Stream.ReadAsync(Memory<byte>.Empty, cancellationToken).ConfigureAwait(false);
                        buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                    }

                    read = await from.Stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return CopyResult.Canceled;
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
                {
                    return CopyResult.SourceFailed;
                }

                if (read == 0)
                {
                    try
                    {
                        to.ShutdownWrite();
                    }
                    catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
                    {
                        return CopyResult.DestinationFailed;
                    }

                    return CopyResult.Success;
                }

                idle.Reset();
                try
                {
                    await to.Stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return CopyResult.Canceled;
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
                {
                    return CopyResult.DestinationFailed;
                }

                idle.Reset();
                if (read < buffer.Length && from.HasBufferedData?.Invoke() != true)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = null;
                }
            }
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>An idle timer on <see cref="TimeProvider"/> that cancels the relay when it is not reset in time.</summary>
    private sealed class IdleTimer : IDisposable
    {
        private readonly ITimer _timer;
        private readonly TimeSpan _timeout;
        private int _fired;

        public IdleTimer(TimeProvider time, CancellationTokenSource cts, TimeSpan timeout)
        {
            _timeout = timeout;
            _timer = time.CreateTimer(_ =>
            {
                Volatile.Write(ref _fired, 1);
                cts.Cancel();
            }, null, timeout, Timeout.InfiniteTimeSpan);
        }

        public bool Fired => Volatile.Read(ref _fired) == 1;

        public void Reset() => _timer.Change(_timeout, Timeout.InfiniteTimeSpan);

        public void Dispose() => _timer.Dispose();
    }
}
