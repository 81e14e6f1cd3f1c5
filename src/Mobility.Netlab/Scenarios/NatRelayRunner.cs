using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Mobility.Daemon.Client;
using Mobility.Netlab.Systems;
using Mobility.Netlab.Systems.Mobility;
using Mobility.Netlab.Topology;
using Mobility.Netlab.Traffic;

namespace Mobility.Netlab.Scenarios;

/// <summary>
/// One relayed situation of docs/nat.md ("Through a relay"): the server behind a NAT of <see cref="Kind"/> without a
/// port forward, the client behind one of <see cref="ClientKind"/> (default: the same), each with a second NAT of the
/// same kind to move to. With <see cref="Tls"/> the relay also serves TLS on port 443 with a self-signed certificate
/// made by openssl, and the server registers there (<c>--relay tls://RELAY:443 --relay-pin SHA256</c>); the GNS serves TLS on
/// its port 443 too, and the server sends every GNS request there (<c>--gns-tls tls://GNS:443 --gns-pin SHA256 --gns-tls-only</c>).
/// <see cref="Sites"/> and <see cref="Moves"/> replace those sites (roles <c>server</c> and <c>client</c> are the
/// hosts' first sites) and the moves (the server to <c>server2</c>, then the client to <c>client2</c>).
/// </summary>
public sealed record NatRelayScenario(string Name, string Description, NatKind Kind, NatKind? ClientKind = null, bool Tls = false)
{
    /// <summary>The NAT sites; null: the server's and the client's two sites of <see cref="Kind"/> and <see cref="ClientKind"/>.</summary>
    public IReadOnlyList<NatSiteOptions>? Sites { get; init; }

    /// <summary>The moves, each when its share of the bytes has arrived (move k of n at k/(n+1)); null: the server's, then the client's.</summary>
    public IReadOnlyList<NatRelayMove>? Moves { get; init; }

    public static readonly NatRelayScenario Masquerade = new("nat-relay-masquerade",
        "server and client behind masquerade without forwards, server registered at a relay; server moves to another NAT, then the client", NatKind.EndpointIndependent);

    public static readonly NatRelayScenario RandomFully = new("nat-relay-random-fully",
        "as nat-relay-masquerade with masquerade random-fully (address-and-port-dependent mapping) at every NAT", NatKind.Symmetric);

    public static readonly NatRelayScenario HttpsOnly = new("nat-relay-https-only",
        "as nat-relay-masquerade, but the server's networks let only TCP 443 out: it registers over TLS (pinned certificate) at the relay's port 443 and speaks to the GNS over TLS on its port 443",
        NatKind.HttpsOnly, NatKind.EndpointIndependent, Tls: true);

    public static readonly NatRelayScenario Double = new("nat-relay-double",
        "as nat-relay-masquerade, but every network is a double NAT (carrier-grade NAT, 100.64.j.0/24 inside, in front of a home router): the server moves to another double NAT, then the client",
        NatKind.Double);

    public static readonly NatRelayScenario Simultaneous = new("nat-relay-simultaneous",
        "server and client behind masquerade, server registered at a relay; both move to another NAT at the same moment", NatKind.EndpointIndependent)
    {
        Moves = [new("both", [new("server", "server", "server2"), new("client", "client", "client2")])],
    };

    public static readonly NatRelayScenario PublicAndBack = new("nat-relay-public-and-back",
        "server and client behind masquerade, server registered at a relay; the server moves to a public address and back behind its NAT, then the client does the same",
        NatKind.EndpointIndependent)
    {
        Sites = [.. Roaming("server", "server-public", NatKind.None), .. Roaming("client", "client-public", NatKind.None)],
        Moves =
        [
            new("server to public", [new("server", "server", "server-public")]),
            new("server back behind nat", [new("server", "server-public", "server")]),
            new("client to public", [new("client", "client", "client-public")]),
            new("client back behind nat", [new("client", "client-public", "client")]),
        ],
    };

    public static readonly NatRelayScenario SameNatNoHairpin = new("nat-relay-same-nat",
        "server and client behind the same masquerade NAT (two LAN ports, no hairpinning), server registered at a relay; then the server moves to another NAT",
        NatKind.EndpointIndependent)
    {
        Sites = [.. Roaming("server", "server2", NatKind.EndpointIndependent), new NatSiteOptions { Role = "client", SameNatAs = "server" }],
        Moves = [new("server to another nat", [new("server", "server", "server2")])],
    };

