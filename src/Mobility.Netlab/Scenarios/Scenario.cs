using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Scenarios;

/// <summary>When, relative to the connection and its traffic, the scenario's moves happen.</summary>
public enum ScenarioKind
{
    /// <summary>The client streams chunks; the moves happen in the middle of the stream.</summary>
    DuringTransfer,

    /// <summary>The sender pauses a second before the move and resumes two seconds after it (an idle connection moves).</summary>
    Idle,

    /// <summary>Connection-time mobility: the server moves before anyone connects; one second later the client connects.</summary>
    BeforeConnect,
}

/// <summary>What a scenario's move function gets: the topology and the hook to call after each move.</summary>
public sealed record MoveContext(EvaluationTopology Topology, Func<MoveRecord, Task> OnMoved, CancellationToken CancellationToken)
{
    public LabHost Client => Topology.Client;

    public LabHost Server => Topology.Server;

    /// <summary>Moves <paramref name="host"/> from e1 to e2 (or back), then calls <see cref="OnMoved"/>.</summary>
    /// <param name="gate">Other hosts' moves to hand the address change to the kernel with (<see cref="MoveGate"/>).</param>
    public async Task<MoveRecord> SwitchAsync(LabHost host, TimeSpan offline = default, MoveGate? gate = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        var (from, to) = host.Interface("e1").IsAttached ? (host.Interface("e1"), host.Interface("e2")) : (host.Interface("e2"), host.Interface("e1"));
        var move = await host.MoveAsync(from, to, offline, CancellationToken, gate).ConfigureAwait(false);
        await OnMoved(move).ConfigureAwait(false);
        return move;
    }
}

/// <summary>A mobility event applied to a connection.</summary>
/// <param name="Name">Identifier used in results.json.</param>
/// <param name="Description">One line for the docs and the table.</param>
/// <param name="MultihomedClient">The client starts with both interfaces up.</param>
/// <param name="ServerMoves">The server changes address (alone or with the client).</param>
/// <param name="Move">Performs the moves, calling <see cref="MoveContext.OnMoved"/> after each, and returns their records.</param>
public sealed record Scenario(string Name, string Description, bool MultihomedClient, bool ServerMoves, Func<MoveContext, Task<IReadOnlyList<MoveRecord>>> Move)
{
    /// <summary>How long the client is offline in the short sleep/resume scenario.</summary>
    public static readonly TimeSpan SleepDuration = TimeSpan.FromSeconds(2);

    /// <summary>How long the client is offline in the long sleep/resume scenario (the issue's 30 s).</summary>
    public static readonly TimeSpan LongSleepDuration = TimeSpan.FromSeconds(30);

    /// <summary>Flapping: one move every <see cref="FlapInterval"/> for <see cref="FlapDuration"/>.</summary>
    public static readonly TimeSpan FlapInterval = TimeSpan.FromMilliseconds(300);

    public static readonly TimeSpan FlapDuration = TimeSpan.FromSeconds(10);

    public ScenarioKind Kind { get; init; } = ScenarioKind.DuringTransfer;

    /// <summary>Time without any address (sleep/resume); extends the sender and the deadline.</summary>
    public TimeSpan Offline { get; init; }

    /// <summary>How long the moves themselves last (flapping); extends the sender and the deadline.</summary>
    public TimeSpan MovingTime { get; init; }

    /// <summary>The hosts' address families (IPv4 only unless an IPv6 scenario says otherwise).</summary>
    public LabNetwork Network { get; init; } = LabNetwork.Ipv4;

    /// <summary>Packet loss of the emulated link in each direction (0..1), for the whole run.</summary>
    public double Loss { get; init; }

    /// <summary>Jitter (uniform ±) of the emulated link in each direction, for the whole run.</summary>
    public TimeSpan Jitter { get; init; }

    /// <summary>
    /// After each server move, ask a third daemon (which looked the server up before) until its <c>get_ip</c> answers
    /// the new address (<see cref="IScenarioSystem.PeerFreshnessMs"/>); systems without a name service cannot run it.
    /// </summary>
    public bool MeasuresPeerFreshness { get; init; }

    /// <summary>Extra arguments of the client's mobilityd (mobility system only; e.g. a transport setting the scenario turns off).</summary>
    public IReadOnlyList<string> ClientDaemonArguments { get; init; } = [];

