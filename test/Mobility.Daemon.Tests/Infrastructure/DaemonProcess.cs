using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Mobility.Daemon.Tests.Infrastructure;

/// <summary>A real mobilityd process (mobilityd.dll beside the tests): waits for its ready line, stops it with SIGTERM.</summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private DaemonProcess(Process process) => _process = process;

    public string ReadyLine { get; private set; } = "";

    public string StandardError
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>A field of the ready line, e.g. "http" or "socket".</summary>
    public string Field(string name)
        => ReadyLine.Split(' ').Select(p => p.Split('=', 2)).First(p => p.Length == 2 && p[0] == name)[1];

    public static DaemonProcess Start(IEnumerable<string> args, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "mobilityd.dll"));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var daemon = new DaemonProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line && line.StartsWith("mobilityd ready ", StringComparison.Ordinal))
            {
                daemon.ReadyLine = line;
                daemon._ready.TrySetResult(line);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (daemon._stderr)
            {
                daemon._stderr.AppendLine(e.Data);
            }
        };
        process.Exited += (_, _) => daemon._ready.TrySetException(new InvalidOperationException($"mobilityd exited with {process.ExitCode} before it was ready"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return daemon;
    }

    public async Task<string> WaitReadyAsync()
    {
        try
        {
            return await _ready.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            throw new TimeoutException($"mobilityd was not ready: {e.Message}\nstderr:\n{StandardError}", e);
        }
    }

    /// <summary>Sends SIGTERM and waits for the exit code.</summary>
    public async Task<int> StopAsync()
    {
        if (!_process.HasExited)
        {
            _ = Kill(_process.Id, 15);
        }

        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(15));
        return _process.ExitCode;
    }

    public async Task<int> WaitForExitAsync()
    {
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                try
                {
                    await StopAsync();
                }
                catch (TimeoutException)
                {
                    _process.Kill(entireProcessTree: true);
                }
            }
        }
        finally
        {
            _process.Dispose();
        }
    }

#pragma warning disable SYSLIB1054 // a blittable signature; LibraryImport would need unsafe code
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
#pragma warning restore SYSLIB1054
}
