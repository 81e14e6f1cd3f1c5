using System.Net;

namespace Mobility.Testing;

/// <summary>
/// The real <c>mobilityd</c> executable as a child process (<c>dotnet mobilityd.dll ...</c>), found by
/// <see cref="Executables.Locate"/>. <see cref="WaitReadyAsync"/> waits for the ready line
/// (docs/mobilityd.md) and parses it; dispose stops it with SIGTERM (then SIGKILL).
/// </summary>
public sealed class MobilitydProcess : IAsyncDisposable
{
    private MobilitydProcess(TestProcess process) => Process = process;

    public TestProcess Process { get; }

    /// <summary>The parsed ready line, once <see cref="WaitReadyAsync"/> returned.</summary>
    public ReadyLine? Ready { get; private set; }

    public string StandardError => Process.StandardError;

    /// <summary>A field of the ready line, e.g. "http" or "socket".</summary>
    public string Field(string name) => (Ready ?? throw new InvalidOperationException("mobilityd is not ready yet.")).Require(name);

    public IPEndPoint EndPoint(string name) => (Ready ?? throw new InvalidOperationException("mobilityd is not ready yet.")).EndPoint(name) ?? throw new InvalidOperationException($"mobilityd runs with {name} off.");

    /// <summary>Starts mobilityd (as <paramref name="user"/> through setpriv when given); does not wait.</summary>
    /// Port mapping is off unless the caller's environment turns it on: a test daemon in this machine's own network
    /// namespace must never ask the machine's real gateway for a mapping (tests behind a NAT use the netlab's routers).
    public static MobilitydProcess Start(IEnumerable<string> arguments, IDictionary<string, string>? environment = null, string? user = null)
    {
        var env = new Dictionary<string, string>(environment ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        env.TryAdd("MOBILITYD_Nat__PortMapping", "false");
        return new(TestProcess.Start(Executables.Locate("mobilityd", "Mobility.Daemon.Host"), arguments, env, user));
    }

    /// <summary>Starts mobilityd and waits for its ready line.</summary>
    public static async Task<MobilitydProcess> StartReadyAsync(IEnumerable<string> arguments, IDictionary<string, string>? environment = null)
    {
        var daemon = Start(arguments, environment);
        try
        {
            await daemon.WaitReadyAsync().ConfigureAwait(false);
            return daemon;
        }
        catch
        {
            await daemon.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Waits for the ready line and returns it whole; fails with stderr when mobilityd exits first.</summary>
    public async Task<string> WaitReadyAsync()
    {
        Ready = await Process.WaitForReadyLineAsync(ReadyLine.MobilitydPrefix).ConfigureAwait(false);
        return Ready.Text;
    }

    /// <summary>Sends SIGTERM and returns the exit code.</summary>
    public Task<int> StopAsync()
    {
        Process.Signal(15);
        return Process.WaitForExitAsync();
    }

    public Task<int> WaitForExitAsync() => Process.WaitForExitAsync();

    public ValueTask DisposeAsync() => Process.DisposeAsync();
}
