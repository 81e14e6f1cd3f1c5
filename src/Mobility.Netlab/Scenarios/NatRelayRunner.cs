using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Mobility.Netlab.Systems;
using Mobility.Netlab.Systems.Mobility;
using Mobility.Netlab.Topology;
using Mobility.Netlab.Traffic;

namespace Mobility.Netlab.Scenarios;

/// <summary>
/// One relayed situation of docs/nat.md ("Through a relay"): the server behind a NAT of <see cref="Kind"/> without a
/// port forward, the client behind one of <see cref="ClientKind"/> (default: the same), each with a second NAT of the
/// same kind to move to. With <see cref="Tls"/> the relay also serves TLS on port 443 with a self-signed certificate
/// made by openssl, and the server registers there (<c>--relay tls://RELAY:443 --relay-pin SHA256</c>).
/// </summary>
public sealed record NatRelayScenario(string Name, string Description, NatKind Kind, NatKind? ClientKind = null, bool Tls = false)
{
    public static readonly NatRelayScenario Masquerade = new("nat-relay-masquerade",
        "server and client behind masquerade without forwards, server registered at a relay; server moves to another NAT, then the client", NatKind.EndpointIndependent);

    public static readonly NatRelayScenario RandomFully = new("nat-relay-random-fully",
        "as nat-relay-masquerade with masquerade random-fully (address-and-port-dependent mapping) at every NAT", NatKind.Symmetric);

    public static readonly NatRelayScenario HttpsOnly = new("nat-relay-https-only",
        "as nat-relay-masquerade, but the server's networks let only TCP 443 out: it registers over TLS (pinned certificate) at the relay's port 443",
        NatKind.HttpsOnly, NatKind.EndpointIndependent, Tls: true);

    public static IReadOnlyList<NatRelayScenario> All { get; } = [Masquerade, RandomFully, HttpsOnly];
}

/// <summary>One run of a <see cref="NatRelayScenario"/> (a row of nat-relay.json).</summary>
public sealed record NatRelayResult
{
    public required string Scenario { get; init; }

    /// <summary><c>survived</c> (every byte arrived once, SHA-256 equal, both moves done), or how it failed.</summary>
    public required string Outcome { get; init; }

    public bool Intact { get; init; }

    /// <summary>From the SOCKS5 request to the client daemon's "succeeded" reply (GNS lookup, relay dial, mobile handshake).</summary>
    public double? ConnectMs { get; init; }

    /// <summary>Longest gap between arrivals from the server's move until the client's.</summary>
    public double? ServerMoveStallMs { get; init; }

    /// <summary>Longest gap between arrivals after the client's move.</summary>
    public double? ClientMoveStallMs { get; init; }

    /// <summary>The noise floor: 99th percentile of the gaps between reads before the server's move.</summary>
    public double? BaselineGapP99Ms { get; init; }

    public long BytesSent { get; init; }

    public long BytesReceived { get; init; }

    /// <summary>Whether the SHA-256 of the bytes received equals that of the bytes sent.</summary>
    public bool HashEqual { get; init; }

    /// <summary>How often the server's daemon registered at its relay (once at start, again after its move).</summary>
    public int ServerRegistrations { get; init; }

    /// <summary>Whether the server's daemon registered again because its move took the registration's address (event 10420), not after a timeout.</summary>
    public bool ServerReregisteredOnMove { get; init; }

    /// <summary>Whether the server's daemon logged a registration at a <c>tls://</c> relay.</summary>
    public bool ServerRegisteredOverTls { get; init; }

    /// <summary>The relay locators of the server's published records, in order, repeats left out.</summary>
    public string? RelayLocators { get; init; }

    public string? Notes { get; init; }

