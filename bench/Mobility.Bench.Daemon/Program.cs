// daemon-bench: latency of mobilityd's get_ip (cached GUID, Unix socket, HTTP/JSON) and of one
// verify_self challenge round trip on loopback, measured against two real mobilityd processes.
//
//   dotnet daemon-bench.dll [--mobilityd PATH/mobilityd.dll] [--count 5000] [--json FILE]
//   dotnet daemon-bench.dll moves [--mobilityd PATH/mobilityd.dll] [--moves 30] [--json FILE]   (MoveLatency.cs)
//
// Side by side in the same run, as anchors: an HTTP GET over the same Unix socket of a route that
// does no work (/v1/self) and a UDP echo round trip on loopback, so the cost our code adds to the
// transport underneath is visible as a difference and a ratio on this noisy machine.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Mobility.Daemon.Client;
using Mobility.Net.Processes;
using Mobility.Protocol.Challenge;
using Mobility.Protocol.Identity;

if (args is ["moves", ..])
{
    return await MoveLatency.RunAsync(args[1..], Locate);
}

var count = 5000;
string? mobilityd = null;
string? jsonOut = null;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--count": count = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--mobilityd": mobilityd = args[++i]; break;
        case "--json": jsonOut = args[++i]; break;
        default: Console.Error.WriteLine($"daemon-bench: unknown argument {args[i]}"); return 64;
    }
}

mobilityd ??= Locate();
var root = Directory.CreateTempSubdirectory("daemon-bench-").FullName;
await using var a = await Daemon.StartAsync(mobilityd, Path.Combine(root, "a"),
    ["--embedded-gns", "--embedded-gns-udp", "127.0.0.1:0", "--address", "127.0.0.2", "--control", "127.0.0.2:0"]);
await using var b = await Daemon.StartAsync(mobilityd, Path.Combine(root, "b"),
    // All challenges come from one source address: lift the per-source limit the control endpoint applies to floods.
    ["--gns", a.Field("gns"), "--address", "127.0.0.3", "--control", "127.0.0.3:0",
     "--ControlLimits:RequestsPerSecond", "1000000", "--ControlLimits:Burst", "1000000"]);
var bGuid = b.Field("guid");
var bControl = b.EndPoint("control");

using var http = UnixHttp(a.Socket);
// B publishes to A's embedded GNS shortly after start: wait until A resolves it (this also fills A's cache).
var sw = Stopwatch.StartNew();
while (true)
{
    using var probe = await http.GetAsync($"http://mobilityd/v1/ip/{bGuid}");
    var body = await probe.Content.ReadAsStringAsync();
    if (probe.IsSuccessStatusCode && body.Contains("127.0.0.3", StringComparison.Ordinal))
    {
        break;
    }

    if (sw.Elapsed > TimeSpan.FromSeconds(30))
    {
        Console.Error.WriteLine($"daemon-bench: daemon A never resolved B: {(int)probe.StatusCode} {body}");
        return 1;
    }

    await Task.Delay(100);
}

var results = new List<Result>
{
    await MeasureAsync("get_ip (cached GUID) over the Unix socket, HTTP/JSON", count, async () =>
    {
        using var r = await http.GetAsync($"http://mobilityd/v1/ip/{bGuid}", HttpCompletionOption.ResponseContentRead);
        r.EnsureSuccessStatusCode();
    }),
    await MeasureAsync("anchor: GET /v1/self over the same Unix socket", count, async () =>
    {
        using var r = await http.GetAsync("http://mobilityd/v1/self", HttpCompletionOption.ResponseContentRead);
        r.EnsureSuccessStatusCode();
    }),
};

using var me = HostKey.Generate();
using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
var buffer = new byte[2048];
var expected = HostGuid.Parse(bGuid);
results.Add(await MeasureAsync("challenge round trip (verify_self, signature checked)", count, async () =>
{
    var request = ChallengeRequest.Create(me.Guid, expected);
    await udp.SendToAsync(ChallengeDatagram.WriteRequest(request), bControl);
    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
    var received = await udp.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), timeout.Token);
    var response = ChallengeDatagram.ParseResponse(buffer.AsSpan(0, received.ReceivedBytes));
    if (!response.Nonce.Span.SequenceEqual(request.Nonce.Span) || response.Responder != expected || !response.Verify())
    {
        throw new InvalidOperationException("challenge response did not verify");
    }
}));

