using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Mobility.Bench.Gns;

// gns-bench: scenario load generator for the GNS datagram protocol (and, with the same client, DNS).
//   gns-bench run  --gns IP:PORT [--records N] [--duration S] [--concurrency C] [--sockets K] [--skip-preload] [--json FILE]
//   gns-bench dns  --server IP:PORT --zone gns.test [--records N] [--duration S] [--concurrency C] [--sockets K] [--json FILE]
//   gns-bench zone --zone gns.test --zone-file FILE --query-file FILE [--records N]
//   gns-bench watch-latency --gns IP:PORT --watch-grpc http://IP:PORT [--updates N] [--hosts K] [--pause-ms P] [--json FILE]
//   gns-bench claims --gns IP:PORT [--owner IP] [--attacker IP] [--flood N] [--spread K] [--lookups L]
//   gns-bench tls-latency --gns IP:PORT --tls IP:PORT --pin SHA256 [--lookups N] [--rounds R]
//   gns-bench soak --gns IP:PORT [--pid PID] [--duration S] [--lookup-rate L] [--update-rate U] [--hosts K] [--sample S] [--csv F] [--svg F] [--json F]
//
// Socket completions run inline on the epoll thread instead of hopping to the thread pool: for a load
// generator whose per-reply work is a few microseconds, the hop costs more than the work (measured
// against Knot on 2 cores: about 1.5x the lookups/s of the default). Read once, when the first
// async socket operation starts, so it must be set before any socket is used.
if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") is null)
{
    Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
}

return await BenchCommand.RunAsync(args);

