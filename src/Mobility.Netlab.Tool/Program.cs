using System.Globalization;
using System.Runtime.InteropServices;
using Mobility.Netlab.Applications;
using Mobility.Netlab.Emulation;
using Mobility.Netlab.Interop;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Reporting;
using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Systems;
using Mobility.Netlab.Tool;
using Mobility.Netlab.Topology;

const string Usage = """
    netlab link --tun-a NAME --tun-b NAME [--ns NAME] [--delay 0ms] [--jitter 0ms] [--loss 0%] [--queue-limit 4096] [--seed N] [--max-runtime 12h]
        Forward IP packets between two TUN devices, delaying each direction (run inside a router namespace).
    netlab up [--rtt 50] [--multihomed] [--hold 600s]
        Build the evaluation topology with the emulator, print its namespaces, keep it until the hold time ends or Ctrl-C.
    netlab cleanup [--all]
        Remove mlab-* namespaces (and the processes inside) and mlab* links left by runs that are gone (--all: also live runs).
    netlab calibrate [--rtt 50,10] [--out FILE]
        Measure ping and TCP connect/echo RTT across the emulated link.
    netlab evaluate [--rtt 50,10] [--scenario NAME,...] [--system NAME,...] [--runs 1] [--out artifacts/evaluation/results.json] [--plots DIR]
        Run the scenarios for tcp, mptcp and mobility, each cell --runs times on a fresh topology; write results.json
        (every run, and per cell the median, min-max and quartiles), a table of every run, a table per cell (median
        (min-max), stall in RTTs), the per-move breakdown (mobility: each daemon's move timelines), and (with --plots)
        throughput SVGs of client-move and both-move at 50 ms (and 10 ms) RTT (the first run of each).
        Scenarios: connect-after-move, client-move, server-move, both-move, client-multihomed-loss, client-idle-move,
        client-flapping, client-sleep-2s, client-sleep-30s, client-move-loss1, client-move-loss5, client-new-interface,
        upstream-failure, upstream-failure-nostandby, peer-freshness, v6-client-move, v6-server-move, v6-both-move,
        cross-family-move, v6-privacy-rotation.
    netlab applications [--rtt 50] [--app iperf3,curl,ssh] [--move client-move,server-move,both-move] [--out FILE]
        Run unmodified applications over Mobility (iperf3 via mob forward, curl via SOCKS5, ssh via mob connect)
        across each move; write the results as JSON plus a table.
    netlab nat [--scenario NAME,...] [--runs 3] [--out artifacts/evaluation/nat.json]
        Run the NAT scenarios (docs/nat.md): gns and two mobilityd with the client and/or the server behind NATs of the
        NAT kit, a paced transfer through SOCKS5, NAT rebinding mid-transfer; write the results as JSON plus a table.
        Scenarios: client-nat, client-nat-flush, client-nat-new-ports, client-symmetric, client-double-nat,
        server-nat-forward, both-nat-forward, server-nat.
    netlab nat-relay [--scenario NAME,...] [--runs 3] [--out artifacts/evaluation/nat-relay.json]
        Run the relayed NAT scenarios (docs/nat.md, "Through a relay"): gns and mobility-relay on public hosts, the server
        (--relay) and the client behind NATs without forwards, 64 MiB through SOCKS5 checked by SHA-256 while the server
        and then the client move to another NAT (or the scenario's own moves); write the client's path, time to first byte,
        time until direct, stall per move, bytes lost and the hash check as JSON plus a table.
        Scenarios: nat-relay-masquerade, nat-relay-random-fully, nat-relay-https-only, nat-relay-double,
        nat-relay-simultaneous, nat-relay-public-and-back, nat-relay-same-nat, nat-relay-public-client,
        nat-relay-public-client-random-fully.
    netlab nat-punch [--scenario NAME,...] [--runs 3] [--out artifacts/evaluation/nat-punch.json]
        Run the hole-punching scenarios (docs/nat.md, "Direct paths"): gns and mobility-relay on public hosts, the server
        (--relay) and the client each behind its own NAT without forwards, 64 MiB through SOCKS5 checked by SHA-256;
        write the client's path at start and end, the time until direct and the relay's bytes after the switch as JSON
        plus a table. Scenarios: nat-direct-punch, nat-direct-punch-random-fully, nat-direct-punch-drop,
        nat-direct-punch-delay (plain masquerade with 20 ms one way between the two NATs), nat-direct-punch-far-relay
        (as nat-direct-punch-delay with the relay behind the same 20 ms link).

    Exit status: 0 done, 1 the environment refused (not root, a namespace or device missing, a port in use),
    2 bad command line, 130 interrupted. Errors are one line on stderr.
    """;

