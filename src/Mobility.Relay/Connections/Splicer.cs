using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;

namespace Mobility.Relay.Connections;

/// <summary>
/// Copies two connections into each other byte for byte until either side closes or fails, then
/// closes both, after flushing what the relay holds (no half-close: a mobile TCP flow is either working or gone). Nothing is parsed and
/// nothing is kept: the bytes are the mobile TCP session's AEAD frames, which the relay cannot open.
/// Buffers are the connections' own pipes, bounded by Kestrel's buffer limits (<see cref="RelayLimits.BufferBytes"/>).
/// </summary>
internal static class Splicer
{
    /// <summary>Which side ended the splice.</summary>
    public enum Side
    {
        Dialer,
        Host,

        /// <summary>The host's registration ended (replaced or closed): both sides were cut.</summary>
        Registration,
    }

    /// <summary>Time the other direction has to finish after one side closed, before both are aborted.</summary>
    public static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(10);

    /// <remarks>
    /// When <paramref name="registrationEnded"/> fires (the host registered again, typically from a new
    /// address after a move, or its control connection died), both connections are aborted at once: the
    /// host's data connection belongs to a registration that is gone and may be dead without either end
    /// having seen it, and the dialler, seeing its connection end, resumes through the relay to the
    /// host's new registration instead of waiting for its dead-path timeout.
    /// </remarks>
    public static async Task<(Side EndedBy, long DialerToHost, long HostToDialer)> RunAsync(
        ConnectionContext dialer, ConnectionContext host, RelayCounters counters, CancellationToken registrationEnded)
    {
        var cut = 0;
        using var cutting = registrationEnded.Register(() =>
        {
            Volatile.Write(ref cut, 1);
            var reason = new ConnectionAbortedException("The host's registration ended.");
            dialer.Abort(reason);
            host.Abort(reason);
        });
        var up = CopyAsync(dialer.Transport.Input, host.Transport.Output, counters);
        var down = CopyAsync(host.Transport.Input, dialer.Transport.Output, counters);
        var first = await Task.WhenAny(up, down).ConfigureAwait(false);
        var endedBy = Volatile.Read(ref cut) == 1 ? Side.Registration : first == up ? Side.Dialer : Side.Host;

        // The copy that ended completed its writer, so Kestrel flushes and closes that socket (FIN), which
        // ends the other direction too; one that does not end in time is cut.
        var other = first == up ? down : up;
        if (await Task.WhenAny(other, Task.Delay(DrainTimeout)).ConfigureAwait(false) != other)
        {
            dialer.Abort(new ConnectionAbortedException("The splice ended."));
            host.Abort(new ConnectionAbortedException("The splice ended."));
        }

        return (endedBy, await up.ConfigureAwait(false), await down.ConfigureAwait(false));
    }

    private static async Task<long> CopyAsync(PipeReader from, PipeWriter to, RelayCounters counters)
    {
        long total = 0;
        try
        {
            while (true)
            {
                var read = await from.ReadAsync().ConfigureAwait(false);
                var buffer = read.Buffer;
                var length = buffer.Length;
                foreach (var segment in buffer)
                {
                    to.Write(segment.Span);
                }

                // The buffer's memory goes back to the pool here: nothing of it is read after this line.
                from.AdvanceTo(buffer.End);
                if (length > 0)
                {
                    total += length;
                    counters.Relayed(length);
                    var flush = await to.FlushAsync().ConfigureAwait(false);
                    if (flush.IsCompleted || flush.IsCanceled)
                    {
                        break;
                    }
                }

                if (read.IsCompleted || read.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException or ConnectionResetException)
        {
            // The side that failed is reported by which copy ended first.
        }
        finally
        {
            // This copy is the writer's only user: completing it lets Kestrel flush and close the socket.
            await to.CompleteAsync().ConfigureAwait(false);
        }

        return total;
    }
}
