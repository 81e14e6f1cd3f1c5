using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Mobility.Daemon.Client;
using Mobility.Net.Socks5;
using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Systems.Mobility;

/// <summary>
/// Mobility as users run it: a real <c>gns</c> in the GNS namespace and a real <c>mobilityd</c> in the client and the
/// server namespaces. The server application is a plain TCP listener that the server's mobilityd exposes; the client
/// application is a plain TCP socket through the client mobilityd's SOCKS5 endpoint to <c>&lt;server guid&gt;.guid</c>
/// (what an unmodified application configured with a SOCKS5 proxy, <c>mob connect</c> or <c>mob forward</c> does).
/// The daemons find their addresses on the interfaces and follow them by OS events; the harness never tells them about
/// a move. Detection is read from the daemons' own log line ("Host addresses are now ..."), dated as the harness reads it.
/// </summary>
public sealed class MobilitySystem : IScenarioSystem
{
    /// <summary>How long the server's record may take to reach the GNS after the daemons are ready.</summary>
    public static readonly TimeSpan RegistrationTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long <see cref="ConnectAsync"/> waits for the client daemon's GNS watch of the server to connect. A daemon
    /// started seconds ago is JIT-cold: on the loaded 2-core machine its first watch took over 3 s, longer than the
    /// transfer before the move, so the push of the server's new address was missed. A long-running daemon has its watch
    /// up; the wait makes the run measure that, and the result notes when it timed out.
    /// </summary>
    public static readonly TimeSpan WatchTimeout = TimeSpan.FromSeconds(15);

    /// <summary>When set, the stderr of gns and both daemons is written there after every run (<c>RUN-{gns,client,server}.log</c>).</summary>
    public const string LogDirectoryVariable = "NETLAB_LOGS";

    /// <summary>Peer freshness: how long the third daemon's get_ip may take to answer a server's new address.</summary>
    public static readonly TimeSpan FreshnessTimeout = TimeSpan.FromSeconds(3);

    private Deployment? _deployment;
    private DaemonProcess? _observer;
    private List<double?> _freshness = [];
    private string _scenario = "";
    private bool _movesAfterConnect = true;
    private int _runs;

    public string Name => "mobility";

    /// <summary>The processes of the current run (null before <see cref="PrepareAsync"/>).</summary>
    public Deployment? Current => _deployment;

    public string? Unsupported(Scenario scenario) => null;

    public async Task PrepareAsync(EvaluationTopology topology, Scenario scenario, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topology);
        ArgumentNullException.ThrowIfNull(scenario);
        _scenario = scenario.Name;
        _movesAfterConnect = scenario.Kind != ScenarioKind.BeforeConnect;
        _runs++;
        _observer = null;
        _freshness = [];

        // As docs/transport.md ("The first flight") asks of hosts that accept mobile connections: a new
        // namespace has net.ipv4.tcp_fastopen = 1 (client only), and the listener takes a Resume in the
        // SYN only with the server bit. Set before the daemons start (the listener reads it when it binds).
        foreach (var host in new[] { topology.Client, topology.Server })
        {
            await Ip.SysctlAsync(host.Namespace, "net.ipv4.tcp_fastopen", "3").ConfigureAwait(false);
        }

