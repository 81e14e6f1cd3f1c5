using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Mobility.Daemon.Client;
using Mobility.Netlab.Emulation;
using Mobility.Netlab.Systems;
using Mobility.Netlab.Systems.Mobility;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Scenarios;

/// <summary>
/// A hole-punching situation of docs/nat.md ("Direct paths"): the server (registered at a relay, <c>--relay</c>) and the
/// client each behind its own NAT of <see cref="Kind"/>, no port forward, no UPnP; the connection starts through the relay
/// and, where both NATs map independently of the destination, moves to a direct path made by a coordinated TCP
/// simultaneous open.
/// </summary>
/// <param name="NatToNatDelay">
/// One-way delay of an emulated link between the two NATs (<see cref="NatTopology.DelayBetweenSitesAsync"/>), both ways;
/// null: veth only (about 15 µs). Traffic with the GNS is not delayed; the relay's only with <paramref name="RelayDelayed"/>.
/// </param>
/// <param name="RelayDelayed">The relay's traffic with each site crosses the same emulated link (a relay as far as the peer).</param>
public sealed record NatPunchScenario(string Name, string Description, NatKind Kind, bool DropUnsolicited = false, TimeSpan? NatToNatDelay = null,
    bool RelayDelayed = false)
{
    public static readonly NatPunchScenario Masquerade = new("nat-direct-punch",
        "server (registered at a relay) and client each behind plain masquerade, no forwards: starts relayed, then a coordinated TCP simultaneous open", NatKind.EndpointIndependent);

    public static readonly NatPunchScenario RandomFully = new("nat-direct-punch-random-fully",
        "as nat-direct-punch with masquerade random-fully at both NATs: a port per destination, so no punch can meet; stays relayed", NatKind.Symmetric);

    public static readonly NatPunchScenario MasqueradeDropping = new("nat-direct-punch-drop",
        "as nat-direct-punch with both NAT routers dropping unsolicited inbound packets (no RST for an early SYN)", NatKind.EndpointIndependent, DropUnsolicited: true);

    public static readonly NatPunchScenario MasqueradeDelayed = new("nat-direct-punch-delay",
        "as nat-direct-punch with 20 ms one way (40 ms RTT) between the two NATs, as on the Internet (an emulated link in the internet router; the relay and the GNS are not delayed)",
        NatKind.EndpointIndependent, NatToNatDelay: TimeSpan.FromMilliseconds(20));

    public static readonly NatPunchScenario MasqueradeFarRelay = new("nat-direct-punch-far-relay",
        "as nat-direct-punch-delay with the relay behind the same 20 ms link (each site 20 ms one way from the relay, so the way through the relay is twice the direct one, as on the Internet)",
        NatKind.EndpointIndependent, NatToNatDelay: TimeSpan.FromMilliseconds(20), RelayDelayed: true);

    public static IReadOnlyList<NatPunchScenario> All { get; } = [Masquerade, RandomFully, MasqueradeDropping, MasqueradeDelayed, MasqueradeFarRelay];
}

/// <summary>One run of a <see cref="NatPunchScenario"/> (a row of nat-punch.json): the client's path over time, then the stream's check.</summary>
public sealed record NatPunchResult
{
    public required string Scenario { get; init; }

    /// <summary>The client connection's <c>path</c> (<c>GET /v1/status</c>) right after the connect: <c>relay IP:PORT</c> expected.</summary>
    public string? PathAtStart { get; init; }

    /// <summary>From the SOCKS5 request until the client's status first showed <c>direct</c> (polled every 20 ms); null: never.</summary>
    public double? TimeUntilDirectMs { get; init; }

    /// <summary>The anchor of the run: the SOCKS5 connect through the relay (request to the "succeeded" reply).</summary>
    public double? ConnectMs { get; init; }

    /// <summary>Growth of the relay's <c>relay_bytes_total</c> while 8 MiB crossed after the switch (null: no switch).</summary>
    public long? RelayBytesWhileDirect { get; init; }

    /// <summary>The client connection's <c>path</c> with the last eighth of the bytes on its way.</summary>
    public string? PathAtEnd { get; init; }

    /// <summary>The client connection's <c>directUpgrades</c> then.</summary>
    public int DirectUpgrades { get; init; }

    /// <summary><c>survived</c> when the whole stream arrived once (length and SHA-256), else what went wrong.</summary>
    public required string Outcome { get; init; }

    /// <summary>Outcome <c>survived</c>, the hashes equal and the reader saw the end of the stream.</summary>
    public bool Intact { get; init; }