    public static readonly NatRelayScenario PublicClient = new("nat-relay-public-client",
        "a public client (no NAT: its record publishes its transport listener) and a server behind masquerade without a forward, registered at a relay: " +
        "the connection starts relayed and goes direct when the server dials the client (connection reversal); no moves",
        NatKind.EndpointIndependent, NatKind.None)
    {
        Sites = [new NatSiteOptions { Role = "server", Kind = NatKind.EndpointIndependent }, new NatSiteOptions { Role = "client", Kind = NatKind.None }],
        Moves = [],
    };

    public static readonly NatRelayScenario PublicClientRandomFully = new("nat-relay-public-client-random-fully",
        "as nat-relay-public-client with the server behind masquerade random-fully (a port per destination): no punch can meet, " +
        "the server's own dial (connection reversal) is the only direct path; no moves",
        NatKind.Symmetric, NatKind.None)
    {
        Sites = [new NatSiteOptions { Role = "server", Kind = NatKind.Symmetric }, new NatSiteOptions { Role = "client", Kind = NatKind.None }],
        Moves = [],
    };

    /// <summary>A host's first site <paramref name="host"/> behind masquerade and the site <paramref name="next"/> (of <paramref name="nextKind"/>) it can move to.</summary>
    private static NatSiteOptions[] Roaming(string host, string next, NatKind nextKind) =>
        [new NatSiteOptions { Role = host, Kind = NatKind.EndpointIndependent }, new NatSiteOptions { Role = next, HostRole = host, Kind = nextKind }];

    public static IReadOnlyList<NatRelayScenario> All { get; } =
        [Masquerade, RandomFully, HttpsOnly, Double, Simultaneous, PublicAndBack, SameNatNoHairpin, PublicClient, PublicClientRandomFully];
}

/// <summary>One step of a scenario: one or more hosts (<c>server</c>, <c>client</c>) leave one NAT site for another, all at once.</summary>
public sealed record NatRelayMove(string Name, IReadOnlyList<NatRelayHostMove> Hosts);

/// <summary>The host of role <paramref name="Host"/> moves from site <paramref name="From"/>'s network to site <paramref name="To"/>'s.</summary>
public sealed record NatRelayHostMove(string Host, string From, string To);

/// <summary>One step's outcome: the longest gap between arrivals from its start until the next step, and the client's path at the end of it.</summary>
public sealed record NatRelayMoveResult(string Move, double? StallMs, string? PathAfter);

/// <summary>One run of a <see cref="NatRelayScenario"/> (a row of nat-relay.json).</summary>
public sealed record NatRelayResult
{
    public required string Scenario { get; init; }

    /// <summary><c>survived</c> (every byte arrived once, SHA-256 equal, both moves done), or how it failed.</summary>
    public required string Outcome { get; init; }

    public bool Intact { get; init; }

    /// <summary>From the SOCKS5 request to the client daemon's "succeeded" reply (GNS lookup, relay dial, mobile handshake).</summary>
    public double? ConnectMs { get; init; }

    /// <summary>From the SOCKS5 request until the server's application read the first byte.</summary>
    public double? TimeToFirstByteMs { get; init; }

    /// <summary>
    /// The client connection's path right after the connect (<c>GET /v1/status</c>, its remote endpoint): <c>relayed</c>
    /// (the relay's address), <c>direct-private</c> (a private address: the peer's own LAN address), <c>direct</c> (any other), or <c>none</c>.
    /// </summary>
    public string? PathKind { get; init; }

    /// <summary>From the SOCKS5 request until the client's connection first showed a direct path (its status, polled every 20 ms); null: never.</summary>
    public double? TimeUntilDirectMs { get; init; }

    /// <summary>
    /// From the SOCKS5 request until the client daemon logged its direct path active (event 9101, its log's wall-clock
    /// time against the request's): the status poll behind <see cref="TimeUntilDirectMs"/> waits for the daemon's API,
    /// which answered up to a second late on a loaded machine.
    /// </summary>
    public double? DirectLoggedMs { get; init; }

    /// <summary>The client connection's path kind with the last share of the bytes on its way (as <see cref="PathKind"/>).</summary>
    public string? PathAtEnd { get; init; }

    /// <summary>Each move's stall and the path after it, in order.</summary>
    public IReadOnlyList<NatRelayMoveResult> Moves { get; init; } = [];

    /// <summary>Longest gap between arrivals from the server's move until the client's.</summary>
    public double? ServerMoveStallMs { get; init; }

    /// <summary>Longest gap between arrivals after the client's move.</summary>
    public double? ClientMoveStallMs { get; init; }

