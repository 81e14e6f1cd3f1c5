namespace Mobility.Transport.Internal;

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
