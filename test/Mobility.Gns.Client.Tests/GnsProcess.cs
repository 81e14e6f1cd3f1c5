using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace Mobility.Gns.Client.Tests;

/// <summary>
/// The real <c>gns</c> server as a child process (in-memory store, loopback, ports chosen by the
/// server unless given), started with <c>dotnet gns.dll serve</c>; its ready line gives the ports.
/// gns.dll is found through <see cref="GnsDllVariable"/> or next to this test assembly's output.
/// </summary>
internal sealed partial class GnsProcess : IAsyncDisposable
{
    public const string GnsDllVariable = "MOB_TEST_GNS_DLL";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private const int MaxLogChars = 64 * 1024;

    private readonly Process _process;
    private readonly StringBuilder _log;
    private readonly string _workingDirectory;

    private GnsProcess(Process process, StringBuilder log, string workingDirectory, IPEndPoint udp, Uri grpc)
    {
        _process = process;
        _log = log;
        _workingDirectory = workingDirectory;
        Udp = udp;
        Grpc = grpc;
    }

    public IPEndPoint Udp { get; }

    public Uri Grpc { get; }

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public static string LocateGnsDll()
    {
        if (Environment.GetEnvironmentVariable(GnsDllVariable) is { Length: > 0 } configured)
        {
            return File.Exists(configured) ? configured : throw new FileNotFoundException($"${GnsDllVariable} names '{configured}', which does not exist.");
        }

        var here = new DirectoryInfo(AppContext.BaseDirectory);
        string[] candidates =
        [
            // --artifacts-path layout: bin/<project>/<config>/
            Path.Combine(here.FullName, "..", "..", "Mobility.Gns.Host", here.Name, "gns.dll"),
            // Classic layout: test/<project>/bin/<Config>/<tfm>/
            Path.Combine(here.FullName, "..", "..", "..", "..", "..", "src", "Mobility.Gns.Host", "bin", here.Parent!.Name, here.Name, "gns.dll"),
        ];
        return candidates.Select(Path.GetFullPath).FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException($"gns.dll not found (tried {string.Join(", ", candidates.Select(Path.GetFullPath))}); build src/Mobility.Gns.Host or set ${GnsDllVariable}.");
    }

    public static async Task<GnsProcess> StartAsync(string udp = "127.0.0.1:0", string grpc = "127.0.0.1:0")
    {
        var workingDirectory = Directory.CreateTempSubdirectory("mob-gns-").FullName;
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { LocateGnsDll(), "serve", "--memory", "--udp", udp, "--http", "127.0.0.1:0", "--grpc", grpc })
        {
            start.ArgumentList.Add(argument);
        }

        var log = new StringBuilder();
        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        process.ErrorDataReceived += (_, e) =>
        {
            lock (log)
            {
                if (e.Data is not null && log.Length < MaxLogChars)
                {
                    log.AppendLine(e.Data);
                }
            }
        };
        process.BeginErrorReadLine();
        try
        {
            using var timeout = new CancellationTokenSource(StartTimeout);
            while (true)
            {
                var line = await process.StandardOutput.ReadLineAsync(timeout.Token)
                    ?? throw new InvalidOperationException($"gns exited (code {(process.HasExited ? process.ExitCode : -1)}) before it was ready:\n{log}");
                var match = ReadyLine().Match(line);
                if (match.Success)
                {
                    return new GnsProcess(process, log, workingDirectory,
                        IPEndPoint.Parse(match.Groups["udp"].Value), new Uri(match.Groups["grpc"].Value));
                }
            }
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            process.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync().WaitAsync(TestTimeouts.Default);
        _process.Dispose();
        Directory.Delete(_workingDirectory, recursive: true);
    }

    [GeneratedRegex(@"^gns listening udp=(?<udp>\S+) http=\S+ grpc=(?<grpc>http://\S+) store=\S+$")]
    private static partial Regex ReadyLine();
}
