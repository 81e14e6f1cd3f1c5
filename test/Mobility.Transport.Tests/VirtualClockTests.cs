namespace Mobility.Transport.Tests;

/// <summary>
/// The <see cref="VirtualClock"/> the timing tests run on: it moves only while every other thread of
/// the process sleeps, so work in progress (on the thread pool or on a thread of its own, preempted
/// or not, however many hops it takes) never costs virtual time, and a virtual delay costs exactly
/// itself. The busy loops below run until the driver has looked a given number of times, not for a
/// wall-clock time.
/// </summary>
[Collection("Timing")]
public sealed class VirtualClockTests
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(1);

    /// <summary>Runs until the driver has checked <paramref name="checks"/> more times for quiescence.</summary>
    private static void BusyWhileTheDriverLooks(VirtualClock clock, int checks)
    {
        var until = clock.Checks + checks;
        while (clock.Checks < until)
        {
            Thread.SpinWait(100);
        }
    }

    [Fact]
    public async Task The_clock_does_not_move_while_a_thread_pool_work_item_runs()
    {
        await using var clock = new VirtualClock(Step);
        var (before, after) = await Task.Run(() =>
        {
            var start = clock.Time.GetTimestamp();
            BusyWhileTheDriverLooks(clock, 20);
            return (start, clock.Time.GetTimestamp());
        }).WithTimeout();

        Assert.Equal(before, after);
    }

    [Fact]
    public async Task The_clock_does_not_move_while_a_thread_outside_the_pool_runs_and_hands_its_work_to_the_pool()
    {
        await using var clock = new VirtualClock(Step);
        var done = new TaskCompletionSource<(long Before, long After)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            var start = clock.Time.GetTimestamp();
            BusyWhileTheDriverLooks(clock, 10);
            _ = Task.Run(() =>
            {
                BusyWhileTheDriverLooks(clock, 10);
                done.SetResult((start, clock.Time.GetTimestamp()));
            });
        });
        thread.Start();
        var (before, after) = await done.Task.WithTimeout();

        Assert.Equal(before, after);
    }

    [Fact]
    public async Task Virtual_time_passes_by_the_virtual_delays_alone_however_many_hops_lie_between_them()
    {
        await using var clock = new VirtualClock(Step);
        var (delay1, hops, delay2) = await Task.Run(async () =>
        {
            var t0 = clock.Time.GetTimestamp();
            await Task.Delay(TimeSpan.FromMilliseconds(10), clock.Time);
            var t1 = clock.Time.GetTimestamp();
            for (var i = 0; i < 200; i++)
            {
                await Task.Yield();
            }

            await Task.Factory.StartNew(() => BusyWhileTheDriverLooks(clock, 5), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            var t2 = clock.Time.GetTimestamp();
            await Task.Delay(TimeSpan.FromMilliseconds(10), clock.Time);
            var t3 = clock.Time.GetTimestamp();
            return (clock.Time.GetElapsedTime(t0, t1), clock.Time.GetElapsedTime(t1, t2), clock.Time.GetElapsedTime(t2, t3));
        }).WithTimeout();

        Assert.Equal(TimeSpan.FromMilliseconds(10), delay1);
        Assert.Equal(TimeSpan.Zero, hops);
        Assert.Equal(TimeSpan.FromMilliseconds(10), delay2);
    }
}