internal static class BenchCommand
{
    private const string Usage = """
        gns-bench: load generator for the GNS datagram protocol (one request datagram, one reply).

          gns-bench run  --gns IP:PORT [options]     preload N signed records, then timed lookups by GUID
          gns-bench dns  --server IP:PORT --zone Z   the same timed lookups as DNS A queries (same client)
          gns-bench zone --zone Z --zone-file F --query-file F [--records N]
                                                     write the same N hosts as a DNS zone and a dnsperf query file
          gns-bench watch-latency --gns IP:PORT --watch-grpc http://IP:PORT [--updates N] [--hosts K] [--pause-ms P]
                                                     send N signed updates (one at a time) to the gns at --gns over UDP and
                                                     time each until the Watch stream of the gns at --watch-grpc pushes it
          gns-bench claims --gns IP:PORT [--owner IP] [--attacker IP] [--flood N] [--spread K] [--lookups L]
                                                     reverse lookups of the owner's address (the owner's update sent from
                                                     --owner, default 127.0.0.10) timed before and after a flood from
                                                     --attacker (default 127.0.0.66): N keys claiming the owner's address
                                                     (default 10000) and K keys of 8 other addresses each (default 1000);
                                                     L lookups each time (default 2000); exit 1 unless the owner is always first
          gns-bench soak --gns IP:PORT [--pid PID] [--duration S] [--lookup-rate L] [--update-rate U] [--hosts K] [--sample S]
                         [--csv F] [--svg F] [--json F]
                                                     steady lookups + signed updates (default 2000/s + 200/s, 1000 hosts, 600 s),
                                                     sampling the gns process PID (VmRSS, CPU) and latencies every S s (default 5);
                                                     at the end checks that every acknowledged update is what a lookup returns
          gns-bench soak-chart --csv F --svg F [--title T]  draw a soak's SVG chart again from its CSV
          gns-bench tls-latency --gns IP:PORT --tls IP:PORT --pin SHA256 [--lookups N] [--rounds R]
                                                     lookups of one record, one at a time, over UDP (--gns) and over TLS
                                                     (the gns's --tls-listen, certificate pinned) in alternating rounds
                                                     (default 5 x 2000 each); per-round medians, their median, tls/udp

        Options:
          --records N              hosts (default 100000); host i is derived from i, so every tool names the same hosts
          --duration S             measured lookup window in seconds (default 10)
          --warmup S               lookups before the window, not counted (default 1)
          --concurrency C          lookups outstanding at once, like dnsperf -q (default 100)
          --sockets K              UDP sockets (clients), like dnsperf -c (default 4)
          --update-concurrency U   signed updates in flight during the preload (default 256)
          --timeout-ms T           a request unanswered after T ms is lost (default 1000; preload retries it)
          --preload-timeout S      upper bound of the preload (default 600)
          --skip-preload           lookups only (records already stored by an earlier run)
          --data-cache FILE        keep the derived hosts and signed records in FILE and reuse them (same --records);
                                   the cached records keep their version, so use them only against a fresh server
          --label TEXT             a label for the table and JSON (for example the store)
          --json FILE              also write the results as JSON
        Socket completions run inline (DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1) unless that variable is set.
        The server must not rate-limit the generator: run gns with GNS_Gns__RequestsPerSecond=1000000000 GNS_Gns__Burst=1000000.
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        var verb = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "run";
        var rest = args.Length > 0 && !args[0].StartsWith('-') ? args[1..] : args;
        Dictionary<string, string?> options;
        try
        {
            options = ParseOptions(rest);
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync($"gns-bench: {e.Message}\n\n{Usage}");
            return 2;
        }

        if (options.ContainsKey("help") || verb is "help" or "-h")
        {
            Console.WriteLine(Usage);
            return 0;
        }

        try
        {
            return verb switch
            {
                "run" => await RunGnsAsync(options),
                "dns" => await RunDnsAsync(options),
                "zone" => WriteZone(options),
                "watch-latency" => await WatchLatency.RunAsync(EndPoint(options, "gns"),
                    Uri.TryCreate(Text(options, "watch-grpc"), UriKind.Absolute, out var watchGrpc) ? watchGrpc
                        : throw new ArgumentException("--watch-grpc http://IP:PORT is required"),
                    Int(options, "updates", 200), Int(options, "hosts", 16),
                    TimeSpan.FromMilliseconds(Double(options, "pause-ms", 0)), Text(options, "json")),
                "claims" => await ClaimFlood.RunAsync(new ClaimFlood.Settings(EndPoint(options, "gns"),
                    IPAddress.Parse(Text(options, "owner", "127.0.0.10")), IPAddress.Parse(Text(options, "attacker", "127.0.0.66")),
                    Int(options, "flood", 10_000), Int(options, "spread", 1_000), Int(options, "lookups", 2_000))),
                "soak" => await Soak.RunAsync(new Soak.Settings(EndPoint(options, "gns"),
                    options.ContainsKey("pid") ? Int(options, "pid", 0) : null,
                    TimeSpan.FromSeconds(Double(options, "duration", 600)), Int(options, "lookup-rate", 2000), Int(options, "update-rate", 200),
                    Int(options, "hosts", 1000), TimeSpan.FromSeconds(Math.Max(1, Double(options, "sample", 5))),
                    Text(options, "csv"), Text(options, "svg"), Text(options, "json"), Text(options, "label", "gns"))),
                "tls-latency" => await TlsLatency.RunAsync(EndPoint(options, "gns"), EndPoint(options, "tls"),
                    Text(options, "pin") ?? throw new ArgumentException("--pin SHA256 is required"), Int(options, "lookups", 2000), Int(options, "rounds", 5)),
                "soak-chart" => Soak.RenderCsv(Text(options, "csv") ?? throw new ArgumentException("--csv FILE is required"),
                    Text(options, "svg") ?? throw new ArgumentException("--svg FILE is required"), Text(options, "title", "gns soak")),
                _ => throw new ArgumentException($"unknown command '{verb}'"),
            };
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync($"gns-bench: {e.Message}\n\n{Usage}");
            return 2;
        }
    }

    private static async Task<int> RunGnsAsync(Dictionary<string, string?> o)
    {
        var server = EndPoint(o, "gns");
        var records = Int(o, "records", 100_000);
        var label = Text(o, "label", "gns");
        var results = new List<LoadResult>();
        var skipPreload = o.ContainsKey("skip-preload");

        var prep = Stopwatch.StartNew();
        // Versions are milliseconds since 1970, so a later run's records always replace an earlier run's.
        var version = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var data = Text(o, "data-cache") is { } cache ? BenchData.LoadOrCreate(cache, records, version)
            : BenchData.Create(records, skipPreload ? null : version);
        Console.Error.WriteLine($"gns-bench: derived {records:N0} hosts{(skipPreload ? "" : " and signed their records")} in {prep.Elapsed.TotalSeconds:F1} s");

        if (!skipPreload)
        {
            var preload = new LoadRunner(new GnsUpdateProtocol(data), records, new LoadSettings(
                server,
                Sockets: Int(o, "sockets", 4),
                Concurrency: Int(o, "update-concurrency", 256),
                Timeout: TimeSpan.FromMilliseconds(Math.Max(2000, Int(o, "timeout-ms", 1000))),
                Mode: LoadMode.EachItemOnce,
                Warmup: TimeSpan.Zero,
                Duration: TimeSpan.Zero,
                TimeLimit: TimeSpan.FromSeconds(Int(o, "preload-timeout", 600))));
            var result = await preload.RunAsync();
            result.Phase = "update";
            result.Label = label;
            results.Add(result);
            Warn(result, records);
        }

        var lookup = await RunLookupsAsync(new GnsLookupProtocol(data), server, records, o);
        lookup.Label = label;
        results.Add(lookup);
        Warn(lookup, records);
        Report(results, o);
        return results.All(r => r.VerifyFailures == 0 && r.FailedItems == 0) ? 0 : 1;
    }

    private static async Task<int> RunDnsAsync(Dictionary<string, string?> o)
    {
        var server = EndPoint(o, "server");
        var records = Int(o, "records", 100_000);
        var data = Text(o, "data-cache") is { } cache
            ? BenchData.LoadOrCreate(cache, records, (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())
            : BenchData.Create(records, version: null);
        var result = await RunLookupsAsync(new DnsLookupProtocol(data, Text(o, "zone", "gns.test")), server, records, o);
        result.Label = Text(o, "label", "dns");
        Warn(result, records);
        Report([result], o);
        return result.VerifyFailures == 0 ? 0 : 1;
    }

    private static async Task<LoadResult> RunLookupsAsync(LoadProtocol protocol, IPEndPoint server, int records, Dictionary<string, string?> o)
    {
        var runner = new LoadRunner(protocol, records, new LoadSettings(
            server,
            Sockets: Int(o, "sockets", 4),
            Concurrency: Int(o, "concurrency", 100),
            Timeout: TimeSpan.FromMilliseconds(Int(o, "timeout-ms", 1000)),
            Mode: LoadMode.Timed,
            Warmup: TimeSpan.FromSeconds(Double(o, "warmup", 1)),
            Duration: TimeSpan.FromSeconds(Double(o, "duration", 10)),
            TimeLimit: TimeSpan.FromSeconds(Double(o, "warmup", 1) + Double(o, "duration", 10) + 30)));
        var result = await runner.RunAsync();
        result.Phase = "lookup";
        return result;
    }

    private static int WriteZone(Dictionary<string, string?> o)
    {
        var records = Int(o, "records", 100_000);
        var data = Text(o, "data-cache") is { } cache
            ? BenchData.LoadOrCreate(cache, records, (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())
            : BenchData.Create(records, version: null);
        var zoneFile = Text(o, "zone-file") ?? throw new ArgumentException("--zone-file is required");
        var queryFile = Text(o, "query-file") ?? throw new ArgumentException("--query-file is required");
        data.WriteZone(Text(o, "zone", "gns.test"), zoneFile, queryFile);
        Console.Error.WriteLine($"gns-bench: wrote {records:N0} names to {zoneFile} and {queryFile}");
        return 0;
    }

    private static void Warn(LoadResult r, int records)
    {
        if (r.Outcomes.TryGetValue(nameof(ReplyOutcome.RateLimited), out var limited))
        {
            Console.Error.WriteLine($"gns-bench: WARNING {limited:N0} replies were RateLimited: start gns with GNS_Gns__RequestsPerSecond=1000000000 GNS_Gns__Burst=1000000");
        }

        if (r.Phase == "lookup" && r.Outcomes.TryGetValue(nameof(ReplyOutcome.NotFound), out var missing))
        {
            Console.Error.WriteLine($"gns-bench: WARNING {missing:N0} lookups found no record: are the {records:N0} records stored?");
        }

        if (r.VerifyFailures > 0 || r.Outcomes.ContainsKey(nameof(ReplyOutcome.WrongAnswer)))
        {
            Console.Error.WriteLine($"gns-bench: ERROR replies failed verification ({r.VerifyFailures} of {r.VerifiedSamples + r.VerifyFailures} samples)");
        }

        if (r.Phase == "update" && r.Ok + r.StaleAfterRetry < records)
        {
            Console.Error.WriteLine($"gns-bench: WARNING only {r.Ok + r.StaleAfterRetry:N0} of {records:N0} updates were acknowledged ({r.FailedItems:N0} failed)");
        }
    }

    private static void Report(List<LoadResult> results, Dictionary<string, string?> o)
    {
        Console.WriteLine($"{"phase",-7} {"label",-14} {"sockets",7} {"conc",5} {"seconds",8} {"answered",10} {"per s",10} {"mean ms",8} {"p50 ms",7} {"p99 ms",7} {"max ms",8} {"errors",7} {"lost",6} {"verified",9} load avg");
        foreach (var r in results)
        {
            var errors = r.Outcomes.Where(kv => kv.Key != nameof(ReplyOutcome.Ok)).Sum(kv => kv.Value);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Phase,-7} {r.Label,-14} {r.Sockets,7} {r.Concurrency,5} {r.Seconds,8:F2} {r.Answered,10} {r.PerSecond,10:F0} {r.MeanMs,8:F3} {r.P50Ms,7:F3} {r.P99Ms,7:F3} {r.MaxMs,8:F2} {errors,7} {r.Timeouts + r.LostAtEnd,6} {r.VerifiedSamples,4}/{r.VerifiedSamples + r.VerifyFailures,-4} {r.LoadAverageAfter}"));
            if (errors > 0 || r.Retries > 0)
            {
                Console.WriteLine($"        replies: {string.Join(", ", r.Outcomes.Select(kv => $"{kv.Key}={kv.Value}"))}; retries={r.Retries}, failed={r.FailedItems}, stale-after-retry={r.StaleAfterRetry}, late={r.Late}");
            }
        }

        if (Text(o, "json") is { } path)
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(path));
            if (directory is not null)
            {
                Directory.CreateDirectory(directory);
            }

            File.WriteAllText(path, JsonSerializer.Serialize(results, JsonOptions));
        }
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    private static Dictionary<string, string?> ParseOptions(string[] args)
    {
        var flags = new HashSet<string> { "skip-preload", "help" };
        var options = new Dictionary<string, string?>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"unexpected argument '{args[i]}'");
            }

            var name = args[i][2..];
            if (flags.Contains(name))
            {
                options[name] = null;
            }
            else if (i + 1 < args.Length)
            {
                options[name] = args[++i];
            }
            else
            {
                throw new ArgumentException($"--{name} needs a value");
            }
        }

        return options;
    }

    private static IPEndPoint EndPoint(Dictionary<string, string?> o, string name)
        => o.TryGetValue(name, out var text) && IPEndPoint.TryParse(text ?? "", out var endPoint) && endPoint.Port != 0
            ? endPoint
            : throw new ArgumentException($"--{name} IP:PORT is required");

    private static int Int(Dictionary<string, string?> o, string name, int fallback)
        => !o.TryGetValue(name, out var text) ? fallback
            : int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value > 0 ? value
            : throw new ArgumentException($"--{name} must be a positive integer");

    private static double Double(Dictionary<string, string?> o, string name, double fallback)
        => !o.TryGetValue(name, out var text) ? fallback
            : double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= 0 ? value
            : throw new ArgumentException($"--{name} must be a non-negative number");

    private static string Text(Dictionary<string, string?> o, string name, string fallback)
        => o.TryGetValue(name, out var text) && text is not null ? text : fallback;

    private static string? Text(Dictionary<string, string?> o, string name)
        => o.TryGetValue(name, out var text) ? text : null;
}