    /// <summary>The noise floor: 99th percentile of the gaps between reads before the server's move.</summary>
    public double? BaselineGapP99Ms { get; init; }

    public long BytesSent { get; init; }

    public long BytesReceived { get; init; }

    /// <summary>Bytes sent that never arrived (negative: arrived twice).</summary>
    public long BytesLost => BytesSent - BytesReceived;

    /// <summary>Whether the SHA-256 of the bytes received equals that of the bytes sent.</summary>
    public bool HashEqual { get; init; }

    /// <summary>How often the server's daemon registered at its relay (once at start, again after its move).</summary>
    public int ServerRegistrations { get; init; }

    /// <summary>Whether the server's daemon registered again because its move took the registration's address (event 10420), not after a timeout.</summary>
    public bool ServerReregisteredOnMove { get; init; }

    /// <summary>Whether the server's daemon logged a registration at a <c>tls://</c> relay.</summary>
    public bool ServerRegisteredOverTls { get; init; }

    /// <summary>Whether the server's daemon logged a TLS connection to the GNS (<c>--gns-tls</c>, event 1890).</summary>
    public bool ServerGnsOverTls { get; init; }

    /// <summary>The relay locators of the server's published records, in order, repeats left out.</summary>
    public string? RelayLocators { get; init; }

    public string? Notes { get; init; }

    /// <summary>One line per scenario: outcomes, median connect time and stalls per move (with their range).</summary>
    public static string FormatTable(IReadOnlyList<NatRelayResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{"scenario",-26} {"runs",4} {"outcomes",-16} {"path",-8} {"connect ms",10} {"first byte ms",13} {"server move stall ms",22} {"client move stall ms",22} {"gap p99 ms",10} {"lost",6} {"until direct ms",18} {"direct logged ms",18} {"path at end",-14}");
        foreach (var group in results.GroupBy(r => r.Scenario))
        {
            var outcomes = string.Join(", ", group.GroupBy(r => r.Outcome).Select(g => g.Count() == 1 ? g.Key : $"{g.Count()}x {g.Key}"));
            var paths = string.Join(",", group.Select(r => r.PathKind ?? "-").Distinct());
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{group.Key,-26} {group.Count(),4} {outcomes,-16} {paths,-8} {Summary(group.Select(r => r.ConnectMs), range: false),10} {Summary(group.Select(r => r.TimeToFirstByteMs), range: false),13} " +
                $"{Summary(group.Select(r => r.ServerMoveStallMs), range: true),22} {Summary(group.Select(r => r.ClientMoveStallMs), range: true),22} " +
                $"{Summary(group.Select(r => r.BaselineGapP99Ms), range: false),10} {string.Join('/', group.Select(r => r.BytesLost)),6} " +
                $"{Summary(group.Select(r => r.TimeUntilDirectMs), range: true),18} {Summary(group.Select(r => r.DirectLoggedMs), range: true),18} {string.Join(",", group.Select(r => r.PathAtEnd ?? "-")),-14}");
            // Every move of the scenario: stall (median, range) and the paths the client was on after it.
            foreach (var move in group.SelectMany(r => r.Moves).GroupBy(m => m.Move))
            {
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"  move {move.Key,-24} stall ms {Summary(move.Select(m => m.StallMs), range: true),-22} path after: {string.Join(",", move.Select(m => m.PathAfter ?? "-"))}");
            }
        }

        return text.ToString();
    }

    private static string Summary(IEnumerable<double?> values, bool range)
    {
        var list = values.OfType<double>().ToList();
        if (list.Count == 0)
        {
            return "-";
        }

        var median = NatScenarioResult.Median(list).ToString("0", CultureInfo.InvariantCulture);
        return range ? $"{median} ({list.Min():0}-{list.Max():0})" : median;
    }
}

/// <summary>
/// Runs <see cref="NatRelayScenario"/>s with the real executables: gns and <c>mobility-relay</c> on public hosts, the
/// server's mobilityd (<c>--relay</c>) behind one NAT without a port forward, the client's behind another; the client
/// sends <see cref="TotalBytes"/> through its SOCKS5 endpoint to <c>&lt;server guid&gt;.guid</c>, paced, and the
/// server's application hashes what arrives. A third of the way through the server moves to its second NAT; two
/// thirds of the way the client moves to its second NAT. Stall per move, bytes lost and SHA-256 are recorded.
/// </summary>
public sealed class NatRelayRunner(TextWriter? log = null)
{
    public const int Port = NatScenarioRunner.Port;

    /// <summary>Bytes the client sends (64 MiB by default).</summary>
    public long TotalBytes { get; init; } = 64L << 20;

