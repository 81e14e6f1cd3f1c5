using System.Net;

namespace Mobility.Testing;

/// <summary>
/// The real <c>gns</c> executable as a child process (<c>dotnet gns.dll serve ...</c>), found by
/// <see cref="Executables.Locate"/>; waits for its ready line and exposes the real ports from it.
/// Stops with SIGTERM (then SIGKILL) on dispose.
/// </summary>
public sealed class GnsProcess : IAsyncDisposable
{
    private readonly string _ownedDirectory;

    private GnsProcess(TestProcess process, ReadyLine ready, string ownedDirectory)
    {
        Process = process;
        Ready = ready;
        _ownedDirectory = ownedDirectory;
    }

    public TestProcess Process { get; }

    /// <summary>The server's working directory (a fresh temporary folder, deleted on dispose): a relative --data lands here.</summary>
    public string WorkingDirectory => _ownedDirectory;

    public ReadyLine Ready { get; }

    public IPEndPoint Udp => Ready.EndPoint("udp") ?? throw new InvalidOperationException("This gns runs with UDP off: " + Ready.Text);

    /// <summary>The HTTP/JSON endpoint (IP:PORT).</summary>
    public IPEndPoint Http => IPEndPoint.Parse(new Uri(Ready.Require("http")).Authority);

    /// <summary>The gRPC base address (an error when the server runs with gRPC off).</summary>
    public Uri Grpc => Ready.Url("grpc") ?? throw new InvalidOperationException("This gns runs with gRPC off: " + Ready.Text);

    public string Store => Ready.Require("store");

    /// <summary>What the server wrote to stderr (its log), for failure messages.</summary>
    public string Log => Process.StandardError;

    /// <summary>A server with an in-memory store; UDP and gRPC where given, else (like HTTP) on a free loopback port.</summary>
    public static Task<GnsProcess> StartInMemoryAsync(string udp = "127.0.0.1:0", string grpc = "127.0.0.1:0")
        => StartAsync(["serve", "--memory", "--udp", udp, "--http", "127.0.0.1:0", "--grpc", grpc]);

    /// <summary>Starts <c>gns</c> with <paramref name="arguments"/> (including the verb) and waits for the ready line.</summary>
    public static async Task<GnsProcess> StartAsync(IEnumerable<string> arguments, IDictionary<string, string>? environment = null)
    {
        // The working directory is a fresh folder, so a relative --data never lands in the test output.
        var directory = Directory.CreateTempSubdirectory("mob-gns-").FullName;
        var process = TestProcess.Start(Executables.Locate("gns", "Mobility.Gns.Host"), arguments, environment, workingDirectory: directory);
        try
        {
            var ready = await process.WaitForReadyLineAsync(ReadyLine.GnsPrefix).ConfigureAwait(false);
            return new GnsProcess(process, ready, directory);
        }
        catch
        {
            await process.DisposeAsync().ConfigureAwait(false);
            Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    /// <summary>Sends SIGTERM and returns the exit code (0 for a clean stop).</summary>
    public Task<int> StopAsync()
    {
        Process.Signal(15);
        return Process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await Process.DisposeAsync().ConfigureAwait(false);
        if (Directory.Exists(_ownedDirectory))
        {
            Directory.Delete(_ownedDirectory, recursive: true);
        }
    }
}