using var stop = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

// `netlab --help`, and `--help` after any command (`netlab evaluate --help`): the usage, which covers every command.
if (args.Length == 0 || args[0] is "help" || args.Any(a => a is "-h" or "--help"))
{
    Console.WriteLine(Usage);
    return args.Length == 0 ? 2 : 0;
}

try
{
    var options = new Arguments(args.Skip(1));
    switch (args[0])
    {
        case "link":
            return RunLink(options, stop.Token);
        case "up":
        {
            var rtt = ParseRtts(options.Get("--rtt") ?? "50")[0];
            var multihomed = options.Flag("--multihomed");
            var hold = Durations.Parse(options.Get("--hold") ?? "600s");
            options.RejectUnknown();
            var topology = await EvaluationTopology.CreateAsync(new TopologyOptions { Link = LinkEmulatorOptions.ForRtt(TimeSpan.FromMilliseconds(rtt)), MultihomedClient = multihomed }).ConfigureAwait(false);
            await using (topology.ConfigureAwait(false))
            {
                Console.WriteLine($"ready {topology.Lab.Prefix} {string.Join(' ', topology.Lab.Namespaces)}");
                Console.Out.Flush();
                try
                {
                    await Task.Delay(hold, stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // Ctrl-C or SIGTERM: tear down below.
                }
            }

            return 0;
        }

        case "cleanup":
        {
            var all = options.Flag("--all");
            options.RejectUnknown();
            var removed = await LabCleanup.RunAsync(includeLiveOwners: all, log: Console.Out).ConfigureAwait(false);
            Console.WriteLine($"cleanup: removed {removed.Count} item(s)");
            return 0;
        }

        case "calibrate":
        {
            var rtts = ParseRtts(options.Get("--rtt"));
            var output = options.Get("--out");
            options.RejectUnknown();
            var results = await Calibration.RunAsync(rtts, Console.Out, stop.Token).ConfigureAwait(false);
            Console.WriteLine(Calibration.FormatTable(results));
            if (output is not null)
            {
                await ResultsFile.WriteAsync(output, results).ConfigureAwait(false);
            }

            return 0;
        }

        case "evaluate":
        {
            var rtts = ParseRtts(options.Get("--rtt"));
            var scenarios = Scenario.Select(options.Get("--scenario"));
            var systems = options.Get("--system")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
            var runs = ParseRuns(options.Get("--runs") ?? "1");
            var output = options.Get("--out") ?? "artifacts/evaluation/results.json";
            var plots = options.Get("--plots");
            options.RejectUnknown();
            if (systems?.FirstOrDefault(n => EvaluationSystems.All().All(s => s.Name != n)) is { } unknownSystem)
            {
                throw new ArgumentException($"unknown system '{unknownSystem}' (known: tcp, mptcp, mobility)");
            }

            var runner = new ScenarioRunner(Console.Out);
            var results = await runner.RunAllAsync(EvaluationSystems.All(), scenarios, rtts, null, systems, stop.Token, runs).ConfigureAwait(false);
            await ResultsFile.WriteObjectAsync(output, EvaluationResults.Of(results)).ConfigureAwait(false);
            Console.WriteLine();
            Console.WriteLine("every run:");
            Console.WriteLine(ScenarioResult.FormatTable(results));
            Console.WriteLine($"per cell, median (min-max) over {runs} run(s):");
            Console.WriteLine(CellSummary.FormatTable(CellSummary.Of(results)));
            Console.WriteLine("per-move breakdown (ms from the move's start, per daemon):");
            Console.WriteLine(MoveBreakdown.FormatTable(results));
            Console.WriteLine($"results: {output}");
            if (plots is not null)
            {
                foreach (var svg in ThroughputPlot.WriteAll(plots, results, [("client-move", 50), ("both-move", 50), ("client-move", 10), ("both-move", 10)]))
                {
                    Console.WriteLine($"plot: {svg}");
                }
            }
            return 0;
        }

        case "applications":
        {
            var rtts = ParseRtts(options.Get("--rtt") ?? "50");
            var apps = options.Get("--app")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
            var moves = options.Get("--move")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
            var output = options.Get("--out") ?? "artifacts/evaluation/applications.json";
            options.RejectUnknown();
            var results = await new ApplicationRunner(Console.Out).RunAllAsync(rtts, apps, moves, stop.Token).ConfigureAwait(false);
            await ResultsFile.WriteAsync(output, results).ConfigureAwait(false);
            Console.WriteLine();
            Console.WriteLine(ApplicationRunner.FormatTable(results));
            Console.WriteLine($"results: {output}");
            return 0;
        }

        case "nat":
        {
            var (scenarios, runs, output) = SelectScenarios(options, NatScenario.All, s => s.Name, "NAT scenario", "artifacts/evaluation/nat.json");
            var results = await new NatScenarioRunner(Console.Out).RunAllAsync(scenarios, runs, stop.Token).ConfigureAwait(false);
            await ResultsFile.WriteAsync(output, results).ConfigureAwait(false);
            Console.WriteLine();
            Console.WriteLine(NatScenarioResult.FormatTable(results));
            foreach (var failed in results.Where(r => r.MobConnectError is not null).GroupBy(r => r.Scenario))
            {
                Console.WriteLine($"{failed.Key}: mob connect: {failed.First().MobConnectError}");
            }

            Console.WriteLine($"results: {output}");
            return 0;
        }

        case "nat-relay":
            return await RunScenariosAsync(options, NatRelayScenario.All, s => s.Name, "relayed NAT scenario", "artifacts/evaluation/nat-relay.json",
                new NatRelayRunner(Console.Out).RunAllAsync, NatRelayResult.FormatTable, stop.Token).ConfigureAwait(false);

        case "nat-punch":
            return await RunScenariosAsync(options, NatPunchScenario.All, s => s.Name, "hole-punching scenario", "artifacts/evaluation/nat-punch.json",
                new NatPunchRunner(Console.Out).RunAllAsync, NatPunchResult.FormatTable, stop.Token).ConfigureAwait(false);

        default:
            Console.Error.WriteLine($"unknown command '{args[0]}'");
            Console.Error.WriteLine(Usage);
            return 2;
    }
}
catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
{
    Console.Error.WriteLine($"netlab: {e.Message}");
    return 2;
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException or CommandFailedException or PlatformNotSupportedException
                              or System.Net.Sockets.SocketException)
{
    // The environment refused (not root, a namespace or device missing, a port in use): one line, no stack trace.
    Console.Error.WriteLine($"netlab: {string.Join(' ', e.Message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))}");
    return 1;
}
catch (OperationCanceledException) when (stop.IsCancellationRequested)
{
    Console.Error.WriteLine("netlab: interrupted");
    return 130;
}

static int RunLink(Arguments options, CancellationToken stop)
{
    var tunA = options.Require("--tun-a");
    var tunB = options.Require("--tun-b");
    var ns = options.Get("--ns");
    var link = new LinkEmulatorOptions
    {
        Delay = Durations.Parse(options.Get("--delay") ?? "0ms"),
        Jitter = Durations.Parse(options.Get("--jitter") ?? "0ms"),
        Loss = Durations.ParseLoss(options.Get("--loss") ?? "0%"),
        MaxQueuedPackets = int.Parse(options.Get("--queue-limit") ?? LinkEmulatorOptions.DefaultMaxQueuedPackets.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
        Seed = options.Get("--seed") is { } seed ? int.Parse(seed, CultureInfo.InvariantCulture) : null,
    };
    var maxRuntime = Durations.Parse(options.Get("--max-runtime") ?? "43200s");
    options.RejectUnknown();
    link.Validate();

    if (ns is not null)
    {
        // TUN devices belong to the namespace of the thread that opens them.
        NetworkNamespace.EnterOnCurrentThread(ns);
    }

    using var a = TunDevice.Open(tunA);
    using var b = TunDevice.Open(tunB);
    using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stop);
    deadline.CancelAfter(maxRuntime);
    var emulator = new LinkEmulator(a, b, link);
    Console.WriteLine($"ready {tunA}<->{tunB} delay={Durations.Format(link.Delay)} jitter={Durations.Format(link.Jitter)} loss={link.Loss:0.####} queue-limit={link.MaxQueuedPackets}");
    Console.Out.Flush();
    var stats = emulator.Run(deadline.Token);
    foreach (var s in stats)
    {
        Console.Error.WriteLine($"{s.From}->{s.To}: received={s.Received} forwarded={s.Forwarded} lost={s.DroppedByLoss} queue-drops={s.DroppedByQueueLimit} write-failures={s.WriteFailures}");
    }

    return 0;
}

// --scenario (names of all, comma-separated; default all), --runs (default 3) and --out of the NAT commands.
// The scenarios the options name, each run the times asked; the results as JSON and a table.
static async Task<int> RunScenariosAsync<TScenario, TResult>(Arguments options, IReadOnlyList<TScenario> all, Func<TScenario, string> name, string what, string defaultOutput,
    Func<IReadOnlyList<TScenario>, int, CancellationToken, Task<IReadOnlyList<TResult>>> run, Func<IReadOnlyList<TResult>, string> table, CancellationToken stop)
{
    var (scenarios, runs, output) = SelectScenarios(options, all, name, what, defaultOutput);
    var results = await run(scenarios, runs, stop).ConfigureAwait(false);
    await ResultsFile.WriteAsync(output, results).ConfigureAwait(false);
    Console.WriteLine();
    Console.WriteLine(table(results));
    Console.WriteLine($"results: {output}");
    return 0;
}

static (List<T> Scenarios, int Runs, string Output) SelectScenarios<T>(Arguments options, IReadOnlyList<T> all, Func<T, string> name, string what, string defaultOutput)
{
    var only = options.Get("--scenario")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
    var runs = ParseRuns(options.Get("--runs") ?? "3");
    var output = options.Get("--out") ?? defaultOutput;
    options.RejectUnknown();
    if (only?.FirstOrDefault(n => all.All(s => name(s) != n)) is { } unknown)
    {
        throw new ArgumentException($"unknown {what} '{unknown}'");
    }

    return ([.. all.Where(s => only is null || only.Contains(name(s)))], runs, output);
}

static int ParseRuns(string text) =>
    int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var runs) && runs is >= 1 and <= 100
        ? runs
        : throw new ArgumentException($"--runs must be 1..100, not '{text}'");

static IReadOnlyList<int> ParseRtts(string? text) =>
    (text ?? "50,10").Split(',', StringSplitOptions.RemoveEmptyEntries)
        .Select(t => int.Parse(t.Trim().Replace("ms", "", StringComparison.Ordinal), CultureInfo.InvariantCulture))
        .ToList();
