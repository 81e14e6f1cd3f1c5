using System.Net;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Scenarios;

/// <summary>
/// A system under evaluation (plain TCP, MPTCP, Mobility with gns and mobilityd). The runner builds a fresh
/// <see cref="EvaluationTopology"/> per run, then calls, in order: <see cref="Unsupported"/>, <see cref="PrepareAsync"/>,
/// <see cref="ListenAsync"/> (server namespace), <see cref="ConnectAsync"/> (client namespace), streams chunks from
/// client to server, performs the scenario's move, calls <see cref="OnMovedAsync"/>, and measures what the server's
/// stream receives. Everything a system starts must be owned by the topology's <see cref="Lab"/> (processes via
/// <see cref="Lab.StartProcess"/>) or by the returned listener/connections, so that disposal removes it.
/// </summary>
public interface IScenarioSystem
{
    /// <summary>Short name used in results.json (<c>tcp</c>, <c>mptcp</c>, <c>mobility</c>).</summary>
    string Name { get; }

    /// <summary>Null when the scenario can run; otherwise why not (the runner records it as skipped).</summary>
    string? Unsupported(Scenario scenario);

    /// <summary>Configure hosts before any connection: sysctls, MPTCP endpoints, start daemons/GNS (and wait until they are ready).</summary>
    Task PrepareAsync(EvaluationTopology topology, Scenario scenario, CancellationToken cancellationToken);

    /// <summary>Listen on the server host at <paramref name="port"/> (all of its addresses).</summary>
    Task<IScenarioListener> ListenAsync(EvaluationTopology topology, int port, CancellationToken cancellationToken);

    /// <summary>Open a connection from the client host to <paramref name="server"/> (the server's initial address).</summary>
    Task<IScenarioConnection> ConnectAsync(EvaluationTopology topology, IPEndPoint server, CancellationToken cancellationToken);

    /// <summary>
    /// Called right after the harness changed addresses. A system whose own agent notices moves (mobilityd) does nothing
    /// here; a system that needs configuration to react (MPTCP's in-kernel path manager without mptcpd) applies it here.
    /// </summary>
    Task OnMovedAsync(EvaluationTopology topology, MoveRecord move, CancellationToken cancellationToken);

    /// <summary>After the run, before teardown: a short note for results.json (counters, daemon state), or null.</summary>
    Task<string?> DescribeRunAsync(EvaluationTopology topology, CancellationToken cancellationToken);

    /// <summary>
    /// After the run, before teardown: the moves as the system timed them itself, relative to
    /// <paramref name="moveStartedAt"/> (wall clock), or null when it keeps no such record (tcp, mptcp).
    /// </summary>
    Task<IReadOnlyList<MoveBreakdown>?> MoveTimelineAsync(DateTimeOffset moveStartedAt, CancellationToken cancellationToken)
        => Task.FromResult<IReadOnlyList<MoveBreakdown>?>(null);

    /// <summary>
    /// After a run of a scenario that <see cref="Scenario.MeasuresPeerFreshness"/>: per server move, how long (ms from
    /// the address change) until a third party's lookup answered the new address, null for a move it never did; null
    /// when the system did not measure it.
    /// </summary>
    IReadOnlyList<double?>? PeerFreshnessMs => null;
}

/// <summary>The server side's listening endpoint.</summary>
public interface IScenarioListener : IAsyncDisposable
{
    Task<IScenarioConnection> AcceptAsync(CancellationToken cancellationToken);
}

/// <summary>One end of a connection under test.</summary>
public interface IScenarioConnection : IAsyncDisposable
{
    /// <summary>The byte stream the application sees; it must survive the move for the system to pass.</summary>
    Stream Stream { get; }

    /// <summary>
    /// When this end noticed the (first) move of the run (a <see cref="System.Diagnostics.Stopwatch"/> timestamp), or null
    /// when the system cannot tell. Reported as detect_ms relative to the move's start.
    /// </summary>
    long? MoveDetectedAt { get; }
}
