using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mobility.Netlab.Soak;

/// <summary>One child process of the soak: stdout watched for a ready line, both streams kept (bounded) for the report.</summary>
public sealed class ChildProcess : IAsyncDisposable
{
    /// <summary>Cap of the kept output: a chatty child must not grow the soak's memory without bound.</summary>
    private const int MaxKept = 256 * 1024;

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _readyPrefix;

    private readonly string? _logPath;

    private ChildProcess(Process process, string readyPrefix, string? logPath)
    {
        _process = process;
        _readyPrefix = readyPrefix;
        _logPath = logPath;
    }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>
    /// Starts <paramref name="file"/> with this process's environment plus <paramref name="environment"/>;
    /// with <paramref name="logPath"/>, its kept output is appended there when it is killed or disposed.
    /// </summary>
    public static ChildProcess Start(string file, IEnumerable<string> arguments, string readyPrefix, string? logPath = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var child = new ChildProcess(process, readyPrefix, logPath);
        process.OutputDataReceived += (_, e) => child.Line(e.Data, stdout: true);
        process.ErrorDataReceived += (_, e) => child.Line(e.Data, stdout: false);
        process.Exited += (_, _) => child._ready.TrySetException(new InvalidOperationException($"{file} exited before it was ready:\n{child.Output}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>The ready line (without its prefix).</summary>
    public Task<string> WaitReadyAsync(TimeSpan timeout) => _ready.Task.WaitAsync(timeout);

    /// <summary>SIGKILL, as the fault: no shutdown code runs.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: false);
        }

        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (_logPath is not null)
        {
            string output;
            lock (_output)
            {
                output = _output.ToString();
                _output.Clear();
            }

            await File.AppendAllTextAsync(_logPath, output);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        catch (InvalidOperationException)
        {
            // never started or already reaped
        }

        _process.Dispose();
    }

    private void Line(string? line, bool stdout)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            if (_output.Length < MaxKept)
            {
                _output.AppendLine(line);
            }
        }

        if (stdout && line.StartsWith(_readyPrefix, StringComparison.Ordinal))
        {
            _ready.TrySetResult(line[_readyPrefix.Length..]);
        }
    }
}

/// <summary>Where the built gns and mobilityd dlls are: beside this assembly or in their projects' output folders.</summary>
public static class Executables
{
    public static string Locate(string assemblyName, string project)
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var candidates = new List<string> { Path.Combine(here.FullName, assemblyName + ".dll") };
        // --artifacts-path layout: bin/<this project>/<config>/ -> bin/<project>/<config>/
        candidates.Add(Path.Combine(here.Parent!.Parent!.FullName, project, here.Name, assemblyName + ".dll"));
        // classic layout: <folder>/<this project>/bin/<Config>/<tfm>/ -> src/<project>/bin/<Config>/<tfm>/
        if (here.Parent?.Parent?.Parent?.Parent?.Parent is { } repo)
        {
            candidates.Add(Path.Combine(repo.FullName, "src", project, "bin", here.Parent!.Name, here.Name, assemblyName + ".dll"));
        }

        return candidates.FirstOrDefault(File.Exists) is { } found
            ? Path.GetFullPath(found)
            : throw new FileNotFoundException($"{assemblyName}.dll not found at {string.Join(" or ", candidates)}; build src/{project} with the same configuration");
    }
}

/// <summary>Free loopback ports and /proc samples.</summary>
public static class Host
{
    public static int FreeTcpPort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    public static int FreeUdpPort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    /// <summary>
    /// VmRSS and its three parts (KiB: RssAnon = heaps, stacks, GC regions; RssFile = mapped files
    /// such as the runtime's and the app's assemblies; RssShmem = shared memory, here the runtime's
    /// double-mapped JIT code), open file descriptors and threads of a process, from /proc.
    /// </summary>
    public static ProcessSample Sample(int pid)
    {
        long rss = 0, anon = 0, file = 0, shmem = 0;
        var threads = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                continue;
            }

            var value = line[(colon + 1)..].Trim().Split(' ')[0];
            switch (line[..colon])
            {
                case "VmRSS": rss = long.Parse(value, CultureInfo.InvariantCulture); break;
                case "RssAnon": anon = long.Parse(value, CultureInfo.InvariantCulture); break;
                case "RssFile": file = long.Parse(value, CultureInfo.InvariantCulture); break;
                case "RssShmem": shmem = long.Parse(value, CultureInfo.InvariantCulture); break;
                case "Threads": threads = int.Parse(value, CultureInfo.InvariantCulture); break;
            }
        }

        return new ProcessSample(rss, anon, file, shmem, Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length, threads);
    }
}

/// <summary>One /proc sample of a process (memory in KiB).</summary>
public readonly record struct ProcessSample(long RssKiB, long AnonKiB, long FileKiB, long ShmemKiB, int Fds, int Threads);
