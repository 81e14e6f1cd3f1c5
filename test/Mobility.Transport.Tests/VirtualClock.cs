using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

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
/// The driver is a dedicated thread. Before each step it reads every other thread's state
/// (<c>/proc/&lt;pid&gt;/task/&lt;tid&gt;/stat</c>) in two passes, and the process's count of context
/// switches (<c>getrusage</c>, less the driver's own) before, between and after them. It steps only
/// when both passes saw the same threads, every one asleep (state <c>S</c>), and the count did not
/// move: no thread went to sleep meanwhile, so none ran and handed work on behind a pass's back. A
/// thread runs (or waits for a CPU) in state <c>R</c>, and it hands work on (a queued work item, a
/// completed task, a new thread) only while it runs: a thread it wakes is runnable at once. So there
/// was an instant at which no work was pending anywhere in the process, whether on the thread pool,
/// on xunit's own test threads or behind the driver's timer callbacks, and nothing but a timer (a
/// virtual one, fired by the next step, or a real one: a test's timeout,
/// <see cref="TestTimeout.Eventually(Func{bool}, string, TimeSpan?)"/>'s polling) or I/O can wake
/// anything again.
/// </para>
/// <para>
/// A thread that waits on real time (<see cref="Thread.Sleep(int)"/>, a real <see cref="Task.Delay(int)"/>)
/// sleeps: the virtual clock moves meanwhile. A thread that never sleeps (a busy loop) stops the
/// clock. Nothing here depends on wall-clock pauses: a loaded machine delays the steps, it cannot
/// make one early. A pass reads one small file per thread through handles kept open, so that real
/// pollers (every 10 ms) rarely fall into one. Linux only (it reads <c>/proc</c>).
/// </para>
/// </remarks>
internal sealed class VirtualClock : IAsyncDisposable
{
    /// <summary>Steps taken in a row without a pass that found work, before the driver naps (1 ms) to leave the CPU to others.</summary>
    private const int IdleStepsBeforeNap = 50;

    private readonly string _tasks = $"/proc/{Environment.ProcessId}/task";
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Dictionary<int, SafeFileHandle> _stats = [];
    private readonly HashSet<int> _first = [];
    private readonly HashSet<int> _second = [];
    private readonly byte[] _buffer = new byte[512];
    private readonly long[] _usage = new long[18];
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

    /// <summary>
    /// Polls <paramref name="condition"/> once per step of virtual time until it holds, so that the clock, read when this
    /// returns, tells when it first held to the step. (<see cref="TestTimeout.Eventually(Func{bool}, string, TimeSpan?)"/>
    /// polls every 10 ms of real time, while this clock may run hundreds of steps: a time read after it is late by that
    /// much.) Fails with <paramref name="what"/> after <see cref="TestTimeout.Default"/> of real time.
    /// </summary>
    public async Task UntilAsync(Func<bool> condition, string what)
    {
        using var deadline = new CancellationTokenSource(TestTimeout.Default);
        while (!condition())
        {
            try
            {
                await Task.Delay(Step, Time, deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"Timed out waiting until {what}.");
            }
        }
    }

    /// <summary>Quiescence checks made so far, whether they found the process idle or not.</summary>
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

    /// <summary>Two passes over the process's threads: the same threads, all asleep in both, and no context switch (but the driver's) from before the first to after the second.</summary>
    private bool IsQuiescent()
    {
        if (ThreadPool.PendingWorkItemCount != 0)
        {
            return false; // cheap: work is queued
        }

        var switches = OthersSwitches();
        if (!Sample(_first) || OthersSwitches() != switches || !Sample(_second) || OthersSwitches() != switches)
        {
            return false;
        }

        return _first.SetEquals(_second);
    }

    /// <summary>Every other thread's id; false as soon as one is not asleep (or exits meanwhile).</summary>
    private bool Sample(HashSet<int> threads)
    {
        threads.Clear();
        foreach (var dir in Directory.EnumerateDirectories(_tasks))
        {
            var tid = int.Parse(Path.GetFileName(dir), CultureInfo.InvariantCulture);
            if (tid == _self)
            {
                continue;
            }

            threads.Add(tid);
            if (State(tid) != (byte)'S')
            {
                return false;
            }
        }

        // Threads gone since the last pass: close their handles.
        if (_stats.Count > threads.Count)
        {
            foreach (var gone in _stats.Keys.Where(t => !threads.Contains(t)).ToList())
            {
                _stats.Remove(gone, out var handle);
                handle!.Dispose();
            }
        }

        return true;
    }

    /// <summary>The state letter of a thread's <c>stat</c> line, "tid (comm) S ..." (the name may hold spaces and parentheses); 0 if it is gone.</summary>
    private byte State(int tid)
    {
        try
        {
            if (!_stats.TryGetValue(tid, out var handle))
            {
                handle = File.OpenHandle($"{_tasks}/{tid}/stat");
                _stats[tid] = handle;
            }

            var n = RandomAccess.Read(handle, _buffer, 0); // procfs renders the file anew at offset 0
            var end = _buffer.AsSpan(0, n).LastIndexOf((byte)')');
            return end >= 0 && end + 2 < n ? _buffer[end + 2] : (byte)0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (_stats.Remove(tid, out var handle))
            {
                handle.Dispose();
            }

            return 0; // the thread exited
        }
    }

    /// <summary>Context switches (voluntary and not) of every thread of the process but the driver, so far.</summary>
    private long OthersSwitches()
    {
        if (GetResourceUsage(ResourceUsageSelf, _usage) != 0)
        {
            throw new InvalidOperationException("getrusage(RUSAGE_SELF) failed: " + Marshal.GetLastPInvokeError());
        }

        var all = _usage[16] + _usage[17]; // ru_nvcsw, ru_nivcsw
        if (GetResourceUsage(ResourceUsageThread, _usage) != 0)
        {
            throw new InvalidOperationException("getrusage(RUSAGE_THREAD) failed: " + Marshal.GetLastPInvokeError());
        }

        return all - _usage[16] - _usage[17];
    }

    private const int ResourceUsageSelf = 0;
    private const int ResourceUsageThread = 1;

#pragma warning disable SYSLIB1054 // a blittable signature; LibraryImport would need unsafe code
    /// <summary><c>getrusage(2)</c>: <paramref name="usage"/> receives struct rusage, 18 longs on 64-bit Linux (two timevals, then 14 counters).</summary>
    [DllImport("libc", EntryPoint = "getrusage", SetLastError = true)]
    private static extern int GetResourceUsage(int who, [Out] long[] usage);
#pragma warning restore SYSLIB1054

    public async ValueTask DisposeAsync()
    {
        _stop = true;
        try
        {
            await _stopped.Task;
        }
        finally
        {
            foreach (var handle in _stats.Values)
            {
                handle.Dispose();
            }
        }
    }
}
