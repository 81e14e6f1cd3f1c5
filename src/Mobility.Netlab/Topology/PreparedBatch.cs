using System.Diagnostics;
using System.Globalization;
using Mobility.Netlab.Processes;

namespace Mobility.Netlab.Topology;

/// <summary>
/// An <c>ip -n NS -batch -</c> started ahead of the moment its commands must take effect. iproute2 reads a batch from
/// its standard input line by line, so the process start (milliseconds, tens of them on a loaded machine) is paid
/// before the move: <see cref="RunAsync"/> waits until the process sits in its read of the pipe, notes the time, and
/// writes the commands. That time is when the address change reached the kernel to within the wake-up of one blocked
/// process; the harness measures detection from it (docs/evaluation.md, <c>detect_ms</c>).
/// </summary>
public sealed class PreparedBatch : IAsyncDisposable
{
    private readonly StartedCommand _command;
    private bool _ran;

    private PreparedBatch(StartedCommand command) => _command = command;

    /// <summary>Starts <c>ip [-6] -n <paramref name="ns"/> -batch -</c>; nothing runs until <see cref="RunAsync"/>.</summary>
    public static PreparedBatch Start(string ns, bool ipv6 = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(ns);
        return new PreparedBatch(CommandRunner.Start("ip", [.. ipv6 ? (string[])["-6"] : [], "-n", ns, "-batch", "-"], inputLater: true));
    }

    /// <summary>
    /// Whether a <c>/proc/PID/syscall</c> line says the process is blocked in <c>read(0, …)</c> (syscall 0 on x86-64,
    /// 63 on arm64; first argument 0x0): iproute2 waiting for its batch on standard input.
    /// </summary>
    internal static bool IsReadingStandardInput(string syscallLine)
    {
        var fields = syscallLine.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 2 || !int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }

        var read = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.Arm64 ? 63 : 0;
        return number == read && fields[1] == "0x0";
    }

    /// <summary>
    /// Waits (at most <paramref name="readyTimeout"/>, then goes on: the time is then late by what is left of the start)
    /// until the process reads its standard input, runs <paramref name="commands"/>, and returns the Stopwatch timestamp
    /// taken just before they were written. Throws <see cref="CommandFailedException"/> when a command fails.
    /// </summary>
    public async Task<long> RunAsync(IEnumerable<string> commands, TimeSpan? readyTimeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(commands);
        if (_ran)
        {
            throw new InvalidOperationException("A prepared batch runs once.");
        }

        _ran = true;
        var input = string.Join('\n', commands) + "\n";
        await WhenReadyAsync(readyTimeout, cancellationToken).ConfigureAwait(false);
        var at = Stopwatch.GetTimestamp();
        CommandRunner.Checked(_command.Description, input, await _command.FinishAsync(input, cancellationToken: cancellationToken).ConfigureAwait(false));
        return at;
    }

    /// <summary>
    /// Returns once the process waits on its standard input (or has ended, or <paramref name="timeout"/>, 2 s by default,
    /// passed: then a hand-over is late by what is left of iproute2's start).
    /// </summary>
    public async Task WhenReadyAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var readyBy = Stopwatch.GetTimestamp() + (long)((timeout ?? TimeSpan.FromSeconds(2)).TotalSeconds * Stopwatch.Frequency);
        while (!_command.HasExited && Stopwatch.GetTimestamp() < readyBy && !Reading())
        {
            await Task.Delay(1, cancellationToken).ConfigureAwait(false);
        }
    }

    private bool Reading()
    {
        try
        {
            return IsReadingStandardInput(File.ReadAllText($"/proc/{_command.ProcessId.ToString(CultureInfo.InvariantCulture)}/syscall"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            // Gone, or /proc/PID/syscall not readable (a kernel without CONFIG_HAVE_ARCH_TRACEHOOK): the wait ends by its timeout.
            return false;
        }
    }

    /// <summary>Ends a batch that never ran (its standard input closed: iproute2 exits with nothing to do).</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_ran)
        {
            _ran = true;
            try
            {
                await _command.FinishAsync(null, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Killed by FinishAsync.
            }
        }

        _command.Dispose();
    }
}

/// <summary>
/// Several hosts' moves that hand their address changes to the kernel together (a both-move is "at the same time"):
/// each brings its new link up and has its <see cref="PreparedBatch"/> waiting, then waits here for the others.
/// </summary>
public sealed class MoveGate(int parties)
{
    private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _arrived;

    /// <summary>Completes once all <c>parties</c> have arrived.</summary>
    public Task ArriveAsync()
    {
        if (Interlocked.Increment(ref _arrived) >= parties)
        {
            _open.TrySetResult();
        }

        return _open.Task;
    }
}
