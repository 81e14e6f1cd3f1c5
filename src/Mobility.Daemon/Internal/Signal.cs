using System.Threading.Channels;

namespace Mobility.Daemon.Internal;

/// <summary>An auto-reset "something changed" flag a single background loop waits on; setting it twice before the wait counts once.</summary>
internal sealed class Signal
{
    private readonly Channel<bool> _channel = Channel.CreateBounded<bool>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    public void Set() => _channel.Writer.TryWrite(true);

    /// <summary>Clears the flag; true when it was set.</summary>
    public bool TryReset() => _channel.Reader.TryRead(out _);

    /// <summary>Waits until set (true) or until <paramref name="timeout"/> passes on <paramref name="time"/> (false).</summary>
    public async Task<bool> WaitAsync(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        if (_channel.Reader.TryRead(out _))
        {
            return true;
        }

        if (timeout == Timeout.InfiniteTimeSpan)
        {
            await _channel.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }

        using var timer = new CancellationTokenSource(timeout <= TimeSpan.Zero ? TimeSpan.FromTicks(1) : timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
        try
        {
            await _channel.Reader.ReadAsync(linked.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