    /// <summary>One line per scenario: outcomes, median connect time and stalls per move (with their range).</summary>
    public static string FormatTable(IReadOnlyList<NatRelayResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{"scenario",-24} {"runs",4} {"outcomes",-16} {"connect ms",10} {"server move stall ms",22} {"client move stall ms",22} {"gap p99 ms",10} {"lost",6}");
        foreach (var group in results.GroupBy(r => r.Scenario))
        {
            var outcomes = string.Join(", ", group.GroupBy(r => r.Outcome).Select(g => g.Count() == 1 ? g.Key : $"{g.Count()}x {g.Key}"));
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{group.Key,-24} {group.Count(),4} {outcomes,-16} {Summary(group.Select(r => r.ConnectMs), range: false),10} {Summary(group.Select(r => r.ServerMoveStallMs), range: true),22} " +
                $"{Summary(group.Select(r => r.ClientMoveStallMs), range: true),22} {Summary(group.Select(r => r.BaselineGapP99Ms), range: false),10} " +
                $"{string.Join('/', group.Select(r => r.BytesSent - r.BytesReceived)),6}");
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

    /// <summary>
    /// Behind an HTTPS-only firewall the daemon still needs the GNS, whose updates and lookups are UDP: the scenario lets
    /// UDP to the GNS port out too (the GNS over TCP 443 is not built), and everything else but TCP 443 stays dropped.
    /// </summary>
    private static readonly IReadOnlyList<PortForward> GnsOutbound = [PortForward.Udp(GnsProcess.UdpPort)];

    public async Task<IReadOnlyList<NatRelayResult>> RunAllAsync(IReadOnlyList<NatRelayScenario> scenarios, int runs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scenarios);
        var results = new List<NatRelayResult>();
        foreach (var scenario in scenarios)
        {
            for (var run = 1; run <= runs; run++)
            {
                log?.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {scenario.Name} run {run}/{runs}");
                var result = await RunAsync(scenario, cancellationToken).ConfigureAwait(false);
                log?.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  => {result.Outcome}, connect={result.ConnectMs:0} ms, server move stall={result.ServerMoveStallMs:0} ms, client move stall={result.ClientMoveStallMs:0} ms, received {result.BytesReceived} of {result.BytesSent} B"));
                results.Add(result);
            }
        }

        return results;
    }