    /// <summary>Make-before-break: how long the new interface and the old one are both up.</summary>
    public static readonly TimeSpan NewInterfaceOverlap = TimeSpan.FromSeconds(1);

    /// <summary>Cross-family move: how long the client stays IPv6-only before it is back on IPv4.</summary>
    public static readonly TimeSpan Ipv6OnlyDwell = TimeSpan.FromSeconds(2);

    /// <summary>Privacy rotation: how long the deprecated address stays valid before it is deleted.</summary>
    public static readonly TimeSpan DeprecatedLifetime = TimeSpan.FromSeconds(1);

    /// <summary>Peer freshness: server moves, one every <see cref="FreshnessInterval"/>.</summary>
    public const int FreshnessMoves = 5;

    public static readonly TimeSpan FreshnessInterval = TimeSpan.FromSeconds(1);

    /// <summary>The privacy rotation's new temporary address on the server's e1 (same /64 as fd00:231:9::2).</summary>
    public static readonly System.Net.IPAddress TemporaryServerAddress = System.Net.IPAddress.Parse("fd00:231:9::a:2");

    public static Scenario ClientMove { get; } = new(
        "client-move",
        "client loses 10.231.1.2 (link down, address deleted) and at once gets 10.231.2.2 with a new default route",
        MultihomedClient: false,
        ServerMoves: false,
        async c => [await c.SwitchAsync(c.Client).ConfigureAwait(false)]);

    public static Scenario ClientSleepResume { get; } = new(
        "client-sleep-2s",
        "client loses 10.231.1.2, is offline 2 s (sleep), then resumes on 10.231.2.2",
        MultihomedClient: false,
        ServerMoves: false,
        async c => [await c.SwitchAsync(c.Client, SleepDuration).ConfigureAwait(false)])
    { Offline = SleepDuration };

    public static Scenario ClientLongSleepResume { get; } = new(
        "client-sleep-30s",
        "client loses 10.231.1.2, is offline 30 s (sleep), then resumes on 10.231.2.2",
        MultihomedClient: false,
        ServerMoves: false,
        async c => [await c.SwitchAsync(c.Client, LongSleepDuration).ConfigureAwait(false)])
    { Offline = LongSleepDuration };

    public static Scenario MultihomedLoss { get; } = new(
        "client-multihomed-loss",
        "client has 10.231.1.2 and 10.231.2.2 up; the first (carrying the connection) is lost",
        MultihomedClient: true,
        ServerMoves: false,
        async c =>
        {
            var move = await c.Client.LoseAsync(c.Client.Interface("e1"), c.CancellationToken).ConfigureAwait(false);
            await c.OnMoved(move).ConfigureAwait(false);
            return [move];
        });

    public static Scenario ServerMove { get; } = new(
        "server-move",
        "server loses 10.231.9.2 and at once gets 10.231.10.2 with a new default route (the client stays)",
        MultihomedClient: false,
        ServerMoves: true,
        async c => [await c.SwitchAsync(c.Server).ConfigureAwait(false)]);

    public static Scenario BothMove { get; } = new(
        "both-move",
        "client moves 10.231.1.2 -> 10.231.2.2 and server moves 10.231.9.2 -> 10.231.10.2 at the same time",
        MultihomedClient: false,
        ServerMoves: true,
        async c =>
        {
            // Both changes reach the kernel together (each host's new link up first): otherwise which host moved first,
            // and by how much, was whichever iproute2 started first (3-40 ms apart in the 2026-12-07 logs).
            var gate = new MoveGate(2);
            var client = c.SwitchAsync(c.Client, gate: gate);
            var server = c.SwitchAsync(c.Server, gate: gate);
            return [await client.ConfigureAwait(false), await server.ConfigureAwait(false)];
        });

    public static Scenario ClientIdleMove { get; } = new(
        "client-idle-move",
        "client moves 10.231.1.2 -> 10.231.2.2 while the connection is idle (nothing sent from 1 s before to 2 s after)",
        MultihomedClient: false,
        ServerMoves: false,
        async c => [await c.SwitchAsync(c.Client).ConfigureAwait(false)])
    { Kind = ScenarioKind.Idle };

