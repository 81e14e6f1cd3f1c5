using System.Diagnostics;
using System.Text;

namespace Mobility.Testing;

/// <summary>
/// A real child process (gns, mobilityd, mob) started from the test's output folder. Waits for a
/// ready line on stdout, keeps the rest of the output for diagnostics, and stops with SIGTERM
/// (then SIGKILL) on dispose.
/// </summary>
public sealed class TestProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly object _gate = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Done)> _waiters = [];

    /// <summary>1 MiB of each stream is kept for diagnostics; a process that writes more cannot exhaust the test's memory.</summary>
    public const int MaxKeptChars = 1 << 20;

    private TestProcess(Process process) => _process = process;

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public string StandardOutput
    {
        get
        {
            lock (_gate)
            {
                return _stdout.ToString();
            }
        }
    }

    public string StandardError
    {
        get
        {
            lock (_gate)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>Path of an executable's dll in the test output folder (exe projects are referenced by the test project).</summary>
    public static string AssemblyPath(string assemblyName)
    {
        var path = Path.Combine(AppContext.BaseDirectory, assemblyName + ".dll");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{assemblyName}.dll is not beside the tests; is its project referenced?", path);
        }

        return path;
    }

    public static TestProcess Start(string assemblyName, IEnumerable<string> arguments, IDictionary<string, string>? environment = null,
        string? user = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo
        {
            FileName = user is null ? "dotnet" : "setpriv",
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
        };
        if (user is not null)
        {
            foreach (var a in new[] { $"--reuid={user}", $"--regid={user}", "--clear-groups", "dotnet" })
            {
                info.ArgumentList.Add(a);
            }
        }

        info.ArgumentList.Add(AssemblyPath(assemblyName));
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        if (environment is not null)
        {
            foreach (var (k, v) in environment)
            {
                info.Environment[k] = v;
            }
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var test = new TestProcess(process);
        process.OutputDataReceived += (_, e) => test.OnLine(e.Data, stdout: true);
        process.ErrorDataReceived += (_, e) => test.OnLine(e.Data, stdout: false);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return test;
    }

    /// <summary>Waits for the ready line that starts with <paramref name="prefix"/> (see <see cref="ReadyLine"/>) and parses it.</summary>
    public async Task<ReadyLine> WaitForReadyLineAsync(string prefix, TimeSpan? timeout = null)
        => ReadyLine.Find(await WaitForLineAsync(l => l.StartsWith(prefix + " ", StringComparison.Ordinal), timeout).ConfigureAwait(false), prefix);

    /// <summary>Waits for a stdout line that satisfies <paramref name="match"/> and returns it.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TestTimeout.Default;
        var tcs = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            foreach (var line in _stdout.ToString().Split('\n'))
            {
                if (match(line.TrimEnd('\r')))
                {
                    return line.TrimEnd('\r');
                }
            }

            _waiters.Add((match, tcs));
        }

        var exited = _process.WaitForExitAsync();
        var finished = await Task.WhenAny(tcs.Task, exited, Task.Delay(limit)).ConfigureAwait(false);
        if (finished == tcs.Task)
        {
            return await tcs.Task.ConfigureAwait(false);
        }

        var why = finished == exited ? $"exited with {_process.ExitCode}" : $"gave no matching line within {limit.TotalSeconds:0.#} s";
        throw new TimeoutException($"Process {_process.StartInfo.ArgumentList.ElementAtOrDefault(0)} {why}.\nstdout:\n{StandardOutput}\nstderr:\n{StandardError}");
    }

    /// <summary>Waits for the process to exit and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan? timeout = null)
    {
        var limit = timeout ?? TestTimeout.Default;
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"Process did not exit within {limit.TotalSeconds:0.#} s.\nstdout:\n{StandardOutput}\nstderr:\n{StandardError}");
        }

        return _process.ExitCode;
    }

    /// <summary>Sends a signal (SIGTERM = 15, SIGKILL = 9).</summary>
    public void Signal(int signal)
    {
        if (!_process.HasExited)
        {
            _ = Kill(_process.Id, signal);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                Signal(15);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try
                {
                    await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync().ConfigureAwait(false);
                }
            }
        }
        finally
        {
            _process.Dispose();
        }
    }

    private void OnLine(string? line, bool stdout)
    {
        if (line is null)
        {
            return;
        }

        List<TaskCompletionSource<string>> done = [];
        lock (_gate)
        {
            var kept = stdout ? _stdout : _stderr;
            if (kept.Length < MaxKeptChars)
            {
                kept.Append(line).Append('\n');
            }

            if (stdout)
            {
                for (var i = _waiters.Count - 1; i >= 0; i--)
                {
                    if (_waiters[i].Match(line))
                    {
                        done.Add(_waiters[i].Done);
                        _waiters.RemoveAt(i);
                    }
                }
            }
        }

        foreach (var tcs in done)
        {
            tcs.TrySetResult(line);
        }
    }

#pragma warning disable SYSLIB1054 // a blittable signature; LibraryImport would need unsafe code
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
#pragma warning restore SYSLIB1054
}