        _deployment = await Deployment.StartAsync(topology, cancellationToken, scenario.ClientDaemonArguments).ConfigureAwait(false);
        if (scenario.MeasuresPeerFreshness)
        {
            _observer = await StartObserverAsync(topology, _deployment, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Peer freshness: per server move, ms from the address change until the observer's get_ip answered only the new address.</summary>
    public IReadOnlyList<double?>? PeerFreshnessMs => _observer is null ? null : [.. _freshness];

    /// <summary>
    /// The third daemon of the peer-freshness scenario: a mobilityd in the client's namespace (behind the emulated link,
    /// on its own ports) that is in no connection and has looked the server up once, so the server's record is in its
    /// cache before the moves.
    /// </summary>
    private static async Task<DaemonProcess> StartObserverAsync(EvaluationTopology topology, Deployment deployment, CancellationToken cancellationToken)
    {
        var directory = topology.Lab.CreateTemporaryDirectory("observer");
        string[] ports = ["--transport", "0.0.0.0:7396", "--transport-port", "7396", "--control", "0.0.0.0:7395"];
        var observer = await DaemonProcess.StartAsync(topology.Lab, topology.Client, directory, deployment.Gns, socks: false, cancellationToken, ports).ConfigureAwait(false);
        await WaitForRecordAsync(observer, deployment.Server.Guid, topology.Server.PrimaryAddress.ToString(), cancellationToken).ConfigureAwait(false);
        return observer;
    }

    /// <summary>
    /// Asks <paramref name="daemon"/>'s get_ip for <paramref name="guid"/> until it lists <paramref name="expected"/>, for
    /// at most <see cref="RegistrationTimeout"/>. A call that timed out is asked again: on the loaded machine a fresh
    /// daemon's first lookups took longer than the API client's 10 s.
    /// </summary>
    private static async Task WaitForRecordAsync(DaemonProcess daemon, string guid, string expected, CancellationToken cancellationToken)
    {
        using var api = new DaemonClient(daemon.ApiSocket, TimeSpan.FromSeconds(10));
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(RegistrationTimeout);
        while (true)
        {
            try
            {
                if ((await api.GetIpAddressesAsync(guid, deadline.Token).ConfigureAwait(false)).Contains(expected))
                {
                    return;
                }
            }
            catch (DaemonApiException) when (!deadline.IsCancellationRequested)
            {
                // Asked again below.
            }

            await Task.Delay(100, deadline.Token).ConfigureAwait(false);
        }
    }

    public async Task<IScenarioListener> ListenAsync(EvaluationTopology topology, int port, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topology);
        var deployment = _deployment ?? throw new InvalidOperationException("PrepareAsync first");
        var socket = LabSockets.Create(topology.Server.Namespace, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            socket.Listen(16);
            await ExposeAsync(deployment.Server, port, cancellationToken).ConfigureAwait(false);
            return new DaemonListener(socket, deployment.Server, deployment.StartedAt);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Connects through the client daemon's SOCKS5 endpoint to <c>&lt;server guid&gt;.guid:port</c>; the address in <paramref name="server"/> is not used.</summary>
    public async Task<IScenarioConnection> ConnectAsync(EvaluationTopology topology, IPEndPoint server, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topology);
        ArgumentNullException.ThrowIfNull(server);
        var deployment = _deployment ?? throw new InvalidOperationException("PrepareAsync first");
        var socks = deployment.Client.Socks ?? throw new InvalidOperationException("the client daemon has no SOCKS5 endpoint");
        var socket = await Socks5Client.OpenAsync(socks, deployment.Server.Guid + ".guid", checked((ushort)server.Port), cancellationToken,
            _ =>
            {
                var client = LabSockets.Create(topology.Client.Namespace, ProtocolType.Tcp);
                client.NoDelay = true;
                return client;
            }).ConfigureAwait(false);
        try
        {
            // Only when a move is still to come (connect_ms of connection-time mobility must not include the wait).
            if (_movesAfterConnect)
            {
                deployment.WatchReady = await deployment.Client.WaitForWatchAsync(WatchTimeout, cancellationToken).ConfigureAwait(false);
            }

            return new DaemonConnection(socket, deployment.Client, deployment.StartedAt);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// What <c>mob expose PORT</c> does: <c>POST /v1/exposed</c> over the daemon's Unix socket. Tried three times: on the
    /// loaded machine one call once ended without a response and then hit the 10 s client timeout.
    /// </summary>
    public static async Task ExposeAsync(DaemonProcess daemon, int port, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(daemon);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var api = new DaemonClient(daemon.ApiSocket, TimeSpan.FromSeconds(10));
                await api.ExposeAsync(port, allow: null, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (attempt < 3 && (e is HttpRequestException or IOException or DaemonApiException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested)))
            {
                await Task.Delay(200, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Nothing for the daemons: mobilityd must notice the address change itself. In the peer-freshness scenario, after a
    /// server move, asks the observer's get_ip every 5 ms until it answers the new address and not the old one (or
    /// <see cref="FreshnessTimeout"/> passes) and records how long that took from the address change.
    /// </summary>
    public async Task OnMovedAsync(EvaluationTopology topology, MoveRecord move, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topology);
        ArgumentNullException.ThrowIfNull(move);
        if (_observer is not { } observer || _deployment is not { } d || move.Host != topology.Server.Role || move.To is null || move.From is null)
        {
            return;
        }

        var added = (move.ToAddress ?? topology.Server.Interface(move.To).Address).ToString();
        var removed = (move.FromAddress ?? topology.Server.Interface(move.From).Address).ToString();
        using var api = new DaemonClient(observer.ApiSocket, TimeSpan.FromSeconds(10));
        while (Stopwatch.GetElapsedTime(move.AttachedAt) < FreshnessTimeout)
        {
            var answer = await api.GetIpAddressesAsync(d.Server.Guid, cancellationToken).ConfigureAwait(false);
            if (answer.Contains(added) && !answer.Contains(removed))
            {
                _freshness.Add(Math.Round(Stopwatch.GetElapsedTime(move.AttachedAt).TotalMilliseconds, 1));
                return;
            }

            await Task.Delay(5, cancellationToken).ConfigureAwait(false);
        }

        _freshness.Add(null);
    }

    public async Task<string?> DescribeRunAsync(EvaluationTopology topology, CancellationToken cancellationToken)
    {
        if (_deployment is not { } d)
        {
            return null;
        }

        if (System.Environment.GetEnvironmentVariable(LogDirectoryVariable) is { Length: > 0 } logs)
        {
            Directory.CreateDirectory(logs);
            var run = $"{_runs:00}-{_scenario}-{topology?.LinkOptions?.Delay.TotalMilliseconds * 2:0}ms";
            await File.WriteAllTextAsync(Path.Combine(logs, run + "-gns.log"), d.Gns.Process.StandardError, cancellationToken).ConfigureAwait(false);
            await File.WriteAllTextAsync(Path.Combine(logs, run + "-client.log"), d.Client.Process.StandardError, cancellationToken).ConfigureAwait(false);
            await File.WriteAllTextAsync(Path.Combine(logs, run + "-server.log"), d.Server.Process.StandardError, cancellationToken).ConfigureAwait(false);
        }

        var watch = d.WatchReady ? "" : $"; client's GNS watch not connected {WatchTimeout.TotalSeconds:0} s after connect";
        return $"{d.Client.Describe(d.StartedAt)}; {d.Server.Describe(d.StartedAt)}{watch}";
    }

    /// <summary>Each daemon's move timelines (<c>GET /v1/status</c>, <c>connections[].timeline</c>): client first, then server.</summary>
    public async Task<IReadOnlyList<MoveBreakdown>?> MoveTimelineAsync(DateTimeOffset moveStartedAt, CancellationToken cancellationToken)
    {
        if (_deployment is not { } d)
        {
            return null;
        }

        var moves = new List<MoveBreakdown>();
        foreach (var (side, daemon) in new[] { ("client", d.Client), ("server", d.Server) })
        {
            try
            {
                using var api = new DaemonClient(daemon.ApiSocket, TimeSpan.FromSeconds(10));
                var status = await api.GetStatusAsync(cancellationToken).ConfigureAwait(false);
                moves.AddRange(MoveBreakdown.FromStatus(side, status, moveStartedAt));
            }
            catch (DaemonApiException)
            {
                // A daemon that cannot answer leaves its side out; the notes say how it ended.
            }
        }

        return moves;
    }

    /// <summary>gns and the two daemons of one run; all of them belong to the topology's lab.</summary>
    public sealed class Deployment
    {
        private Deployment(GnsProcess gns) => Gns = gns;

        public GnsProcess Gns { get; }

        public required DaemonProcess Client { get; init; }

        public required DaemonProcess Server { get; init; }

        /// <summary>When both daemons were ready and the server registered (Stopwatch timestamp).</summary>
        public required long StartedAt { get; init; }

        /// <summary>Whether the client daemon's GNS watch was connected when the connection was handed to the application.</summary>
        public bool WatchReady { get; set; } = true;

        /// <param name="clientArguments">Extra arguments of the client's mobilityd (<see cref="Scenario.ClientDaemonArguments"/>).</param>
        public static async Task<Deployment> StartAsync(EvaluationTopology topology, CancellationToken cancellationToken, IReadOnlyList<string>? clientArguments = null)
        {
            ArgumentNullException.ThrowIfNull(topology);
            var lab = topology.Lab;
            var root = lab.CreateTemporaryDirectory("mobility");
            var gns = await GnsProcess.StartAsync(lab, topology.Gns, Path.Combine(root, "gns"), cancellationToken).ConfigureAwait(false);
            var serverStart = DaemonProcess.StartAsync(lab, topology.Server, Path.Combine(root, "server"), gns, socks: false, cancellationToken);
            var clientStart = DaemonProcess.StartAsync(lab, topology.Client, Path.Combine(root, "client"), gns, socks: true, cancellationToken, clientArguments);
            var server = await serverStart.ConfigureAwait(false);
            var client = await clientStart.ConfigureAwait(false);

            // The server's record must be in the GNS before anyone connects by GUID: ask through the client's daemon.
            await WaitForRecordAsync(client, server.Guid, topology.Server.PrimaryAddress.ToString(), cancellationToken).ConfigureAwait(false);

            return new Deployment(gns) { Client = client, Server = server, StartedAt = Stopwatch.GetTimestamp() };
        }
    }

    private sealed class DaemonConnection(Socket socket, DaemonProcess daemon, long since) : IScenarioConnection
    {
        public Stream Stream { get; } = new NetworkStream(socket, ownsSocket: true);

        /// <summary>When this end's daemon reported its first address change after the deployment was ready (its start-up addresses do not count).</summary>
        public long? MoveDetectedAt => daemon.AddressChangeAfter(since);

        public ValueTask DisposeAsync() => Stream.DisposeAsync();
    }

    private sealed class DaemonListener(Socket socket, DaemonProcess daemon, long since) : IScenarioListener
    {
        public async Task<IScenarioConnection> AcceptAsync(CancellationToken cancellationToken)
        {
            var accepted = await socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
            accepted.NoDelay = true;
            return new DaemonConnection(accepted, daemon, since);
        }

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
