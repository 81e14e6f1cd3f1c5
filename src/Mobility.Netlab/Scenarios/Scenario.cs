using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Scenarios;

/// <summary>A mobility event applied mid-transfer.</summary>
/// <param name="Name">Identifier used in results.json.</param>
/// <param name="Description">One line for the docs and the table.</param>
/// <param name="MultihomedClient">The client starts with both interfaces up.</param>
/// <param name="ServerMoves">The server changes address too (both ends moving).</param>
/// <param name="Move">Performs the move and returns the client's record (the server's, if only it moves).</param>
public sealed record Scenario(string Name, string Description, bool MultihomedClient, bool ServerMoves, Func<EvaluationTopology, CancellationToken, Task<IReadOnlyList<MoveRecord>>> Move)
{
    /// <summary>How long the client is offline in the sleep/resume scenario.</summary>
    public static readonly TimeSpan SleepDuration = TimeSpan.FromSeconds(2);

    public static Scenario ClientMove { get; } = new(
        "client-move",
        "client loses 10.231.1.2 (link down, address deleted) and at once gets 10.231.2.2 with a new default route",
        MultihomedClient: false,
        ServerMoves: false,
        async (t, ct) => [await t.Client.MoveAsync(t.Client.Interface("e1"), t.Client.Interface("e2"), TimeSpan.Zero, ct).ConfigureAwait(false)]);

    public static Scenario ClientSleepResume { get; } = new(
        "client-sleep-2s",
        "client loses 10.231.1.2, is offline 2 s (sleep), then resumes on 10.231.2.2",
        MultihomedClient: false,
        ServerMoves: false,
        async (t, ct) => [await t.Client.MoveAsync(t.Client.Interface("e1"), t.Client.Interface("e2"), SleepDuration, ct).ConfigureAwait(false)]);

    public static Scenario MultihomedLoss { get; } = new(
        "client-multihomed-loss",
        "client has 10.231.1.2 and 10.231.2.2 up; the first (carrying the connection) is lost",
        MultihomedClient: true,
        ServerMoves: false,
        async (t, ct) => [await t.Client.LoseAsync(t.Client.Interface("e1"), ct).ConfigureAwait(false)]);

    public static Scenario ServerMove { get; } = new(
        "server-move",
        "server loses 10.231.9.2 and at once gets 10.231.10.2 with a new default route (the client stays)",
        MultihomedClient: false,
        ServerMoves: true,
        async (t, ct) => [await t.Server.MoveAsync(t.Server.Interface("e1"), t.Server.Interface("e2"), TimeSpan.Zero, ct).ConfigureAwait(false)]);

    public static Scenario BothMove { get; } = new(
        "both-move",
        "client moves 10.231.1.2 -> 10.231.2.2 and server moves 10.231.9.2 -> 10.231.10.2 at the same time",
        MultihomedClient: false,
        ServerMoves: true,
        async (t, ct) =>
        {
            var client = t.Client.MoveAsync(t.Client.Interface("e1"), t.Client.Interface("e2"), TimeSpan.Zero, ct);
            var server = t.Server.MoveAsync(t.Server.Interface("e1"), t.Server.Interface("e2"), TimeSpan.Zero, ct);
            return [await client.ConfigureAwait(false), await server.ConfigureAwait(false)];
        });

    public static IReadOnlyList<Scenario> All { get; } = [ClientMove, ClientSleepResume, MultihomedLoss, ServerMove, BothMove];
}
