using System.Net;

namespace Mobility.Testing;

/// <summary>
/// The real <c>mobility-relay</c> executable as a child process, found by <see cref="Executables.Locate"/>;
/// waits for its ready line and exposes its endpoints. SIGTERM (then SIGKILL) on dispose.
/// </summary>
public sealed class RelayProcess(TestProcess process, ReadyLine ready) : IAsyncDisposable
{
    public TestProcess Process { get; } = process;

    public ReadyLine Ready { get; } = ready;

    /// <summary>The plain TCP endpoint.</summary>
    public IPEndPoint Tcp => Ready.EndPoint("tcp") ?? throw new InvalidOperationException("This relay runs without TCP: " + Ready.Text);

    /// <summary>The base of <c>GET /metrics</c>.</summary>
    public Uri Metrics => Ready.Url("metrics") ?? throw new InvalidOperationException("This relay runs without --metrics: " + Ready.Text);

    /// <summary>Starts <c>mobility-relay serve</c> on a free loopback port (or <paramref name="listen"/>) with metrics, plus <paramref name="extra"/> arguments.</summary>
    public static async Task<RelayProcess> StartAsync(string listen = "127.0.0.1:0", IEnumerable<string>? extra = null, IDictionary<string, string>? environment = null)
    {
        string[] arguments = ["serve", "--listen", listen, "--metrics", "127.0.0.1:0", .. extra ?? []];
        var process = TestProcess.Start(Executables.Locate("mobility-relay", "Mobility.Relay.Host"), arguments, environment);
        try
        {
            return new RelayProcess(process, await process.WaitForReadyLineAsync(ReadyLine.RelayPrefix).ConfigureAwait(false));
        }
        catch
        {
            await process.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>One counter or gauge of <c>GET /metrics</c> (its line <c>NAME VALUE</c>).</summary>
    public async Task<long> MetricAsync(string name)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(new Uri(Metrics, "/metrics")).ConfigureAwait(false);
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(name + " ", StringComparison.Ordinal))
                   ?? throw new InvalidOperationException($"No {name} in the relay's metrics: {text}");
        return long.Parse(line[(name.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    public ValueTask DisposeAsync() => Process.DisposeAsync();
}
