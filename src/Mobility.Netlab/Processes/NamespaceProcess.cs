using System.Diagnostics;

namespace Mobility.Netlab.Processes;

/// <summary>One line a <see cref="NamespaceProcess"/> printed and when the harness read it (Stopwatch timestamp).</summary>
public sealed record OutputLine(string Text, bool IsError, long At);

/// <summary>
/// A long-running process inside a network namespace (started as <c>ip netns exec NS cmd ...</c>, which execs, so
/// the process id is the command's). Disposing kills it and its children.
/// </summary>
public sealed class NamespaceProcess : IAsyncDisposable
{
    /// <summary>Lines of output kept per process, so a chatty child cannot grow the harness without bound.</summary>
    public const int MaxCapturedChars = 1 << 20;

    /// <summary>How long a process gets to exit after SIGTERM before it is killed.</summary>
    public static readonly TimeSpan TermGracePeriod = TimeSpan.FromSeconds(3);

    private readonly Process _process;
    private readonly BoundedText _stdout = new(MaxCapturedChars);
    private readonly BoundedText _stderr = new(MaxCapturedChars);
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string? _readyLine;
    private int _disposed;

    private NamespaceProcess(string ns, string description, Process process, string? readyLine)
    {
        Namespace = ns;
        Description = description;
        _process = process;
        _readyLine = readyLine;
    }

    public string Namespace { get; }

    /// <summary>
    /// Raised for every line of stdout and stderr, with the <see cref="Stopwatch"/> timestamp at which the harness read
    /// it (so a daemon's log line can date an event it reports; the timestamp is at most a pipe read later than the write).
    /// Handlers run on the process's output thread and must be quick.
    /// </summary>
    public event EventHandler<OutputLine>? LineReceived;

    public string Description { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    public string StandardOutput => _stdout.ToString();

    public string StandardError => _stderr.ToString();

    /// <summary>
    /// Starts <paramref name="fileName"/> inside <paramref name="ns"/>. When <paramref name="readyLine"/> is given,
    /// <see cref="WaitReadyAsync"/> completes once a stdout line starts with it.
    /// </summary>
    public static NamespaceProcess Start(string ns, string fileName, IEnumerable<string> arguments, string? readyLine = null, IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var startInfo = new ProcessStartInfo("ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
        };
        startInfo.ArgumentList.Add("netns");
        startInfo.ArgumentList.Add("exec");
        startInfo.ArgumentList.Add(ns);
        startInfo.ArgumentList.Add(fileName);
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                startInfo.Environment[key] = value;
            }
        }

        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var handle = new NamespaceProcess(ns, CommandRunner.Describe(fileName, startInfo.ArgumentList.Skip(4)), process, readyLine);
        process.OutputDataReceived += (_, e) => handle.OnOutput(e.Data);
        process.ErrorDataReceived += (_, e) => handle.OnError(e.Data);
        process.Exited += (_, _) => handle._ready.TrySetException(new CommandFailedException($"'{handle.Description}' in {ns} exited before it was ready"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return handle;
    }

    private void OnError(string? line)
    {
        _stderr.AppendLine(line);
        if (line is not null)
        {
            LineReceived?.Invoke(this, new OutputLine(line, IsError: true, Stopwatch.GetTimestamp()));
        }
    }

    private void OnOutput(string? line)
    {
        _stdout.AppendLine(line);
        if (line is not null)
        {
            LineReceived?.Invoke(this, new OutputLine(line, IsError: false, Stopwatch.GetTimestamp()));
        }

        if (line is not null && _readyLine is not null && line.StartsWith(_readyLine, StringComparison.Ordinal))
        {
            _ready.TrySetResult();
        }
    }

    /// <summary>Waits until the ready line was printed; throws with the process's stderr when it exits first or time runs out.</summary>
    public async Task WaitReadyAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            await _ready.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or CommandFailedException)
        {
            throw new CommandFailedException($"{e.Message}; waited {timeout.TotalSeconds:0.#} s; stderr: {StandardError.Trim()}");
        }
    }

    /// <summary>Waits for the process to exit on its own; returns false if it is still running at the deadline.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            await _process.WaitForExitAsync(cancellationToken).WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    public int ExitCode => _process.ExitCode;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // SIGTERM first, so a process can report (the emulator prints its counters), then SIGKILL.
        if (!_process.HasExited && Interop.Libc.Kill(_process.Id, Interop.Libc.SigTerm) == 0)
        {
            try
            {
                await _process.WaitForExitAsync().WaitAsync(TermGracePeriod).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Falls through to SIGKILL.
            }
        }

        CommandRunner.TryKill(_process);
        try
        {
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A process stuck in the kernel; the namespace cleanup kills whatever is left in the namespace.
        }

        _process.Dispose();
    }
}
