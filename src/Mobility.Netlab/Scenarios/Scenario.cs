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
    public async Task<MoveRecord> SwitchAsync(LabHost host, TimeSpan offline = default)
    {
        ArgumentNullException.ThrowIfNull(host);
        var (from, to) = host.Interface("e1").IsAttached ? (host.Interface("e1"), host.Interface("e2")) : (host.Interface("e2"), host.Interface("e1"));
        var move = await host.MoveAsync(from, to, offline, CancellationToken).ConfigureAwait(false);
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

    /// <summary>How long the client is offline in the long sleep/resume scenario (the 30 s).</summary>
    public static readonly TimeSpan LongSleepDuration = TimeSpan.FromSeconds(30);

    /// <summary>Flapping: one move every <see cref="FlapInterval"/> for <see cref="FlapDuration"/>.</summary>
    public static readonly TimeSpan FlapInterval = TimeSpan.FromMilliseconds(300);

    public static readonly TimeSpan FlapDuration = TimeSpan.FromSeconds(10);

    public ScenarioKind Kind { get; init; } = ScenarioKind.DuringTransfer;

    /// <summary>Time without any address (sleep/resume); extends the sender and the deadline.</summary>
    public TimeSpan Offline { get; init; }

    /// <summary>How long the moves themselves last (flapping); extends the sender and the deadline.</summary>
    public TimeSpan MovingTime { get; init; }

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
            var client = c.SwitchAsync(c.Client);
            var server = c.SwitchAsync(c.Server);
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

    public static IReadOnlyList<Scenario> All { get; } =
    [
        ConnectAfterServerMove, ClientMove, ServerMove, BothMove, MultihomedLoss, ClientIdleMove, ClientFlapping, ClientSleepResume, ClientLongSleepResume,
    ];
}