    public long BytesSent { get; init; }

    public long BytesReceived { get; init; }

    public bool HashEqual { get; init; }

    public string? Notes { get; init; }

    /// <summary>One line per scenario: outcomes, paths, median connect time and time until direct (with their range).</summary>
    public static string FormatTable(IReadOnlyList<NatPunchResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{"scenario",-30} {"runs",4} {"outcomes",-12} {"path at end",-22} {"connect ms",14} {"until direct ms",18} {"relay B while direct",20}");
        foreach (var group in results.GroupBy(r => r.Scenario))
        {
            var outcomes = string.Join(", ", group.GroupBy(r => r.Outcome).Select(g => g.Count() == 1 ? g.Key : $"{g.Count()}x {g.Key}"));
            var paths = string.Join(",", group.Select(r => r.PathAtEnd?.Split(' ')[0] ?? "-").Distinct());
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{group.Key,-30} {group.Count(),4} {outcomes,-12} {paths,-22} {Summary(group.Select(r => r.ConnectMs)),14} {Summary(group.Select(r => r.TimeUntilDirectMs)),18} " +
                $"{string.Join('/', group.Select(r => r.RelayBytesWhileDirect?.ToString(CultureInfo.InvariantCulture) ?? "-")),20}");
        }

        return text.ToString();
    }

    private static string Summary(IEnumerable<double?> values)
    {
        var list = values.OfType<double>().ToList();
        return list.Count == 0 ? "-" : $"{NatScenarioResult.Median(list):0} ({list.Min():0}-{list.Max():0})";
    }
}

/// <summary>
/// Runs <see cref="NatPunchScenario"/>s with the real executables: gns (with its reflect endpoint, for NAT discovery) and
/// <c>mobility-relay</c> (with its metrics endpoint) on public hosts, the server's mobilityd (<c>--relay</c>) and the
/// client's each behind a NAT without a port forward. Once both daemons' NAT discovery has a verdict, the client sends
/// <see cref="TotalBytes"/> through its SOCKS5 endpoint to <c>&lt;server guid&gt;.guid</c>, paced; the client's status is
/// polled for its path, the relay's byte counter read after a switch, and the server's application hashes what arrives.
/// </summary>
public sealed class NatPunchRunner(TextWriter? log = null)
{
    /// <summary>The relay's metrics port on its host.</summary>
    public const int MetricsPort = 7396;

    /// <summary>Bytes the client sends (64 MiB by default: about 10 s at the default pace).</summary>
    public long TotalBytes { get; init; } = 64L << 20;

    /// <summary>The sender writes one 64 KiB block per interval.</summary>
    public TimeSpan BlockInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Longest time for each stage (NAT discovery, connect, the transfer).</summary>
    public TimeSpan StageTimeout { get; init; } = TimeSpan.FromSeconds(90);

    public Task<IReadOnlyList<NatPunchResult>> RunAllAsync(IReadOnlyList<NatPunchScenario> scenarios, int runs, CancellationToken cancellationToken)
        => NatRelayRunner.RunEachAsync(scenarios, runs, s => s.Name, RunAsync, r => string.Create(CultureInfo.InvariantCulture,
            $"{r.Outcome}, connect={r.ConnectMs:0} ms, until direct={r.TimeUntilDirectMs:0} ms, path {r.PathAtStart} -> {r.PathAtEnd}, received {r.BytesReceived} of {r.BytesSent} B"),
            log, cancellationToken);

