// soak-bench: the fault soak of docs/benchmarks.md ("Faults lose nothing"). Two real mobilityd stream a
// checked pseudo-random stream each way through their SOCKS5 endpoints while both ends move, gns is
// SIGKILLed and restarted, and (on Redis) the primary fails over to its replica.
//
//   dotnet soak-bench.dll [--store sqlite|redis] [--moves 50] [--size-mib 256] [--interval-ms 1000]
//                         [--no-gns-kill] [--no-failover] [--gns-down-ms 2000]
//                         [--minutes N [--rate-kib 1024]] [--csv FILE] [--svg FILE] [--json FILE] [--logs DIR]
//                         [--redis-options configCheckSeconds=2] [--daemon-env NAME=VALUE]...
//
// --minutes is the long mode: a move every --interval-ms for N minutes with a stream of --rate-kib KiB/s
// each way, sampling each daemon's VmRSS (and its anonymous, file and shmem parts), fds and threads every 10 s (--csv, --svg). --logs keeps the
// output of gns, redis-server and both daemons, one file each. --redis-options is appended to gns's
// Redis connection string (StackExchange.Redis syntax). --daemon-env (repeatable) sets a variable in
// both mobilityd's environment only, e.g. MALLOC_ARENA_MAX=2 or DOTNET_TieredPGO=0. Exit status 0 when
// no byte was lost, duplicated or corrupted and every move resumed; 1 otherwise; 64 for bad arguments.
using System.Globalization;
using System.Text.Json;
using Mobility.Netlab.Soak;

var options = new SoakOptions();
string? json = null;
for (var i = 0; i < args.Length; i++)
{
    string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    long Number() => long.Parse(Value(), NumberStyles.None, CultureInfo.InvariantCulture);
    try
    {
        options = args[i] switch
        {
            "--store" => options with { Store = Value() },
            "--moves" => options with { Moves = checked((int)Number()) },
            "--size-mib" => options with { Bytes = checked(Number() << 20) },
            "--interval-ms" => options with { MoveInterval = TimeSpan.FromMilliseconds(Math.Max(1, Number())) },
            "--no-gns-kill" => options with { KillGns = false },
            "--no-failover" => options with { Failover = false },
            "--gns-down-ms" => options with { GnsDown = TimeSpan.FromMilliseconds(Number()) },
            "--minutes" => options with { Duration = TimeSpan.FromMinutes(Math.Max(1, Number())) },
            "--rate-kib" => options with { RateBytesPerSecond = checked(Math.Max(1, Number()) << 10) },
            "--csv" => options with { CsvPath = Value() },
            "--svg" => options with { SvgPath = Value() },
            "--redis-options" => options with { RedisConnectionOptions = "," + Value() },
            "--logs" => options with { LogDirectory = Value() },
            "--daemon-env" => options with { DaemonEnvironment = WithVariable(options.DaemonEnvironment, Value()) },
            "--json" => SetJson(Value()),
            _ => throw new ArgumentException($"unknown argument {args[i]}"),
        };
    }
    catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
    {
        Console.Error.WriteLine($"soak-bench: {e.Message}");
        return 64;
    }
}

using var interrupt = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    interrupt.Cancel();
};
var result = await new SoakRunner(options).RunAsync(interrupt.Token);

Console.WriteLine($"fault soak on {result.Store}: {result.Moves.Count} moves in {result.ElapsedS:0} s, load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
Console.WriteLine($"{"direction",-9} {"sent",14} {"received",14} {"lost",8} {"duplicated",10} {"corrupt",8}  error");
foreach (var d in result.Directions)
{
    Console.WriteLine($"{d.Name,-9} {d.Sent,14} {d.Received,14} {d.Lost,8} {d.Duplicated,10} {d.Corrupt,8}  {d.Error ?? "-"}");
}

Console.WriteLine($"moves resumed {result.Moves.Count(m => m.Resumed)}/{result.Moves.Count}; stall per move median {result.StallMedianMs:0} ms, max {result.StallMaxMs:0} ms");
Console.WriteLine($"gns downtime (SIGKILL to ready again) {(result.GnsDowntimeMs is { } g ? $"{g:0} ms" : "-")}; redis failover (promote + SIGKILL old primary) {(result.FailoverMs is { } f ? $"{f:0} ms" : "-")}");
foreach (var group in result.Samples.GroupBy(s => s.Process))
{
    var s = group.ToList();
    Console.WriteLine($"{group.Key}: RSS first {s[0].RssKiB / 1024.0:0.0} MiB, last {s[^1].RssKiB / 1024.0:0.0} MiB, max {s.Max(x => x.RssKiB) / 1024.0:0.0} MiB (anonymous first {s[0].AnonKiB / 1024.0:0.0}, last {s[^1].AnonKiB / 1024.0:0.0} MiB); fds first {s[0].Fds} last {s[^1].Fds} max {s.Max(x => x.Fds)}; threads first {s[0].Threads} last {s[^1].Threads} max {s.Max(x => x.Threads)}");
}

if (json is not null)
{
    await File.WriteAllTextAsync(json, JsonSerializer.Serialize(new { result.Ok, result.StallMedianMs, result.StallMaxMs, result.Store, result.Directions, result.Moves, result.GnsDowntimeMs, result.FailoverMs, result.ElapsedS, result.Samples }, new JsonSerializerOptions { WriteIndented = true }));
}

Console.WriteLine(result.Ok ? "ok: 0 bytes lost, 0 duplicated, every move resumed" : "FAILED");
return result.Ok ? 0 : 1;

SoakOptions SetJson(string path)
{
    json = path;
    return options;
}

static Dictionary<string, string> WithVariable(IReadOnlyDictionary<string, string> environment, string assignment)
{
    var equals = assignment.IndexOf('=', StringComparison.Ordinal);
    if (equals <= 0)
    {
        throw new ArgumentException($"--daemon-env needs NAME=VALUE, not '{assignment}'");
    }

    return new Dictionary<string, string>(environment) { [assignment[..equals]] = assignment[(equals + 1)..] };
}