    /// <summary>The sender writes one 64 KiB block per interval (10 ms: about 6.5 MB/s) so that moves happen mid-transfer.</summary>
    public TimeSpan BlockInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Longest time for each stage (connect, the bytes before each move, the rest after the last).</summary>
    public TimeSpan StageTimeout { get; init; } = TimeSpan.FromSeconds(90);

    private const int BlockSize = 64 * 1024;

    public Task<IReadOnlyList<NatRelayResult>> RunAllAsync(IReadOnlyList<NatRelayScenario> scenarios, int runs, CancellationToken cancellationToken)
        => RunEachAsync(scenarios, runs, s => s.Name, RunAsync, r => string.Create(CultureInfo.InvariantCulture,
            $"{r.Outcome}, connect={r.ConnectMs:0} ms, server move stall={r.ServerMoveStallMs:0} ms, client move stall={r.ClientMoveStallMs:0} ms, received {r.BytesReceived} of {r.BytesSent} B"),
            log, cancellationToken);

    /// <summary>Each scenario <paramref name="runs"/> times, one after the other, each run announced and summed up in <paramref name="log"/>.</summary>
    internal static async Task<IReadOnlyList<TResult>> RunEachAsync<TScenario, TResult>(IReadOnlyList<TScenario> scenarios, int runs, Func<TScenario, string> name,
        Func<TScenario, CancellationToken, Task<TResult>> run, Func<TResult, string> summary, TextWriter? log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scenarios);
        var results = new List<TResult>();
        foreach (var scenario in scenarios)
        {
            for (var k = 1; k <= runs; k++)
            {
                log?.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {name(scenario)} run {k}/{runs}");
                var result = await run(scenario, cancellationToken).ConfigureAwait(false);
                log?.WriteLine("  => " + summary(result));
                results.Add(result);
            }
        }

