using System.Globalization;

namespace Mobility.Transport.Tests;

/// <summary>
/// A <see cref="FakeTimeProvider"/> that moves forward by <see cref="Step"/> only while every other
/// thread of the process is asleep, as the operating system sees it. Timing tests measure in its
/// time, so a loaded machine makes them slower, not wrong: work that a real clock would have let run
/// late (and counted as round trips) finishes before the clock moves, however many awaits, thread
/// hops or preemptions it takes. Only for tests that run alone (the "Timing" collection).
/// </summary>
/// <remarks>
/// <para>
/// The driver is a dedicated thread. Before each step it reads every thread's state and run count
/// (<c>/proc/&lt;pid&gt;/task/&lt;tid&gt;/stat</c> and <c>schedstat</c>) twice, and steps only when both
/// passes saw the same threads, every one of them sleeping (state <c>S</c>), and none of them ran in
/// between. A thread runs (or waits for a CPU) in state <c>R</c>, and it hands work on (a queued
/// work item, a completed task, a new thread) only while it runs: a thread it wakes is runnable at
/// once. So when the two passes agree there was an instant at which no work was pending anywhere in
/// the process, whether on the thread pool, on xunit's own test threads or on the driver's timer
/// callbacks, and nothing but a timer (a virtual one, fired by the next step, or a real one: a test's
/// timeout, <see cref="TestTimeout.Eventually(Func{bool}, string, TimeSpan?)"/>'s polling) or I/O can wake anything again.
/// </para>
/// <para>
/// A thread that waits on real time (<see cref="Thread.Sleep(int)"/>, a real <see cref="Task.Delay(int)"/>)
/// sleeps: the virtual clock moves meanwhile. A thread that never sleeps (a busy loop) stops the
/// clock. Nothing here depends on wall-clock pauses: a loaded machine delays the steps, it cannot
/// make one early. Linux only (it reads <c>/proc</c>).
/// </para>
/// </remarks>
internal sealed class VirtualClock : IAsyncDisposable
{
    /// <summary>Steps taken in a row without a pass that found work, before the driver naps (1 ms) to leave the CPU to others.</summary>
    private const int IdleStepsBeforeNap = 50;

    private readonly string _tasks = $"/proc/{Environment.ProcessId}/task";
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Dictionary<int, (long Runtime, long Runs)> _first = [];
    private readonly Dictionary<int, (long Runtime, long Runs)> _second = [];
    private readonly byte[] _buffer = new byte[1024];
    private volatile bool _stop;
    private long _checks;
    private int _self;

    public VirtualClock(TimeSpan step)
    {
        if (!Directory.Exists(_tasks))
        {
            throw new PlatformNotSupportedException($"The virtual clock reads {_tasks} (Linux only).");
        }

        Step = step;
        new Thread(Drive) { IsBackground = true, Name = "virtual clock" }.Start();
    }

    public FakeTimeProvider Time { get; } = new(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(20000));

    public TimeSpan Step { get; }

    /// <summary>Quiescence checks made so far (each one reads every thread's state at least once).</summary>
    public long Checks => Interlocked.Read(ref _checks);

    private void Drive()
    {
        try
        {
            _self = int.Parse(Path.GetFileName(new FileInfo("/proc/thread-self").LinkTarget!), CultureInfo.InvariantCulture);
            var idleSteps = 0;
            var busyChecks = 0;
            while (!_stop)
            {
                var quiet = IsQuiescent();
                Interlocked.Increment(ref _checks);
                if (!quiet)
                {
                    // Something runs: give it the CPU. A nap is safe (the clock does not move while the driver sleeps).
                    idleSteps = 0;
                    if (++busyChecks % 16 == 0)
                    {
                        Thread.Sleep(1);
                    }
                    else
                    {
                        Thread.Yield();
                    }

                    continue;
                }

                busyChecks = 0;
                Time.Advance(Step);
                if (++idleSteps % IdleStepsBeforeNap == 0)
                {
                    Thread.Sleep(1);
                }
            }

            _stopped.TrySetResult();
        }
        catch (Exception e)
        {
            _stopped.TrySetException(e);
        }
    }

    /// <summary>Two passes over the process's threads: the same threads, all asleep in both, none ran in between.</summary>
    private bool IsQuiescent()
    {
        if (ThreadPool.PendingWorkItemCount != 0)
        {
            return false; // cheap: work is queued
        }

        if (!Sample(_first))
        {
            return false;
        }

        if (!Sample(_second) || _first.Count != _second.Count)
        {
            return false;
        }

        foreach (var (tid, runs) in _first)
        {
            if (!_second.TryGetValue(tid, out var again) || again != runs)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Every other thread's run counters; false as soon as one is not asleep (or exits meanwhile).</summary>
    private bool Sample(Dictionary<int, (long Runtime, long Runs)> threads)
    {
        threads.Clear();
        foreach (var dir in Directory.EnumerateDirectories(_tasks))
        {
            var tid = int.Parse(Path.GetFileName(dir), CultureInfo.InvariantCulture);
            if (tid == _self)
            {
                continue;
            }

            // State first, then the counters: a thread seen asleep whose counters did not move did not run in between.
            if (Read(dir + "/stat") is not { } stat || State(stat) != 'S' || Read(dir + "/schedstat") is not { } schedstat)
            {
                return false;
            }

            var fields = schedstat.Split(' ');
            threads[tid] = (long.Parse(fields[0], CultureInfo.InvariantCulture), long.Parse(fields[2], CultureInfo.InvariantCulture));
        }

        return true;
    }

    /// <summary>The state letter of a <c>stat</c> line: "tid (comm) S ..."; the name may hold spaces and parentheses.</summary>
    private static char State(string stat)
    {
        var end = stat.LastIndexOf(')');
        return end >= 0 && end + 2 < stat.Length ? stat[end + 2] : '?';
    }

    private string? Read(string path)
    {
        try
        {
            using var handle = File.OpenHandle(path);
            var n = RandomAccess.Read(handle, _buffer, 0);
            return System.Text.Encoding.ASCII.GetString(_buffer, 0, n);
        }
        catch (IOException)
        {
            return null; // the thread exited
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop = true;
        await _stopped.Task;
    }
}
