namespace Mobility.Transport.Tests;

/// <summary>
/// A <see cref="FakeTimeProvider"/> that moves forward by <see cref="Step"/> only while the process
/// has nothing to do: no work item queued on the thread pool and (almost) none completed during a
/// short real pause. Timing tests measure in its time, so a loaded machine makes them slower, not
/// wrong: work that a real clock would have let run late (and counted as round trips) finishes
/// before the clock moves. Only for tests that run alone (the "Timing" collection).
/// </summary>
internal sealed class VirtualClock : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _driver;

    public VirtualClock(TimeSpan step)
    {
        Step = step;
        _driver = Task.Run(DriveAsync);
    }

    public FakeTimeProvider Time { get; } = new(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(20000));

    public TimeSpan Step { get; }

    private async Task DriveAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var completed = ThreadPool.CompletedWorkItemCount;
            await Task.Delay(1);   // real time: let pending work run
            // The pause's own continuation counts as one or two work items.
            if (ThreadPool.PendingWorkItemCount == 0 && ThreadPool.CompletedWorkItemCount - completed <= 2)
            {
                Time.Advance(Step);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _driver;
        _stop.Dispose();
    }
}