    public async Task<NatRelayResult> RunAsync(NatRelayScenario scenario, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        var topology = await NatTopology.CreateAsync(["gns", "relay"],
        [
            new NatSiteOptions { Role = "server", Kind = scenario.Kind, AlsoOutbound = GnsOutbound },
            new NatSiteOptions { Role = "server2", HostRole = "server", Kind = scenario.Kind, AlsoOutbound = GnsOutbound },
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
        var gns = await GnsProcess.StartAsync(lab, topology.Public("gns"), Path.Combine(root, "gns"), cancellationToken).ConfigureAwait(false);
        await NatScenarioRunner.WarmUpAsync(topology.Public("gns"), gns, root, cancellationToken).ConfigureAwait(false);
        var relayHost = topology.Public("relay");
        string[] relayArguments = [];
        string[] serverRelay;
        if (scenario.Tls)
        {
            var (certificate, key, pin) = await RelayProcess.CreateCertificateAsync(Path.Combine(root, "relay-tls"), cancellationToken).ConfigureAwait(false);
            var tlsEndPoint = new IPEndPoint(relayHost.PrimaryAddress, 443);
            relayArguments = ["--tls-listen", tlsEndPoint.ToString(), "--tls-cert", certificate, "--tls-key", key];
            serverRelay = ["--relay", "tls://" + tlsEndPoint, "--relay-pin", pin];
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
        using var accepted = await listener.AcceptAsync(cancellationToken).AsTask().WaitAsync(StageTimeout, cancellationToken).ConfigureAwait(false);
        using var sending = new NetworkStream(socket, ownsSocket: true);
        using var receiving = new NetworkStream(accepted, ownsSocket: false);
        var result = await TransferAsync(serverSite, topology.Site("server2"), clientSite, topology.Site("client2"), sending, receiving, cancellationToken).ConfigureAwait(false);
        await SaveLogsAsync(scenario, gns, relay, client, server, cancellationToken).ConfigureAwait(false);
        return result with
        {
            Scenario = scenario.Name,
            ConnectMs = connectMs,
            ServerRegistrations = server.Process.StandardError.Split('\n').Count(l => l.Contains("Registered at relay", StringComparison.Ordinal)),
            ServerReregisteredOnMove = server.Process.StandardError.Contains("which this host no longer has: registering again", StringComparison.Ordinal),
            ServerRegisteredOverTls = server.Process.StandardError.Contains("Registered at relay tls://", StringComparison.Ordinal),
            RelayLocators = string.Join(" -> ", PublishedRelays(server)),
            Notes = $"{client.Describe(0)}; {server.Describe(0)}",
        };
    }

    /// <summary>With <c>NETLAB_LOGS</c> set: the logs of gns, the relay and both daemons, as <c>SCENARIO-TIME-ROLE.log</c> there.</summary>
    private static async Task SaveLogsAsync(NatRelayScenario scenario, GnsProcess gns, RelayProcess relay, DaemonProcess client, DaemonProcess server, CancellationToken cancellationToken)
    {
        if (System.Environment.GetEnvironmentVariable(MobilitySystem.LogDirectoryVariable) is not { Length: > 0 } logs)
        {
            return;
        }

        Directory.CreateDirectory(logs);
        var run = $"{scenario.Name}-{DateTime.UtcNow:HHmmss}";
        foreach (var (role, text) in new[] { ("gns", gns.Process.StandardError), ("relay", relay.Process.StandardError), ("client", client.Process.StandardError), ("server", server.Process.StandardError) })
        {
            await File.WriteAllTextAsync(Path.Combine(logs, $"{run}-{role}.log"), text, cancellationToken).ConfigureAwait(false);
        }
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

    private async Task<NatRelayResult> TransferAsync(NatSite server, NatSite serverNext, NatSite client, NatSite clientNext, Stream sending, Stream receiving,
        CancellationToken cancellationToken)
    {
        using var run = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var receiver = new HashingReceiver(receiving);
        var receive = Task.Run(() => receiver.RunAsync(run.Token), CancellationToken.None);
        var send = Task.Run(() => SendAsync(sending, run.Token), CancellationToken.None);
        string outcome;
        long serverMoveAt = 0;
        long clientMoveAt = 0;
        try
        {
            await WaitForAsync(receiver, TotalBytes / 3, receive, "before the server's move", cancellationToken).ConfigureAwait(false);
            serverMoveAt = Stopwatch.GetTimestamp();
            await server.Host.MoveAsync(server.Interface, serverNext.Interface, cancellationToken: cancellationToken).ConfigureAwait(false);
            await WaitForAsync(receiver, TotalBytes * 2 / 3, receive, "after the server's move", cancellationToken).ConfigureAwait(false);
            clientMoveAt = Stopwatch.GetTimestamp();
            await client.Host.MoveAsync(client.Interface, clientNext.Interface, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (await Task.WhenAny(receive, Task.Delay(StageTimeout, cancellationToken)).ConfigureAwait(false) != receive)
            {
                throw new TimeoutException($"hang: {receiver.Received} of {TotalBytes} B {StageTimeout.TotalSeconds:0} s after the client's move");
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
        var hashEqual = received == sent.Bytes && hash.AsSpan().SequenceEqual(sent.Hash);
        var intact = outcome == "survived" && hashEqual && sent.Bytes == TotalBytes && end is null;
        var arrivals = receiver.Arrivals;
        return new NatRelayResult
        {
            Scenario = "",
            Outcome = intact ? outcome : outcome == "survived" ? $"broken: {end ?? "hash differs"}; sender: {sent.Error ?? "ok"}" : outcome,
            Intact = intact,
            ServerMoveStallMs = intact ? Round(StallAnalysis.StallMs(arrivals, serverMoveAt, clientMoveAt)) : null,
            ClientMoveStallMs = intact ? Round(StallAnalysis.StallMs(arrivals, clientMoveAt)) : null,
            BaselineGapP99Ms = serverMoveAt == 0 ? null : Round(StallAnalysis.BaselineGapP99Ms(arrivals, serverMoveAt)),
            BytesSent = sent.Bytes,
            BytesReceived = received,
            HashEqual = hashEqual,
        };
    }

    private static double? Round(double? value) => value is { } v ? Math.Round(v, 1) : null;

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
    private async Task<(long Bytes, byte[] Hash, string? Error)> SendAsync(Stream stream, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var random = new Random(16);
        var block = new byte[BlockSize];
        long sent = 0;
        var start = Stopwatch.GetTimestamp();
        try
        {
            for (var i = 0L; sent < TotalBytes; i++)
            {
                var due = start + (long)(i * BlockInterval.TotalSeconds * Stopwatch.Frequency);
                var wait = StallAnalysis.Ms(due - Stopwatch.GetTimestamp());
                if (wait > 1)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(wait), cancellationToken).ConfigureAwait(false);
                }

                var size = (int)Math.Min(BlockSize, TotalBytes - sent);
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

    /// <summary>Reads until end of stream, hashing, and notes the time of each read (its total so far as the sequence).</summary>
    private sealed class HashingReceiver(Stream stream)
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