    public async Task<NatPunchResult> RunAsync(NatPunchScenario scenario, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        var topology = await NatTopology.CreateAsync(["gns", "relay"],
        [
            new NatSiteOptions { Role = "server", Kind = scenario.Kind, DropUnsolicited = scenario.DropUnsolicited },
            new NatSiteOptions { Role = "client", Kind = scenario.Kind, DropUnsolicited = scenario.DropUnsolicited },
        ], log).ConfigureAwait(false);
        await using (topology.ConfigureAwait(false))
        {
            if (scenario.NatToNatDelay is { } delay)
            {
                await topology.DelayBetweenSitesAsync("server", "client", new LinkEmulatorOptions { Delay = delay }, StageTimeout,
                    scenario.RelayDelayed ? ["relay"] : null).ConfigureAwait(false);
            }

            return await RunInTopologyAsync(topology, scenario, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<NatPunchResult> RunInTopologyAsync(NatTopology topology, NatPunchScenario scenario, CancellationToken cancellationToken)
    {
        var lab = topology.Lab;
        var root = lab.CreateTemporaryDirectory("natpunch");
        var serverSite = topology.Site("server");
        var clientSite = topology.Site("client");
        var gns = await GnsProcess.StartAsync(lab, topology.Public("gns"), Path.Combine(root, "gns"), cancellationToken).ConfigureAwait(false);
        await NatScenarioRunner.WarmUpAsync(topology.Public("gns"), gns, root, cancellationToken).ConfigureAwait(false);
        var relayHost = topology.Public("relay");
        var metrics = new IPEndPoint(relayHost.PrimaryAddress, MetricsPort);
        var relay = await RelayProcess.StartAsync(lab, relayHost, Path.Combine(root, "relay"), cancellationToken, ["--metrics", metrics.ToString()]).ConfigureAwait(false);
        var server = await DaemonProcess.StartAsync(lab, serverSite.Host, Path.Combine(root, "server"), gns, socks: false, cancellationToken,
            ["--relay", relay.Tcp.ToString()]).ConfigureAwait(false);
        var client = await DaemonProcess.StartAsync(lab, clientSite.Host, Path.Combine(root, "client"), gns, socks: true, cancellationToken).ConfigureAwait(false);
        await NatScenarioRunner.WaitForPublishedAsync(server, $"{relay.Tcp}/relay", cancellationToken).ConfigureAwait(false);
        // The candidates (with the punch flag) go out when the connection opens: NAT discovery must have its verdict first.
        await Task.WhenAll(WaitForNatVerdictAsync(server, cancellationToken), WaitForNatVerdictAsync(client, cancellationToken)).ConfigureAwait(false);

        var (listener, socket, failure, elapsed) = await NatScenarioRunner.ExposeAndConnectAsync(server, serverSite.Host, client, clientSite.Host, StageTimeout, cancellationToken)
            .ConfigureAwait(false);
        using var _ = listener;
        string Notes() => $"{client.Describe(0)}; {server.Describe(0)}";
        if (socket is null)
        {
            return new NatPunchResult { Scenario = scenario.Name, Outcome = failure!, ConnectMs = Math.Round(elapsed, 1), Notes = Notes() };
        }

        var connectStart = Stopwatch.GetTimestamp() - (long)(elapsed / 1000 * Stopwatch.Frequency);
        using var accepted = await listener.AcceptAsync(cancellationToken).AsTask().WaitAsync(StageTimeout, cancellationToken).ConfigureAwait(false);
        using var sending = new NetworkStream(socket, ownsSocket: true);
        using var receiving = new NetworkStream(accepted, ownsSocket: false);
        using var run = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var receiver = new NatRelayRunner.HashingReceiver(receiving);
        var receive = Task.Run(() => receiver.RunAsync(run.Token), CancellationToken.None);
        var send = Task.Run(() => NatRelayRunner.SendPacedAsync(sending, TotalBytes, BlockInterval, run.Token), CancellationToken.None);

        var pathAtStart = (await ClientConnectionAsync(client, cancellationToken).ConfigureAwait(false))?.Path;
        double? untilDirect = null;
        long? relayWhileDirect = null;
        string outcome = "survived";
        ClientView? last = null;
        var deadline = Stopwatch.GetTimestamp() + (long)(StageTimeout.TotalSeconds * Stopwatch.Frequency);
        try
        {
            // Until the switch, or until three quarters of the bytes arrived without one.
            while (receiver.Received < TotalBytes * 3 / 4 && !receive.IsCompleted)
            {
                last = await ClientConnectionAsync(client, cancellationToken).ConfigureAwait(false) ?? last;
                if (last?.Path == "direct")
                {
                    untilDirect = Math.Round(StallAnalysis.Ms(Stopwatch.GetTimestamp() - connectStart), 1);
                    break;
                }

                if (Stopwatch.GetTimestamp() > deadline)
                {
                    throw new TimeoutException($"hang: {receiver.Received} of {TotalBytes} B after {StageTimeout.TotalSeconds:0} s");
                }

                await Task.Delay(20, cancellationToken).ConfigureAwait(false);
            }

            if (untilDirect is not null && receiver.Received < TotalBytes - (8L << 20))
            {
                // The relay stops carrying the stream: its byte counter stands (but for the standby's keepalives) while 8 MiB cross.
                var before = await RelayBytesAsync(relayHost, metrics, cancellationToken).ConfigureAwait(false);
                var target = receiver.Received + (8L << 20);
                while (receiver.Received < target && !receive.IsCompleted && Stopwatch.GetTimestamp() < deadline)
                {
                    await Task.Delay(20, cancellationToken).ConfigureAwait(false);
                }

                relayWhileDirect = await RelayBytesAsync(relayHost, metrics, cancellationToken).ConfigureAwait(false) - before;
            }

            while (receiver.Received < TotalBytes * 7 / 8 && !receive.IsCompleted && Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(20, cancellationToken).ConfigureAwait(false);
            }

            last = await ClientConnectionAsync(client, cancellationToken).ConfigureAwait(false) ?? last;
            if (await Task.WhenAny(receive, Task.Delay(StageTimeout, cancellationToken)).ConfigureAwait(false) != receive)
            {
                throw new TimeoutException($"hang: {receiver.Received} of {TotalBytes} B");
            }
        }
        catch (Exception e) when (e is TimeoutException or IOException or HttpRequestException)
        {
            outcome = e.Message;
        }

        await run.CancelAsync().ConfigureAwait(false);
        var sent = await send.ConfigureAwait(false);
        var (received, hash, end) = await receive.ConfigureAwait(false);
        await NatRelayRunner.SaveLogsAsync(scenario.Name, gns, relay, client, server, cancellationToken).ConfigureAwait(false);
        var hashEqual = received == sent.Bytes && hash.AsSpan().SequenceEqual(sent.Hash);
        var intact = outcome == "survived" && hashEqual && sent.Bytes == TotalBytes && end is null;
        return new NatPunchResult
        {
            Scenario = scenario.Name,
            Outcome = intact ? outcome : outcome == "survived" ? $"broken: {end ?? "hash differs"}; sender: {sent.Error ?? "ok"}" : outcome,
            Intact = intact,
            ConnectMs = Math.Round(elapsed, 1),
            PathAtStart = pathAtStart,
            PathAtEnd = last?.Path,
            TimeUntilDirectMs = untilDirect,
            RelayBytesWhileDirect = relayWhileDirect,
            DirectUpgrades = last?.DirectUpgrades ?? 0,
            BytesSent = sent.Bytes,
            BytesReceived = received,
            HashEqual = hashEqual,
            Notes = Notes(),
        };
    }

    private sealed record ClientView(string Path, int DirectUpgrades);

    /// <summary>The client daemon's outgoing connection in its status (what <c>mob status --json</c> prints): its path and direct upgrades.</summary>
    private static async Task<ClientView?> ClientConnectionAsync(DaemonProcess client, CancellationToken cancellationToken)
        => await NatRelayRunner.ClientPath.ConnectionAsync(client, cancellationToken).ConfigureAwait(false) is not { } connection
            ? null
            : new ClientView(connection.TryGetProperty("path", out var path) ? path.GetString() ?? "" : "",
                connection.TryGetProperty("directUpgrades", out var upgrades) && upgrades.TryGetInt32(out var count) ? count : 0);

    /// <summary>Waits until the daemon's NAT discovery has a mapping verdict for IPv4 (its status's <c>nat.families</c>).</summary>
    private async Task WaitForNatVerdictAsync(DaemonProcess daemon, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(StageTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                using var api = new DaemonClient(daemon.ApiSocket, TimeSpan.FromSeconds(10));
                var status = await api.GetStatusAsync(cancellationToken).ConfigureAwait(false);
                if (status.TryGetProperty("nat", out var nat) && nat.TryGetProperty("families", out var families) && families.ValueKind == JsonValueKind.Array
                    && families.EnumerateArray().Any(f => f.TryGetProperty("mapping", out var mapping) && mapping.GetString() is "endpoint-independent" or "address-dependent" or "address-and-port-dependent"))
                {
                    return;
                }
            }
            catch (DaemonApiException)
            {
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"{daemon.Host.Role}'s mobilityd has no NAT verdict after {StageTimeout.TotalSeconds:0} s");
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The relay's <c>relay_bytes_total</c>, read over HTTP from inside its namespace.</summary>
    private static async Task<long> RelayBytesAsync(LabHost relayHost, IPEndPoint metrics, CancellationToken cancellationToken)
    {
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = LabSockets.Create(relayHost.Namespace, ProtocolType.Tcp);
                try
                {
                    await socket.ConnectAsync(metrics, ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
        var text = await http.GetStringAsync(new Uri($"http://{metrics}/metrics"), cancellationToken).ConfigureAwait(false);
        const string Name = "relay_bytes_total ";
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(Name, StringComparison.Ordinal))
                   ?? throw new IOException("no relay_bytes_total in the relay's metrics");
        return long.Parse(line[Name.Length..], CultureInfo.InvariantCulture);
    }
}