    public static Scenario ClientFlapping { get; } = new(
        "client-flapping",
        "client switches between 10.231.1.2 and 10.231.2.2 every 300 ms for 10 s (34 moves) during the transfer",
        MultihomedClient: false,
        ServerMoves: false,
        async c =>
        {
            var moves = new List<MoveRecord>();
            var start = System.Diagnostics.Stopwatch.GetTimestamp();
            for (var i = 0; i * FlapInterval <= FlapDuration; i++)
            {
                var due = (i * FlapInterval) - System.Diagnostics.Stopwatch.GetElapsedTime(start);
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, c.CancellationToken).ConfigureAwait(false);
                }

                moves.Add(await c.SwitchAsync(c.Client).ConfigureAwait(false));
            }

            return moves;
        })
    { MovingTime = FlapDuration };

    public static Scenario ConnectAfterServerMove { get; } = new(
        "connect-after-move",
        "server moves 10.231.9.2 -> 10.231.10.2 before any connection; 1 s later the client connects (by GUID; baselines: to the old address)",
        MultihomedClient: false,
        ServerMoves: true,
        async c => [await c.SwitchAsync(c.Server).ConfigureAwait(false)])
    { Kind = ScenarioKind.BeforeConnect };

    public static Scenario ClientMoveLoss1 { get; } = ClientMove with
    {
        Name = "client-move-loss1",
        Description = "client-move on an emulated link with 1% loss and ±5 ms jitter in each direction",
        Loss = 0.01,
        Jitter = TimeSpan.FromMilliseconds(5),
    };

    public static Scenario ClientMoveLoss5 { get; } = ClientMove with
    {
        Name = "client-move-loss5",
        Description = "client-move on an emulated link with 5% loss and ±5 ms jitter in each direction",
        Loss = 0.05,
        Jitter = TimeSpan.FromMilliseconds(5),
    };

    public static Scenario ClientNewInterface { get; } = new(
        "client-new-interface",
        "client on 10.231.1.2 gets 10.231.2.2 (and the default route) while the first still works; 1 s later 10.231.1.2 is lost",
        MultihomedClient: false,
        ServerMoves: false,
        async c =>
        {
            var appeared = await c.Client.JoinAsync(c.Client.Interface("e2"), c.CancellationToken).ConfigureAwait(false);
            await c.OnMoved(appeared).ConfigureAwait(false);
            await Task.Delay(NewInterfaceOverlap, c.CancellationToken).ConfigureAwait(false);
            var lost = await c.Client.LoseAsync(c.Client.Interface("e1"), c.CancellationToken).ConfigureAwait(false);
            await c.OnMoved(lost).ConfigureAwait(false);
            return [appeared, lost];
        })
    { MovingTime = NewInterfaceOverlap };

    public static Scenario UpstreamFailure { get; } = new(
        "upstream-failure",
        "client has 10.231.1.2 and 10.231.2.2 up; the edge router drops everything from and to 10.231.1.0/24 (nftables); no address or link changes",
        MultihomedClient: true,
        ServerMoves: false,
        async c =>
        {
            var failed = await c.Topology.FailUpstreamAsync("a1").ConfigureAwait(false);
            await c.OnMoved(failed).ConfigureAwait(false);
            return [failed];
        });

    public static Scenario UpstreamFailureNoStandby { get; } = UpstreamFailure with
    {
        Name = "upstream-failure-nostandby",
        Description = "upstream-failure with standby paths off in the client's mobilityd (MaxStandbyPaths 0): the connection resumes, and only a resume from 10.231.2.2 gets through",
        ClientDaemonArguments = ["--Forwarding:Transport:MaxStandbyPaths", "0"],
    };

    public static Scenario PeerFreshness { get; } = new(
        "peer-freshness",
        "server switches e1 <-> e2 five times, 1 s apart, during the transfer; after each, a third daemon's get_ip is asked until it answers the new address",
        MultihomedClient: false,
        ServerMoves: true,
        async c =>
        {
            var moves = new List<MoveRecord>();
            var start = System.Diagnostics.Stopwatch.GetTimestamp();
            for (var i = 0; i < FreshnessMoves; i++)
            {
                var due = (i * FreshnessInterval) - System.Diagnostics.Stopwatch.GetElapsedTime(start);
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, c.CancellationToken).ConfigureAwait(false);
                }

                moves.Add(await c.SwitchAsync(c.Server).ConfigureAwait(false));
            }

            return moves;
        })
    { MovingTime = FreshnessMoves * FreshnessInterval, MeasuresPeerFreshness = true };

    public static Scenario Ipv6ClientMove { get; } = ClientMove with
    {
        Name = "v6-client-move",
        Description = "IPv6-only hosts: client loses fd00:231:1::2 and at once gets fd00:231:2::2 with a new default route",
        Network = LabNetwork.Ipv6,
    };

    public static Scenario Ipv6ServerMove { get; } = ServerMove with
    {
        Name = "v6-server-move",
        Description = "IPv6-only hosts: server loses fd00:231:9::2 and at once gets fd00:231:10::2 (the client stays)",
        Network = LabNetwork.Ipv6,
    };

    public static Scenario Ipv6BothMove { get; } = BothMove with
    {
        Name = "v6-both-move",
        Description = "IPv6-only hosts: client fd00:231:1::2 -> fd00:231:2::2 and server fd00:231:9::2 -> fd00:231:10::2 at the same time",
        Network = LabNetwork.Ipv6,
    };

    public static Scenario CrossFamilyMove { get; } = new(
        "cross-family-move",
        "dual-stack server and gns; the client goes IPv4-only (10.231.1.2) -> IPv6-only (fd00:231:2::2) -> after 2 s IPv4-only again (10.231.1.2)",
        MultihomedClient: false,
        ServerMoves: false,
        async c =>
        {
            var toIpv6 = await c.SwitchAsync(c.Client).ConfigureAwait(false);
            await Task.Delay(Ipv6OnlyDwell, c.CancellationToken).ConfigureAwait(false);
            return [toIpv6, await c.SwitchAsync(c.Client).ConfigureAwait(false)];
        })
    { Network = LabNetwork.CrossFamily, MovingTime = Ipv6OnlyDwell };

    public static Scenario Ipv6PrivacyRotation { get; } = new(
        "v6-privacy-rotation",
        "IPv6-only hosts: the server gets a temporary fd00:231:9::a:2 and its address in use is deprecated; 1 s later the deprecated address is deleted",
        MultihomedClient: false,
        ServerMoves: true,
        async c =>
        {
            var old = c.Server.Interface("e1");
            var (_, rotated) = await c.Server.RotateAsync(old, TemporaryServerAddress).ConfigureAwait(false);
            await c.OnMoved(rotated).ConfigureAwait(false);
            await Task.Delay(DeprecatedLifetime, c.CancellationToken).ConfigureAwait(false);
            var retired = await c.Server.RetireAsync(old).ConfigureAwait(false);
            await c.OnMoved(retired).ConfigureAwait(false);
            return [rotated, retired];
        })
    { Network = LabNetwork.Ipv6, MovingTime = DeprecatedLifetime };

    public static IReadOnlyList<Scenario> All { get; } =
    [
        ConnectAfterServerMove, ClientMove, ServerMove, BothMove, MultihomedLoss, ClientIdleMove, ClientFlapping, ClientSleepResume, ClientLongSleepResume,
        ClientMoveLoss1, ClientMoveLoss5, ClientNewInterface, UpstreamFailure, UpstreamFailureNoStandby, PeerFreshness,
        Ipv6ClientMove, Ipv6ServerMove, Ipv6BothMove, CrossFamilyMove, Ipv6PrivacyRotation,
    ];

    /// <summary>
    /// The scenarios named in a comma-separated list (<c>--scenario</c>, <c>SCENARIOS</c>), in <see cref="All"/>'s order;
    /// null or empty selects all. An unknown name is an error that lists the known ones.
    /// </summary>
    public static IReadOnlyList<Scenario> Select(string? names)
    {
        var wanted = (names ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (wanted.Length == 0)
        {
            return All;
        }

        if (wanted.FirstOrDefault(n => All.All(s => s.Name != n)) is { } unknown)
        {
            throw new ArgumentException($"unknown scenario '{unknown}' (known: {string.Join(", ", All.Select(s => s.Name))})");
        }

        return [.. All.Where(s => wanted.Contains(s.Name))];
    }
}
