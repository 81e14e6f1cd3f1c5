using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Mobility.Netlab.Emulation;
using Mobility.Netlab.Topology;
using Mobility.Netlab.Traffic;

namespace Mobility.Netlab.Scenarios;

/// <summary>Timing of one run. Defaults keep a full evaluation (4 scenarios x 2 systems x 2 RTTs) at a few minutes.</summary>
public sealed record ScenarioTiming
{
    /// <summary>Steady transfer before the move (also the warm-up for the noise floor).</summary>
    public TimeSpan BeforeMove { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The sender keeps writing this long after the move.</summary>
    public TimeSpan AfterMove { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// A connection that has not delivered everything this long after the move (plus any offline time) counts as
    /// broken ("hang"). Far below TCP's own give-up time (tcp_retries2, about 15 minutes) by design.
    /// </summary>
    public TimeSpan Deadline { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>One chunk per interval: 1 KiB every 5 ms is 200 KiB/s, enough resolution for a 10 ms RTT.</summary>
    public TimeSpan ChunkInterval { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Connection setup (daemons, listen, connect, accept) must finish within this.</summary>
    public TimeSpan SetupTimeout { get; init; } = TimeSpan.FromSeconds(90);

    /// <summary>Idle scenario: the sender stops this long before the move ...</summary>
    public TimeSpan IdleBeforeMove { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>... and starts again this long after it.</summary>
    public TimeSpan IdleAfterMove { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Connection-time mobility: the client connects this long after the server moved.</summary>
    public TimeSpan ConnectAfterMove { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Connection-time mobility: a connect that has not succeeded after this long failed.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>Builds a fresh topology per run, streams chunks client→server, moves, and measures.</summary>
public sealed class ScenarioRunner(TextWriter? log = null, ScenarioTiming? timing = null)
{
    public const int Port = 5001;

    private readonly ScenarioTiming _timing = timing ?? new ScenarioTiming();

    /// <summary>
    /// Every cell (RTT × scenario × system) <paramref name="runs"/> times, each run on a fresh topology; the runs of a
    /// cell follow each other, and the systems of one scenario alternate within each round, so that they share the
    /// machine's load of the same minutes.
    /// </summary>
    public async Task<IReadOnlyList<ScenarioResult>> RunAllAsync(
        IReadOnlyList<IScenarioSystem> systems,
        IReadOnlyList<Scenario> scenarios,
        IReadOnlyList<int> rttsMs,
        IReadOnlyCollection<string>? onlyScenarios,
        IReadOnlyCollection<string>? onlySystems,
        CancellationToken cancellationToken,
        int runs = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        ArgumentNullException.ThrowIfNull(systems);
        ArgumentNullException.ThrowIfNull(scenarios);
        ArgumentNullException.ThrowIfNull(rttsMs);
        var results = new List<ScenarioResult>();
        foreach (var rtt in rttsMs)
        {
            foreach (var scenario in scenarios.Where(s => onlyScenarios is null || onlyScenarios.Contains(s.Name)))
            {
                for (var run = 1; run <= runs; run++)
                {
                    foreach (var system in systems.Where(s => onlySystems is null || onlySystems.Contains(s.Name)))
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        ScenarioResult result;
                        try
                        {
                            result = await RunAsync(system, scenario, rtt, cancellationToken).ConfigureAwait(false) with { Run = run };
                        }
                        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is not OutOfMemoryException)
                        {
                            // One broken run (a setup that timed out, a command that failed) is a row, not the end of the evaluation.
                            var message = string.Join(' ', e.Message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
                            message = message.Length > 300 ? message[..300] + " ..." : message;
                            result = new ScenarioResult { Scenario = scenario.Name, System = system.Name, RttMs = rtt, Run = run, Outcome = $"error: {e.GetType().Name}: {message}" };
                        }


                        log?.WriteLine($"  => {result.Scenario} {result.System} rtt={result.RttMs}ms run {run}/{runs}: {result.Outcome}, stall={result.StallMs?.ToString("0", System.Globalization.CultureInfo.InvariantCulture) ?? "-"} ms");
                        results.Add(result);
                    }
                }
            }
        }

        return results;
    }

    /// <summary>One run; failures of the system under test become results, failures of the harness throw.</summary>
    public async Task<ScenarioResult> RunAsync(IScenarioSystem system, Scenario scenario, int rttMs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(system);
        ArgumentNullException.ThrowIfNull(scenario);
        if (system.Unsupported(scenario) is { } why)
        {
            return new ScenarioResult { Scenario = scenario.Name, System = system.Name, RttMs = rttMs, Outcome = "n/a: " + why };
        }

        log?.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {scenario.Name} / {system.Name} / {rttMs} ms RTT");
        var options = new TopologyOptions
        {
            Link = LinkEmulatorOptions.ForRtt(TimeSpan.FromMilliseconds(rttMs)) with { Loss = scenario.Loss, Jitter = scenario.Jitter },
            MultihomedClient = scenario.MultihomedClient,
            Network = scenario.Network,
        };
        var topology = await EvaluationTopology.CreateAsync(options, log).ConfigureAwait(false);
        await using (topology.ConfigureAwait(false))
        {
            return await RunInTopologyAsync(topology, system, scenario, rttMs, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<ScenarioResult> RunInTopologyAsync(EvaluationTopology topology, IScenarioSystem system, Scenario scenario, int rttMs, CancellationToken cancellationToken)
    {
        using var setup = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        setup.CancelAfter(_timing.SetupTimeout);
        await system.PrepareAsync(topology, scenario, setup.Token).ConfigureAwait(false);

        var listener = await system.ListenAsync(topology, Port, setup.Token).ConfigureAwait(false);
        await using var listenerScope = listener.ConfigureAwait(false);
        // The address a peer knows the server by: its address before any move (a cached lookup, a configuration file).
        var serverEndPoint = new IPEndPoint(topology.Server.PrimaryAddress, Port);
        // One OnMovedAsync at a time, even when both hosts move at once (systems keep per-run state).
        using var hook = new SemaphoreSlim(1, 1);
        var moveContext = new MoveContext(topology, async m =>
        {
            await hook.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await system.OnMovedAsync(topology, m, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                hook.Release();
            }
        }, cancellationToken);

        long moveAt = 0;
        IReadOnlyList<MoveRecord>? earlyMoves = null;
        double? connectMs = null;
        if (scenario.Kind == ScenarioKind.BeforeConnect)
        {
            moveAt = Stopwatch.GetTimestamp();
            earlyMoves = await scenario.Move(moveContext).ConfigureAwait(false);
            await Task.Delay(_timing.ConnectAfterMove, cancellationToken).ConfigureAwait(false);
        }

        var accept = listener.AcceptAsync(setup.Token);
        IScenarioConnection client;
        var connectStart = Stopwatch.GetTimestamp();
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(setup.Token);
            if (scenario.Kind == ScenarioKind.BeforeConnect)
            {
                connect.CancelAfter(_timing.ConnectTimeout);
            }

            client = await system.ConnectAsync(topology, serverEndPoint, connect.Token).ConfigureAwait(false);
            if (scenario.Kind == ScenarioKind.BeforeConnect)
            {
                connectMs = Math.Round(StallAnalysis.Ms(Stopwatch.GetTimestamp() - connectStart), 1);
            }
        }
        catch (Exception e) when (scenario.Kind == ScenarioKind.BeforeConnect && e is IOException or SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            var how = e switch
            {
                OperationCanceledException => $"no answer within {_timing.ConnectTimeout.TotalSeconds:0} s",
                SocketException socketError => socketError.SocketErrorCode.ToString(),
                _ => e.InnerException is SocketException inner ? inner.SocketErrorCode.ToString() : e.Message,
            };
            return new ScenarioResult
            {
                Scenario = scenario.Name,
                System = system.Name,
                RttMs = rttMs,
                MoveMs = Math.Round(StallAnalysis.Ms(earlyMoves!.Max(m => m.AttachedAt) - moveAt), 1),
                ConnectMs = Math.Round(StallAnalysis.Ms(Stopwatch.GetTimestamp() - connectStart), 1),
                Outcome = $"connect failed after {StallAnalysis.Ms(Stopwatch.GetTimestamp() - connectStart):0} ms: {how}",
                Notes = await system.DescribeRunAsync(topology, cancellationToken).ConfigureAwait(false),
            };
        }

        await using var clientScope = client.ConfigureAwait(false);
        var server = await accept.ConfigureAwait(false);
        await using var serverScope = server.ConfigureAwait(false);

        var offline = scenario.Offline;
        var during = scenario.Kind == ScenarioKind.BeforeConnect ? TimeSpan.Zero : offline + scenario.MovingTime;
        using var run = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        run.CancelAfter(_timing.BeforeMove + _timing.IdleBeforeMove + during + _timing.IdleAfterMove + _timing.Deadline + TimeSpan.FromSeconds(5));

        var sender = new ChunkSender(client.Stream, _timing.ChunkInterval);
        var receiver = new ChunkReceiver(server.Stream);
        var receiving = Task.Run(() => receiver.RunAsync(run.Token), CancellationToken.None);
        Task<SenderReport> sending;
        IReadOnlyList<MoveRecord> moves;
        long sendingResumedAt = 0;
        var reacted = 0L;
        if (scenario.Kind == ScenarioKind.BeforeConnect)
        {
            // The move already happened; the transfer checks that the connection works and loses nothing.
            sending = Task.Run(() => sender.RunAsync(_timing.AfterMove, run.Token), CancellationToken.None);
            moves = earlyMoves!;
            reacted = moves.Max(m => m.AttachedAt);
        }
        else if (scenario.Kind == ScenarioKind.Idle)
        {
            var first = await sender.RunAsync(_timing.BeforeMove, run.Token).ConfigureAwait(false);
            await Task.Delay(_timing.IdleBeforeMove, cancellationToken).ConfigureAwait(false);
            moveAt = Stopwatch.GetTimestamp();
            moves = await scenario.Move(moveContext).ConfigureAwait(false);
            reacted = Stopwatch.GetTimestamp();
            await Task.Delay(_timing.IdleAfterMove, cancellationToken).ConfigureAwait(false);
            sendingResumedAt = Stopwatch.GetTimestamp();
            sending = first.Error is null
                ? Task.Run(() => sender.RunAsync(_timing.AfterMove, run.Token), CancellationToken.None)
                : Task.FromResult(first);
        }
        else
        {
            sending = Task.Run(() => sender.RunAsync(_timing.BeforeMove + during + _timing.AfterMove, run.Token), CancellationToken.None);
            await Task.Delay(_timing.BeforeMove, cancellationToken).ConfigureAwait(false);
            moveAt = Stopwatch.GetTimestamp();
            moves = await scenario.Move(moveContext).ConfigureAwait(false);
            reacted = Stopwatch.GetTimestamp();
        }

        var moved = moves.Max(m => m.AttachedAt);

        // Wait (bounded) until the sender finished and the receiver has everything, or the deadline passes.
        var deadline = Math.Max(moved, Stopwatch.GetTimestamp()) + (long)(_timing.Deadline.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline && !(sending.IsCompleted && receiver.UniqueCount >= sender.ChunksWritten) && !receiving.IsCompleted)
        {
            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }

        // A receiver that ended (reset/eof) gets a moment for the sender to notice too.
        await run.CancelAsync().ConfigureAwait(false);
        var senderReport = await sending.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        var end = await receiving.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        var report = receiver.Report(end);

        var written = senderReport.ChunksWritten;
        var missing = StallAnalysis.MissingChunks(report.Arrivals, written);
        var movedAfter = report.Arrivals.Any(a => a.At >= moveAt);
        var survived = missing == 0 && report.Corrupt == 0 && senderReport.Error is null && movedAfter && end == "open at deadline";
        var stall = !survived ? null
            : scenario.Kind switch
            {
                ScenarioKind.Idle => StallAnalysis.ExtraDelayMs(report.Arrivals, moveAt, sendingResumedAt),
                ScenarioKind.BeforeConnect => null,
                _ => StallAnalysis.StallMs(report.Arrivals, moveAt),
            };
        // Detection counts from when the detecting side's own change reached the kernel (its move record's StartedAt: the
        // prepared ip batch's hand-over), not from the harness's start of the move, which precedes iproute2's start.
        var (detected, detector) = client.MoveDetectedAt is { } byClient ? (byClient, topology.Client.Role) : (server.MoveDetectedAt, topology.Server.Role);
        var cutAt = moves.Where(m => m.Host == detector).Select(m => m.StartedAt).DefaultIfEmpty(moveAt).Min();
        var notes = await system.DescribeRunAsync(topology, cancellationToken).ConfigureAwait(false);
        var moveStartedAt = DateTimeOffset.UtcNow - Stopwatch.GetElapsedTime(moveAt);
        var moveTimeline = await system.MoveTimelineAsync(moveStartedAt, cancellationToken).ConfigureAwait(false);

        return new ScenarioResult
        {
            Scenario = scenario.Name,
            System = system.Name,
            RttMs = rttMs,
            MoveMs = Math.Round(StallAnalysis.Ms(moved - moveAt), 1),
            ReactedMs = Math.Round(StallAnalysis.Ms(reacted - moveAt), 1),
            DetectMs = detected is { } d && d >= cutAt ? Math.Round(StallAnalysis.Ms(d - cutAt), 1) : null,
            CutMs = Math.Round(StallAnalysis.Ms(cutAt - moveAt), 1),
            ConnectMs = connectMs,
            StallMs = stall is { } s ? Math.Round(s, 1) : null,
            StallRtt = stall is { } s2 ? Math.Round(s2 / rttMs, 2) : null,
            BytesLost = missing * Chunks.Size,
            BytesDuplicated = report.Duplicates * Chunks.Size,
            Survived = survived,
            Outcome = survived ? "survived" : DescribeFailure(end, senderReport, _timing.Deadline),
            BaselineGapP99Ms = StallAnalysis.BaselineGapP99Ms(report.Arrivals, moveAt) is { } b ? Math.Round(b, 1) : null,
            ChunksSent = written,
            ChunksReceived = report.Arrivals.Count,
            Moves = moves.Count,
            Notes = notes,
            MoveTimeline = moveTimeline,
            PeerFreshnessMs = scenario.MeasuresPeerFreshness ? system.PeerFreshnessMs : null,
            Timeline = new RunTimeline(moveAt, moved, report.Arrivals),
        };
    }

    private static string DescribeFailure(string receiverEnd, SenderReport sender, TimeSpan deadline)
    {
        var receiver = receiverEnd switch
        {
            "open at deadline" => $"hang: not all data after {deadline.TotalSeconds:0} s, connection still open",
            "ConnectionReset" => "reset (RST)",
            "eof" => "closed (FIN)",
            _ => receiverEnd,
        };
        return sender.Error is { } e && receiverEnd == "open at deadline" && !e.StartsWith("cancelled", StringComparison.Ordinal) ? $"{receiver}; sender: {e}" : receiver;
    }
}
