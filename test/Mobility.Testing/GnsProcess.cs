using System.Net;

namespace Mobility.Testing;

/// <summary>
/// The real <c>gns</c> executable as a child process (<c>dotnet gns.dll serve ...</c>), found by
/// <see cref="Executables.Locate"/>; waits for its ready line and exposes the real ports from it.
/// Stops with SIGTERM (then SIGKILL) on dispose.
/// </summary>
public sealed class GnsProcess : IAsyncDisposable
{
    private readonly string? _ownedDirectory;

    private GnsProcess(TestProcess process, ReadyLine ready, string? ownedDirectory)
    {
        Process = process;
        Ready = ready;
        _ownedDirectory = ownedDirectory;
    }

    public TestProcess Process { get; }

    public ReadyLine Ready { get; }

    public IPEndPoint Udp => Ready.EndPoint("udp");

    /// <summary>The HTTP/JSON endpoint (IP:PORT).</summary>
    public IPEndPoint Http => IPEndPoint.Parse(new Uri(Ready["http"]).Authority);

    /// <summary>The gRPC base address, or null when gRPC is off.</summary>
    public Uri? Grpc => Ready.Url("grpc");

    public string Store => Ready["store"];

    /// <summary>What the server wrote to stderr (its log), for failure messages.</summary>
    public string Log => Process.StandardError;

    /// <summary>A server with an in-memory store and every endpoint on a free loopback port.</summary>
    public static Task<GnsProcess> StartInMemoryAsync()
        => StartAsync(["serve", "--memory", "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]);

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

    public async ValueTask DisposeAsync()
    {
        await Process.DisposeAsync().ConfigureAwait(false);
        if (_ownedDirectory is not null && Directory.Exists(_ownedDirectory))
        {
            Directory.Delete(_ownedDirectory, recursive: true);
        }
    }
}
