using System.Threading.Channels;

namespace Mobility.Net.Threading;

/// <summary>
/// An auto-reset "something changed" flag that one background loop waits on: setting it several
/// times before the wait counts once, and a wait takes the flag (resets it). <see cref="Complete"/>
/// ends it: every later wait returns false. Thread-safe for any number of setters and one waiter.
/// </summary>
public sealed class AsyncAutoResetSignal
{
    private readonly Channel<bool> _channel;

    /// <param name="wakeInline">
    /// When true, <see cref="Set"/> runs a waiting loop on the setter's thread until the loop's next real wait, instead of
    /// queueing it on the thread pool behind whatever else is queued there: for a loop whose first steps after a wake are
    /// short and urgent (the record publisher after an address change). The setter must tolerate that work.
    /// </param>
    public AsyncAutoResetSignal(bool wakeInline = false)
        => _channel = Channel.CreateBounded<bool>(new BoundedChannelOptions(1)
        {
            FullMode = BoundedChannelFullMode.DropWrite,
            SingleReader = true,
            SingleWriter = false,
            AllowSynchronousContinuations = wakeInline,
        });

    /// <summary>Sets the flag (no effect when it is set already or the signal is completed).</summary>
    public void Set() => _channel.Writer.TryWrite(true);

    /// <summary>Clears the flag; true when it was set.</summary>
    public bool TryReset() => _channel.Reader.TryRead(out _);

    /// <summary>Ends the signal: waits return false once a flag set before is taken.</summary>
    public void Complete() => _channel.Writer.TryComplete();

    /// <summary>Waits until set (true, the flag is taken) or completed (false).</summary>
    public async ValueTask<bool> WaitAsync(CancellationToken cancellationToken)
    {
        while (await _channel.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (_channel.Reader.TryRead(out _))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Waits until set (true) or until <paramref name="timeout"/> passes on <paramref name="time"/> (false);
    /// <see cref="Timeout.InfiniteTimeSpan"/> waits without a timer. A completed signal answers false at once.
    /// </summary>
    public async Task<bool> WaitAsync(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(time);
        if (_channel.Reader.TryRead(out _))
        {
            return true;
        }

        if (timeout == Timeout.InfiniteTimeSpan)
        {
            return await WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        using var timer = new CancellationTokenSource(timeout <= TimeSpan.Zero ? TimeSpan.FromTicks(1) : timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
        try
        {
            return await WaitAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
