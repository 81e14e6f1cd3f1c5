using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Mobility.Daemon.Client;
using Mobility.Net.Socks5;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Systems;
using Mobility.Netlab.Systems.Mobility;
using Mobility.Netlab.Topology;
using Mobility.Netlab.Traffic;

namespace Mobility.Netlab.Scenarios;

/// <summary>
/// Runs <see cref="NatScenario"/>s as users run mobility today: a real gns on a public host, a real mobilityd for the
/// client and for the server (public or behind their NATs), the application's bytes through the client daemon's SOCKS5
/// endpoint to <c>&lt;server guid&gt;.guid</c>. A paced stream of numbered chunks (1 KiB every 5 ms) gives stall and
/// bytes lost around the NAT event. No emulated delay: the links are veth pairs.
/// </summary>
public sealed class NatScenarioRunner(TextWriter? log = null)
{
    public const int Port = 5001;

    /// <summary>Steady transfer before the NAT event, and after it.</summary>
    public TimeSpan Before { get; init; } = TimeSpan.FromSeconds(2);

    public TimeSpan After { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>A connection that has not delivered everything this long after the event is broken.</summary>
    public TimeSpan Deadline { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the SOCKS5 connect may take before it counts as failed.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(20);

    public async Task<IReadOnlyList<NatScenarioResult>> RunAllAsync(IReadOnlyList<NatScenario> scenarios, int runs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scenarios);
        var results = new List<NatScenarioResult>();
        foreach (var scenario in scenarios)
        {
            for (var run = 1; run <= runs; run++)
            {
                log?.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {scenario.Name} run {run}/{runs}");
                var result = await RunAsync(scenario, cancellationToken).ConfigureAwait(false);
                log?.WriteLine($"  => {result.Outcome}, connect={result.ConnectMs?.ToString("0", CultureInfo.InvariantCulture) ?? "-"} ms, stall={result.StallMs?.ToString("0", CultureInfo.InvariantCulture) ?? "-"} ms, lost={result.BytesLost} B");
                results.Add(result);
            }
        }

        return results;
    }

    public async Task<NatScenarioResult> RunAsync(NatScenario scenario, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        string[] publicHosts = ["gns", .. scenario.Client is null ? ["client"] : Array.Empty<string>(), .. scenario.Server is null ? ["server"] : Array.Empty<string>()];
        NatSiteOptions[] sites = [.. new[] { scenario.Client, scenario.Server }.OfType<NatSiteOptions>()];
        var topology = await NatTopology.CreateAsync(publicHosts, sites, log).ConfigureAwait(false);
        await using (topology.ConfigureAwait(false))
        {
            return await RunInTopologyAsync(topology, scenario, cancellationToken).ConfigureAwait(false);
        }
    }

    private static LabHost HostOf(NatTopology topology, NatSiteOptions? site, string role) => site is null ? topology.Public(role) : topology.Site(role).Host;

    /// <summary>The address peers on the internet reach <paramref name="role"/> at: its own, or its NAT's.</summary>
    private static IPAddress OutsideAddressOf(NatTopology topology, NatSiteOptions? site, string role) =>
        site is null ? topology.Public(role).PrimaryAddress : topology.Site(role).PublicAddress;

    private async Task<NatScenarioResult> RunInTopologyAsync(NatTopology topology, NatScenario scenario, CancellationToken cancellationToken)
    {
        var lab = topology.Lab;
        var root = lab.CreateTemporaryDirectory("nat");
        var clientHost = HostOf(topology, scenario.Client, "client");
        var serverHost = HostOf(topology, scenario.Server, "server");
        var gns = await GnsProcess.StartAsync(lab, topology.Public("gns"), Path.Combine(root, "gns"), cancellationToken).ConfigureAwait(false);
        await WarmUpAsync(topology.Public("gns"), gns, root, cancellationToken).ConfigureAwait(false);
        var serverStart = DaemonProcess.StartAsync(lab, serverHost, Path.Combine(root, "server"), gns, socks: false, cancellationToken);
        var client = await DaemonProcess.StartAsync(lab, clientHost, Path.Combine(root, "client"), gns, socks: true, cancellationToken).ConfigureAwait(false);
        var server = await serverStart.ConfigureAwait(false);

        // Both records in the GNS with the address the internet sees (a NATed host's is its Observed locator); only then
        // does anyone look them up, so no daemon caches a record from before the observed address was known.
        await WaitForPublishedAsync(client, OutsideAddressOf(topology, scenario.Client, "client"), cancellationToken).ConfigureAwait(false);
        await WaitForPublishedAsync(server, OutsideAddressOf(topology, scenario.Server, "server"), cancellationToken).ConfigureAwait(false);
        string clientAddresses;
        using (var api = new DaemonClient(server.ApiSocket, TimeSpan.FromSeconds(10)))
        {
            clientAddresses = string.Join(' ', await api.GetIpAddressesAsync(client.Guid, cancellationToken).ConfigureAwait(false));
        }

        var (listener, socket, failure, elapsed) = await ExposeAndConnectAsync(server, serverHost, client, clientHost, ConnectTimeout, cancellationToken).ConfigureAwait(false);
        using var _ = listener;
        if (socket is null)
        {
            return new NatScenarioResult
            {
                Scenario = scenario.Name,
                Outcome = failure!,
                ConnectMs = Math.Round(elapsed, 1),
                ClientAddresses = clientAddresses,
                MobConnectError = await MobConnectErrorAsync(clientHost, client, server.Guid, cancellationToken).ConfigureAwait(false),
                Notes = $"{client.Describe(0)}; {server.Describe(0)}",
            };
        }

        var connectMs = Math.Round(elapsed, 1);
        using var accepted = await listener.AcceptAsync(cancellationToken).AsTask().WaitAsync(ConnectTimeout, cancellationToken).ConfigureAwait(false);
        var clientStream = new NetworkStream(socket, ownsSocket: true);
        await using var clientScope = clientStream.ConfigureAwait(false);
        var serverStream = new NetworkStream(accepted, ownsSocket: false);
        await using var serverScope = serverStream.ConfigureAwait(false);
        var result = await TransferAsync(topology, scenario, clientStream, serverStream, connectMs, clientAddresses, cancellationToken).ConfigureAwait(false);
        return result with { Notes = $"{client.Describe(0)}; {server.Describe(0)}" };
    }

    private async Task<NatScenarioResult> TransferAsync(NatTopology topology, NatScenario scenario, Stream clientStream, Stream serverStream, double connectMs,
        string clientAddresses, CancellationToken cancellationToken)
    {
        using var run = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        run.CancelAfter(Before + After + Deadline + TimeSpan.FromSeconds(5));
        var sender = new ChunkSender(clientStream, TimeSpan.FromMilliseconds(5));
        var receiver = new ChunkReceiver(serverStream);
        var receiving = Task.Run(() => receiver.RunAsync(run.Token), CancellationToken.None);
        var sending = Task.Run(() => sender.RunAsync(Before + After, run.Token), CancellationToken.None);
        await Task.Delay(Before, cancellationToken).ConfigureAwait(false);

        var eventAt = Stopwatch.GetTimestamp();
        if (scenario.Event != NatEvent.None)
        {
            var nat = topology.Site("client");
            await (scenario.Event == NatEvent.FlushMappings ? nat.FlushMappingsAsync(cancellationToken) : nat.ChangePortRangeAsync(20000, 20999, cancellationToken)).ConfigureAwait(false);
        }

        var deadline = Stopwatch.GetTimestamp() + (long)((After + Deadline).TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline && !(sending.IsCompleted && receiver.UniqueCount >= sender.ChunksWritten) && !receiving.IsCompleted)
        {
            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }

        await run.CancelAsync().ConfigureAwait(false);
        var sent = await sending.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        var end = await receiving.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        var report = receiver.Report(end);
        var missing = StallAnalysis.MissingChunks(report.Arrivals, sent.ChunksWritten);
        var intact = missing == 0 && report.Corrupt == 0 && sent.Error is null && end == "open at deadline";
        var stall = intact && scenario.Event != NatEvent.None ? StallAnalysis.StallMs(report.Arrivals, eventAt) : null;
        return new NatScenarioResult
        {
            Scenario = scenario.Name,
            Outcome = !intact ? (end == "open at deadline" ? $"hang: {missing} chunks missing {Deadline.TotalSeconds:0} s after the event" : $"broken: {end}; sender: {sent.Error ?? "ok"}")
                : scenario.Event == NatEvent.None ? "connected" : "survived",
            Connected = true,
            Intact = intact,
            ConnectMs = connectMs,
            StallMs = stall is { } s ? Math.Round(s, 1) : null,
            BaselineGapP99Ms = StallAnalysis.BaselineGapP99Ms(report.Arrivals, eventAt) is { } floor ? Math.Round(floor, 1) : null,
            BytesLost = missing * Chunks.Size,
            BytesDuplicated = report.Duplicates * Chunks.Size,
            ClientAddresses = clientAddresses,
        };
    }

    /// <summary>
    /// Exposes <see cref="Port"/> of <paramref name="server"/> (a listener on loopback in its namespace, returned for the
    /// caller to accept on and dispose) and opens a SOCKS5 connection to <c>&lt;server guid&gt;.guid</c> from
    /// <paramref name="clientHost"/> through <paramref name="client"/>: the socket, or null and why the connect failed, and the time it took (ms).
    /// </summary>
    internal static async Task<(Socket Listener, Socket? Socket, string? Failure, double Ms)> ExposeAndConnectAsync(DaemonProcess server, LabHost serverHost,
        DaemonProcess client, LabHost clientHost, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var listener = LabSockets.Create(serverHost.Namespace, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, Port));
        listener.Listen(4);
        await MobilitySystem.ExposeAsync(server, Port, cancellationToken).ConfigureAwait(false);
        var start = Stopwatch.GetTimestamp();
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            connect.CancelAfter(timeout);
            var socket = await Socks5Client.OpenAsync(client.Socks!, server.Guid + ".guid", Port, connect.Token,
                _ => LabSockets.Create(clientHost.Namespace, ProtocolType.Tcp)).ConfigureAwait(false);
            return (listener, socket, null, StallAnalysis.Ms(Stopwatch.GetTimestamp() - start));
        }
        catch (Exception e) when (e is Socks5ReplyException or IOException or SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            var failure = "connect failed: " + (e is Socks5ReplyException reply ? $"SOCKS5 reply {reply.Reply}" : e.GetType().Name);
            return (listener, null, failure, StallAnalysis.Ms(Stopwatch.GetTimestamp() - start));
        }
    }

    /// <summary>Waits until <paramref name="daemon"/> logged that it published a record with a locator at <paramref name="expected"/>.</summary>
    private static Task WaitForPublishedAsync(DaemonProcess daemon, IPAddress expected, CancellationToken cancellationToken)
        => WaitForPublishedAsync(daemon, expected + ":", cancellationToken);

    /// <summary>Waits until <paramref name="daemon"/> logged that it published a record whose locators contain <paramref name="at"/> (e.g. <c>198.18.2.2:7395/relay</c>).</summary>
    internal static async Task WaitForPublishedAsync(DaemonProcess daemon, string at, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(MobilitySystem.RegistrationTimeout.TotalSeconds * Stopwatch.Frequency);
        while (!daemon.Process.StandardError.Split('\n').Any(line => line.Contains("Published record version", StringComparison.Ordinal)
                   && line.Split("(GNS saw us", 2)[0].Contains(at, StringComparison.Ordinal)))
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"{daemon.Host.Role}'s mobilityd published no record with {at} in {MobilitySystem.RegistrationTimeout.TotalSeconds:0} s; its log: {daemon.Process.StandardError[^Math.Min(2000, daemon.Process.StandardError.Length)..]}");
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The first update a fresh gns handles can take longer than a daemon's 0.5 s datagram timeout on a loaded machine:
    /// the daemon retransmits, the retransmission is refused as stale, and the daemon counts that as its own earlier
    /// success, without the reflexive address the lost ack carried. It then publishes no Observed locator until its
    /// next publish (seen here: "GNS saw us as -"). One registration of a throwaway identity warms gns up first.
    /// </summary>
    internal static async Task WarmUpAsync(LabHost gnsHost, GnsProcess gns, string root, CancellationToken cancellationToken)
    {
        var key = Path.Combine(root, "warm-up.key");
        foreach (var arguments in new[] { new[] { "id", "new", "--key", key }, ["gns", "register", "--gns", gns.Udp.ToString(), "--key", key, "--addr", $"{gnsHost.PrimaryAddress}:1"] })
        {
            var result = await MobAsync(gnsHost, arguments, cancellationToken).ConfigureAwait(false);
            if (!result.Succeeded)
            {
                throw new CommandFailedException($"mob {string.Join(' ', arguments)}: {result.StandardError.Trim()}");
            }
        }
    }

    /// <summary>What a user sees: <c>mob connect</c> (ssh's ProxyCommand) to the server through the client daemon.</summary>
    private static async Task<string> MobConnectErrorAsync(LabHost clientHost, DaemonProcess client, string serverGuid, CancellationToken cancellationToken)
    {
        var result = await MobAsync(clientHost, ["connect", "--socks", client.Socks!.ToString(), serverGuid + ".guid", Port.ToString(CultureInfo.InvariantCulture)], cancellationToken).ConfigureAwait(false);
        return $"exit {result.ExitCode}: {result.StandardError.Trim()}";
    }

    private static Task<CommandResult> MobAsync(LabHost host, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var (mob, prefix) = MobilityExecutables.Mob();
        return CommandRunner.RunAsync("ip", ["netns", "exec", host.Namespace, mob, .. prefix, .. arguments], TimeSpan.FromSeconds(60), cancellationToken, standardInput: "");
    }
}