using var echoServer = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
echoServer.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.3"), 0));
using var stop = new CancellationTokenSource();
var echo = Task.Run(async () =>
{
    var b2 = new byte[2048];
    try
    {
        while (true)
        {
            var r = await echoServer.ReceiveFromAsync(b2, new IPEndPoint(IPAddress.Any, 0), stop.Token);
            await echoServer.SendToAsync(b2.AsMemory(0, 179), r.RemoteEndPoint);
        }
    }
    catch (OperationCanceledException)
    {
    }
});
var echoPayload = new byte[128];
results.Add(await MeasureAsync("anchor: UDP echo round trip on loopback (128 B -> 179 B)", count, async () =>
{
    await udp.SendToAsync(echoPayload, echoServer.LocalEndPoint!);
    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
    await udp.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), timeout.Token);
}));
stop.Cancel();
await echo;

var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
Console.WriteLine($"mobilityd latency, {count} sequential operations each, load average {load}");
Console.WriteLine($"{"operation",-58} {"p50 us",9} {"p99 us",9} {"mean us",9}");
foreach (var r in results)
{
    Console.WriteLine($"{r.Name,-58} {r.P50,9:0} {r.P99,9:0} {r.Mean,9:0}");
}

Console.WriteLine($"get_ip p50 / socket anchor p50: {results[0].P50 / results[1].P50:0.00}; challenge p50 / UDP echo p50: {results[2].P50 / results[3].P50:0.00}");
if (jsonOut is not null)
{
    await File.WriteAllTextAsync(jsonOut, JsonSerializer.Serialize(new { load, count, results }, new JsonSerializerOptions { WriteIndented = true }));
}

Directory.Delete(root, recursive: true);
return 0;

static async Task<Result> MeasureAsync(string name, int count, Func<Task> operation)
{
    for (var i = 0; i < Math.Min(500, count); i++)
    {
        await operation(); // warm-up: JIT, connection pool, caches
    }

    var samples = new double[count];
    for (var i = 0; i < count; i++)
    {
        var start = Stopwatch.GetTimestamp();
        await operation();
        samples[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    }

    Array.Sort(samples);
    return new Result(name, samples[count / 2], samples[(int)(count * 0.99)], samples.Average());
}

static HttpClient UnixHttp(string socketPath) => UnixSocketHttp.CreateClient(socketPath, TimeSpan.FromSeconds(100));

static string Locate()
{
    var here = AppContext.BaseDirectory;
    foreach (var candidate in new[]
    {
        Path.Combine(here, "..", "..", "..", "..", "..", "src", "Mobility.Daemon.Host", "bin", new DirectoryInfo(here).Parent!.Name, new DirectoryInfo(here).Name, "mobilityd.dll"),
        Path.Combine(here, "..", "..", "Mobility.Daemon.Host", new DirectoryInfo(here).Name, "mobilityd.dll"),
    })
    {
        if (File.Exists(candidate))
        {
            return Path.GetFullPath(candidate);
        }
    }

    throw new FileNotFoundException("mobilityd.dll not found; pass --mobilityd PATH");
}

internal sealed record Result(string Name, double P50, double P99, double Mean);

internal sealed class Daemon : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ReadyLine _ready;

    private Daemon(Process process, ReadyLine ready, string socket)
    {
        _process = process;
        _ready = ready;
        Socket = socket;
    }

    public string Socket { get; }

    public string Field(string name) => _ready.Require(name);

    public IPEndPoint EndPoint(string name) => _ready.EndPoint(name) ?? throw new FormatException($"mobilityd's ready line has {name}=-");

    public static async Task<Daemon> StartAsync(string dll, string dir, string[] extra)
    {
        Directory.CreateDirectory(dir);
        var socket = Path.Combine(dir, "d.sock");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // gRPC is off unless the caller turns it on (the embedded GNS's watches need it).
        string[] grpc = extra.Contains("--grpc") ? [] : ["--grpc", "off"];
        foreach (var a in new[] { dll, "--state-dir", dir, "--socket", socket, "--http", "127.0.0.1:0", "--allow-loopback", "true" }.Concat(grpc).Concat(extra))
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info)!;
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            var line = await process.StandardOutput.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("mobilityd exited before it was ready");
            if (line.StartsWith("mobilityd ready ", StringComparison.Ordinal))
            {
                return new Daemon(process, ReadyLine.Find(line, "mobilityd ready"), socket);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
