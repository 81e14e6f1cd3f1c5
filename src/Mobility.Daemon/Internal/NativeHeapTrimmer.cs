using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Mobility.Daemon.Internal;

/// <summary>
/// Gives the C heap's free pages back to the kernel every <see cref="MobilitydOptions.NativeHeapTrimInterval"/>
/// (glibc's <c>malloc_trim(0)</c>). What the runtime, the JIT and OpenSSL free goes back into glibc's
/// per-thread arenas, and glibc returns only the free memory at the top of an arena: a free run below a
/// chunk still in use stays resident. With the thread pool's threads coming and going, each move's
/// allocations land in one of up to 8 arenas per core, and the daemon's anonymous memory rose about
/// 0.5 MiB/min in the 30-minute soak while the arenas held about three times what was in use
/// (docs/benchmarks.md, "Faults lose nothing"). <c>malloc_trim(0)</c> walks every arena and releases
/// the whole pages inside free chunks (<c>MADV_DONTNEED</c>); it keeps the chunks, so nothing is moved.
/// Where the C library has no <c>malloc_trim</c> (musl) this does nothing.
/// </summary>
internal sealed class NativeHeapTrimmer(IOptions<MobilitydOptions> options, TimeProvider time) : BackgroundService
{
    private static int s_unavailable;
    private PeriodicTimer? _timer;

    /// <summary>Trims that ran (for tests).</summary>
    public long Passes { get; private set; }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Made here, not in ExecuteAsync (which the host may start later on another thread): the first
        // interval counts from the start.
        var interval = options.Value.NativeHeapTrimInterval;
        _timer = interval > TimeSpan.Zero ? new PeriodicTimer(interval, time) : null;
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_timer is null)
        {
            return;
        }

        try
        {
            while (await _timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false) && TrimNow())
            {
                Passes++;
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override void Dispose()
    {
        _timer?.Dispose();
        base.Dispose();
    }

    /// <summary>
    /// Releases the free pages of every malloc arena; false when the C library cannot (not glibc), and
    /// from then on without trying again.
    /// </summary>
    public static bool TrimNow()
    {
        if (Volatile.Read(ref s_unavailable) != 0 || !OperatingSystem.IsLinux())
        {
            return false;
        }

        try
        {
            malloc_trim(0);
            return true;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            Volatile.Write(ref s_unavailable, 1);
            return false;
        }
    }

#pragma warning disable SYSLIB1054 // DllImport keeps the project free of unsafe code; this signature needs no marshalling stub.
    [DllImport("libc")]
    private static extern int malloc_trim(nuint pad);
#pragma warning restore SYSLIB1054
}