        return results;
    }

    public async Task<NatRelayResult> RunAsync(NatRelayScenario scenario, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        var topology = await NatTopology.CreateAsync(["gns", "relay"], scenario.Sites ??
        [
            new NatSiteOptions { Role = "server", Kind = scenario.Kind },
            new NatSiteOptions { Role = "server2", HostRole = "server", Kind = scenario.Kind },
            new NatSiteOptions { Role = "client", Kind = scenario.ClientKind ?? scenario.Kind },
            new NatSiteOptions { Role = "client2", HostRole = "client", Kind = scenario.ClientKind ?? scenario.Kind },
        ], log).ConfigureAwait(false);
        await using (topology.ConfigureAwait(false))
        {
            return await RunInTopologyAsync(topology, scenario, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<NatRelayResult> RunInTopologyAsync(NatTopology topology, NatRelayScenario scenario, CancellationToken cancellationToken)
    {
        var lab = topology.Lab;
        var root = lab.CreateTemporaryDirectory("natrelay");
        var serverSite = topology.Site("server");
        var clientSite = topology.Site("client");
        // Behind an HTTPS-only firewall the server reaches the GNS, as the relay, over TLS on port 443 only (UDP 7353 is dropped).
        var gnsTls = scenario.Tls ? await RelayProcess.CreateCertificateAsync(Path.Combine(root, "gns-tls"), cancellationToken).ConfigureAwait(false) : default;
        var gns = await GnsProcess.StartAsync(lab, topology.Public("gns"), Path.Combine(root, "gns"), cancellationToken,
            scenario.Tls ? (gnsTls.Certificate, gnsTls.Key) : null).ConfigureAwait(false);
        await NatScenarioRunner.WarmUpAsync(topology.Public("gns"), gns, root, cancellationToken).ConfigureAwait(false);
        var relayHost = topology.Public("relay");
        string[] relayArguments = [];
        string[] serverRelay;
        if (scenario.Tls)
        {
            var (certificate, key, pin) = await RelayProcess.CreateCertificateAsync(Path.Combine(root, "relay-tls"), cancellationToken).ConfigureAwait(false);
            var tlsEndPoint = new IPEndPoint(relayHost.PrimaryAddress, 443);
            relayArguments = ["--tls-listen", tlsEndPoint.ToString(), "--tls-cert", certificate, "--tls-key", key];
            serverRelay = ["--relay", "tls://" + tlsEndPoint, "--relay-pin", pin, "--gns-tls", gns.Tls!, "--gns-pin", gnsTls.Pin, "--gns-tls-only"];
        }
        else
        {
            serverRelay = ["--relay", new IPEndPoint(relayHost.PrimaryAddress, RelayProcess.Port).ToString()];
        }

        var relay = await RelayProcess.StartAsync(lab, relayHost, Path.Combine(root, "relay"), cancellationToken, relayArguments).ConfigureAwait(false);
        var server = await DaemonProcess.StartAsync(lab, serverSite.Host, Path.Combine(root, "server"), gns, socks: false, cancellationToken,
            [.. serverRelay, "--Logging:LogLevel:Mobility.Daemon.Relay", "Debug"]).ConfigureAwait(false);
        var client = await DaemonProcess.StartAsync(lab, clientSite.Host, Path.Combine(root, "client"), gns, socks: true, cancellationToken).ConfigureAwait(false);

        // The server's record names the relay before anyone looks it up.
        var relayLocator = $"{(scenario.Tls ? relay.Tls! : relay.Tcp)}/relay";
        await NatScenarioRunner.WaitForPublishedAsync(server, relayLocator, cancellationToken).ConfigureAwait(false);

        var (listener, socket, failure, elapsed) = await NatScenarioRunner.ExposeAndConnectAsync(server, serverSite.Host, client, clientSite.Host, StageTimeout, cancellationToken)
            .ConfigureAwait(false);
        using var _ = listener;
        if (socket is null)
        {
            await SaveLogsAsync(scenario, gns, relay, client, server, cancellationToken).ConfigureAwait(false);
            return new NatRelayResult
            {
                Scenario = scenario.Name,
                Outcome = failure!,
                ConnectMs = Math.Round(elapsed, 1),
                Notes = $"{client.Describe(0)}; {server.Describe(0)}",
            };
        }

        var connectMs = Math.Round(elapsed, 1);
        var connectStart = Stopwatch.GetTimestamp() - (long)(elapsed / 1000 * Stopwatch.Frequency);
        var requestedAt = DateTime.Now - TimeSpan.FromMilliseconds(elapsed);
        var path = new ClientPath(client, relayHost.PrimaryAddress);
        // Asked beside the transfer's start, so that the first byte does not wait for the status reply.
        var pathKind = path.KindAsync(cancellationToken);
        using var accepted = await listener.AcceptAsync(cancellationToken).AsTask().WaitAsync(StageTimeout, cancellationToken).ConfigureAwait(false);
        using var sending = new NetworkStream(socket, ownsSocket: true);
        using var receiving = new NetworkStream(accepted, ownsSocket: false);
        var moves = scenario.Moves ?? DefaultMoves;
        var result = await TransferAsync(topology, moves, client, path, connectStart, sending, receiving, cancellationToken).ConfigureAwait(false);
        await SaveLogsAsync(scenario, gns, relay, client, server, cancellationToken).ConfigureAwait(false);
        return result with
        {
            Scenario = scenario.Name,
            ConnectMs = connectMs,
            PathKind = await pathKind.ConfigureAwait(false),
            ServerRegistrations = server.Process.StandardError.Split('\n').Count(l => l.Contains("Registered at relay", StringComparison.Ordinal)),
            ServerReregisteredOnMove = server.Process.StandardError.Contains("which this host no longer has: registering again", StringComparison.Ordinal),
            ServerRegisteredOverTls = server.Process.StandardError.Contains("Registered at relay tls://", StringComparison.Ordinal),
            ServerGnsOverTls = server.Process.StandardError.Contains("GNS over TLS: connected to", StringComparison.Ordinal),
            RelayLocators = string.Join(" -> ", PublishedRelays(server)),
            DirectLoggedMs = DirectLogged(client, requestedAt),
            Notes = $"{client.Describe(0)}; {server.Describe(0)}",
        };
    }

    private static Task SaveLogsAsync(NatRelayScenario scenario, GnsProcess gns, RelayProcess relay, DaemonProcess client, DaemonProcess server, CancellationToken cancellationToken)
        => SaveLogsAsync(scenario.Name, gns, relay, client, server, cancellationToken);

    /// <summary>With <c>NETLAB_LOGS</c> set: the logs of gns, the relay and both daemons, as <c>SCENARIO-TIME-ROLE.log</c> there.</summary>
    internal static async Task SaveLogsAsync(string scenario, GnsProcess gns, RelayProcess relay, DaemonProcess client, DaemonProcess server, CancellationToken cancellationToken)
    {
        if (System.Environment.GetEnvironmentVariable(MobilitySystem.LogDirectoryVariable) is not { Length: > 0 } logs)
        {
            return;
        }

        Directory.CreateDirectory(logs);
        var run = $"{scenario}-{DateTime.UtcNow:HHmmss}";
        foreach (var (role, text) in new[] { ("gns", gns.Process.StandardError), ("relay", relay.Process.StandardError), ("client", client.Process.StandardError), ("server", server.Process.StandardError) })
        {
            await File.WriteAllTextAsync(Path.Combine(logs, $"{run}-{role}.log"), text, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Milliseconds from <paramref name="requestedAt"/> (local time) to the first "direct path ... is active" line of the daemon's log (event 9101); null: none.</summary>
    private static double? DirectLogged(DaemonProcess daemon, DateTime requestedAt)
    {
        var line = daemon.Process.StandardError.Split('\n').FirstOrDefault(l => l.Contains("[9101]", StringComparison.Ordinal) && l.Contains("is active", StringComparison.Ordinal));
        if (line is null || line.Length < 12 || !TimeOnly.TryParseExact(line[..12], "HH:mm:ss.fff", CultureInfo.InvariantCulture, DateTimeStyles.None, out var at))
        {
            return null;
        }

        var logged = requestedAt.Date + at.ToTimeSpan();
        if (logged < requestedAt - TimeSpan.FromHours(12))
        {
            logged = logged.AddDays(1); // past midnight
        }

        return Math.Round((logged - requestedAt).TotalMilliseconds, 1);
    }

    /// <summary>The relay locators of the records the daemon published, in order, without repeats.</summary>
    private static IEnumerable<string> PublishedRelays(DaemonProcess daemon)
    {
        string? last = null;
        foreach (var line in daemon.Process.StandardError.Split('\n').Where(l => l.Contains("Published record version", StringComparison.Ordinal)))
        {
            var relays = string.Join(',', line.Split("(GNS saw us", 2)[0].Split([' ', ','], StringSplitOptions.RemoveEmptyEntries).Where(t => t.EndsWith("/relay", StringComparison.Ordinal)));
            if (relays.Length > 0 && relays != last)
            {
                last = relays;
                yield return relays;
            }
        }
    }

    /// <summary>The moves of the first scenarios: the server to its second NAT, then the client to its second NAT.</summary>
    private static readonly IReadOnlyList<NatRelayMove> DefaultMoves =
    [
        new("server to another nat", [new("server", "server", "server2")]),
        new("client to another nat", [new("client", "client", "client2")]),
    ];

    private async Task<NatRelayResult> TransferAsync(NatTopology topology, IReadOnlyList<NatRelayMove> moves, DaemonProcess client, ClientPath path, long connectStart, Stream sending, Stream receiving,
        CancellationToken cancellationToken)
    {
        using var run = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var receiver = new HashingReceiver(receiving);
        var receive = Task.Run(() => receiver.RunAsync(run.Token), CancellationToken.None);
        var send = Task.Run(() => SendAsync(sending, run.Token), CancellationToken.None);
        string outcome;
        var movedAt = new long[moves.Count];
        var paths = new string?[moves.Count];
        string? pathAtEnd = null;
        // The client's path polled beside the transfer: the first time it shows a direct path (a reversal, a dial, a punch).
        var untilDirect = Task.Run(() => UntilDirectAsync(client, connectStart, run.Token), CancellationToken.None);
        try
        {
            for (var k = 0; k < moves.Count; k++)
            {
                var stage = k == 0 ? "before the first move" : $"after the move \"{moves[k - 1].Name}\"";
                await WaitForAsync(receiver, TotalBytes * (k + 1) / (moves.Count + 1), receive, stage, cancellationToken).ConfigureAwait(false);
                if (k > 0)
                {
                    paths[k - 1] = await path.KindAsync(cancellationToken).ConfigureAwait(false);
                }

                movedAt[k] = Stopwatch.GetTimestamp();
                // All hosts of one step hand their address changes to the kernel together (each its new link up first).
                var gate = new MoveGate(moves[k].Hosts.Count);
                await Task.WhenAll(moves[k].Hosts.Select(m =>
                    topology.Site(m.From).Host.MoveAsync(topology.Site(m.From).Interface, topology.Site(m.To).Interface, cancellationToken: cancellationToken, gate: gate))).ConfigureAwait(false);
            }

            // The path after the last move (or without moves), while the last share of the bytes is still on its way.
            var last = moves.Count == 0 ? "without a move" : $"after the move \"{moves[^1].Name}\"";
            await WaitForAsync(receiver, TotalBytes * (2 * moves.Count + 1) / (2 * moves.Count + 2), receive, last, cancellationToken).ConfigureAwait(false);
            pathAtEnd = await path.KindAsync(cancellationToken).ConfigureAwait(false);
            if (moves.Count > 0)
            {
                paths[^1] = pathAtEnd;
            }
            if (await Task.WhenAny(receive, Task.Delay(StageTimeout, cancellationToken)).ConfigureAwait(false) != receive)
            {
                throw new TimeoutException($"hang: {receiver.Received} of {TotalBytes} B {StageTimeout.TotalSeconds:0} s after the last move");
            }

            outcome = "survived";
        }
        catch (Exception e) when (e is TimeoutException or IOException)
        {
            outcome = e.Message;
        }

        await run.CancelAsync().ConfigureAwait(false);
        var sent = await send.ConfigureAwait(false);
        var (received, hash, end) = await receive.ConfigureAwait(false);
        var direct = await untilDirect.ConfigureAwait(false);
        var hashEqual = received == sent.Bytes && hash.AsSpan().SequenceEqual(sent.Hash);
        var intact = outcome == "survived" && hashEqual && sent.Bytes == TotalBytes && end is null;
        var arrivals = receiver.Arrivals;
        var results = moves.Select((m, k) => new NatRelayMoveResult(m.Name,
            intact ? Round(StallAnalysis.StallMs(arrivals, movedAt[k], k + 1 < moves.Count ? movedAt[k + 1] : long.MaxValue)) : null, paths[k])).ToList();
        double? FirstStallOf(string host) => results.Where((_, k) => moves[k].Hosts.Any(h => h.Host == host)).Select(r => r.StallMs).FirstOrDefault();
        return new NatRelayResult
        {
            Scenario = "",
            Outcome = intact ? outcome : outcome == "survived" ? $"broken: {end ?? "hash differs"}; sender: {sent.Error ?? "ok"}" : outcome,
            Intact = intact,
            TimeToFirstByteMs = arrivals.Count > 0 ? Round(StallAnalysis.Ms(arrivals[0].At - connectStart)) : null,
            Moves = results,
            ServerMoveStallMs = FirstStallOf("server"),
            ClientMoveStallMs = FirstStallOf("client"),
            BaselineGapP99Ms = moves.Count == 0 || movedAt[0] == 0 ? null : Round(StallAnalysis.BaselineGapP99Ms(arrivals, movedAt[0])),
            TimeUntilDirectMs = direct,
            PathAtEnd = pathAtEnd,
            BytesSent = sent.Bytes,
            BytesReceived = received,
            HashEqual = hashEqual,
        };
    }

    private static double? Round(double? value) => value is { } v ? Math.Round(v, 1) : null;

    /// <summary>
    /// Polls the client's status every 20 ms until its connection's <c>path</c> is <c>direct</c> after a direct upgrade
    /// (<c>directUpgrades</c> above 0: a resume flow to a non-relay address in a move is not one), the time since the SOCKS5
    /// request; null when the transfer ends first.
    /// </summary>
    private static async Task<double?> UntilDirectAsync(DaemonProcess client, long connectStart, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                if (await ClientPath.ConnectionAsync(client, cancellationToken).ConfigureAwait(false) is { } connection
                    && connection.TryGetProperty("path", out var kind) && kind.GetString() == "direct"
                    && connection.TryGetProperty("directUpgrades", out var upgrades) && upgrades.TryGetInt32(out var count) && count > 0)
                {
                    return Round(StallAnalysis.Ms(Stopwatch.GetTimestamp() - connectStart));
                }

                await Task.Delay(20, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }

        return null;
    }

    private async Task WaitForAsync(HashingReceiver receiver, long bytes, Task receive, string stage, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(StageTimeout.TotalSeconds * Stopwatch.Frequency);
        while (receiver.Received < bytes)
        {
            if (receive.IsCompleted)
            {
                throw new IOException($"the receiving side ended {stage} after {receiver.Received} B");
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"hang: {receiver.Received} of {bytes} B {StageTimeout.TotalSeconds:0} s {stage}");
            }

            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes <see cref="TotalBytes"/> of seeded pseudo-random bytes, paced, hashing them; then shuts its side down.</summary>
    private Task<(long Bytes, byte[] Hash, string? Error)> SendAsync(Stream stream, CancellationToken cancellationToken)
        => SendPacedAsync(stream, TotalBytes, BlockInterval, cancellationToken);

    /// <summary>Writes <paramref name="total"/> seeded pseudo-random bytes, one 64 KiB block per <paramref name="interval"/>, hashing them; then shuts its side down.</summary>
    internal static async Task<(long Bytes, byte[] Hash, string? Error)> SendPacedAsync(Stream stream, long total, TimeSpan interval, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var random = new Random(16);
        var block = new byte[BlockSize];
        long sent = 0;
        var start = Stopwatch.GetTimestamp();
        try
        {
            for (var i = 0L; sent < total; i++)
            {
                var due = start + (long)(i * interval.TotalSeconds * Stopwatch.Frequency);
                var wait = StallAnalysis.Ms(due - Stopwatch.GetTimestamp());
                if (wait > 1)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(wait), cancellationToken).ConfigureAwait(false);
                }

                var size = (int)Math.Min(BlockSize, total - sent);
                random.NextBytes(block.AsSpan(0, size));
                hash.AppendData(block, 0, size);
                await stream.WriteAsync(block.AsMemory(0, size), cancellationToken).ConfigureAwait(false);
                sent += size;
            }

            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            (stream as NetworkStream)?.Socket.Shutdown(SocketShutdown.Send);
            return (sent, hash.GetHashAndReset(), null);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            return (sent, hash.GetHashAndReset(), e.GetType().Name + ": " + e.Message);
        }
    }

    /// <summary>The client daemon's view of its mobile connection's path (<see cref="NatRelayResult.PathKind"/>).</summary>
    internal sealed class ClientPath(DaemonProcess client, IPAddress relay)
    {
        public async Task<string?> KindAsync(CancellationToken cancellationToken)
            => await ConnectionAsync(client, cancellationToken).ConfigureAwait(false) is not { } connection
                ? null
                : connection.TryGetProperty("remote", out var remote) && IPEndPoint.TryParse(remote.GetString() ?? "", out var endPoint)
                    ? Classify(endPoint.Address, relay)
                    : "none";

        /// <summary>The daemon's outgoing connection in its status (<c>GET /v1/status</c>, what <c>mob status --json</c> prints); null: none, or no answer.</summary>
        internal static async Task<JsonElement?> ConnectionAsync(DaemonProcess client, CancellationToken cancellationToken)
        {
            try
            {
                using var api = new DaemonClient(client.ApiSocket, TimeSpan.FromSeconds(10));
                var status = await api.GetStatusAsync(cancellationToken).ConfigureAwait(false);
                if (!status.TryGetProperty("connections", out var connections) || connections.ValueKind != JsonValueKind.Array)
                {
                    return null;
                }

                foreach (var connection in connections.EnumerateArray())
                {
                    if (connection.TryGetProperty("client", out var isClient) && isClient.ValueKind == JsonValueKind.True)
                    {
                        return connection;
                    }
                }

                return null;
            }
            catch (DaemonApiException)
            {
                return null;
            }
        }

        internal static string Classify(IPAddress remote, IPAddress relay)
        {
            if (remote.IsIPv4MappedToIPv6)
            {
                remote = remote.MapToIPv4();
            }

            if (remote.Equals(relay))
            {
                return "relayed";
            }

            if (remote.AddressFamily != AddressFamily.InterNetwork)
            {
                return "direct";
            }

            var bytes = remote.GetAddressBytes();
            var isPrivate = bytes[0] == 10 || (bytes[0] == 172 && (bytes[1] & 0xF0) == 16) || (bytes[0] == 192 && bytes[1] == 168) || (bytes[0] == 100 && (bytes[1] & 0xC0) == 64);
            return isPrivate ? "direct-private" : "direct";
        }
    }

    /// <summary>Reads until end of stream, hashing, and notes the time of each read (its total so far as the sequence).</summary>
    internal sealed class HashingReceiver(Stream stream)
    {
        private readonly List<Arrival> _arrivals = [];
        private long _received;

        public long Received => Interlocked.Read(ref _received);

        public IReadOnlyList<Arrival> Arrivals
        {
            get
            {
                lock (_arrivals)
                {
                    return [.. _arrivals];
                }
            }
        }

        /// <summary>Bytes read, their SHA-256, and why reading ended early (null: end of stream).</summary>
        public async Task<(long Bytes, byte[] Hash, string? End)> RunAsync(CancellationToken cancellationToken)
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[BlockSize];
            try
            {
                while (true)
                {
                    var read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                    if (read == 0)
                    {
                        return (Received, hash.GetHashAndReset(), null);
                    }

                    hash.AppendData(buffer, 0, read);
                    var total = Interlocked.Add(ref _received, read);
                    lock (_arrivals)
                    {
                        _arrivals.Add(new Arrival(total, Stopwatch.GetTimestamp()));
                    }
                }
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                return (Received, hash.GetHashAndReset(), e is OperationCanceledException ? "open at deadline" : e.GetType().Name + ": " + e.Message);
            }
        }
    }
}
