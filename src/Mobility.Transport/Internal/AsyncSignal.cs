using System.Threading.Channels;

namespace Mobility.Transport.Internal;

/// <summary>Auto-reset wake-up for one waiting loop: many Set calls before a wait collapse into one.</summary>
internal sealed class AsyncAutoResetSignal
{
    private readonly Channel<bool> _channel = Channel.CreateBounded<bool>(new BoundedChannelOptions(1)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
        SingleWriter = false,
    });

    public void Set() => _channel.Writer.TryWrite(true);

    public ValueTask<bool> WaitAsync(CancellationToken cancellationToken) => _channel.Reader.ReadAsync(cancellationToken);
}

/// <summary>Manual broadcast: waiters take <see cref="Task"/> under the owner's lock, <see cref="Pulse"/> wakes them all.</summary>
internal sealed class AsyncPulse
{
    private TaskCompletionSource _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Task => _tcs.Task;

    public void Pulse()
    {
        var old = _tcs;
        _tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        old.TrySetResult();
    }
}
