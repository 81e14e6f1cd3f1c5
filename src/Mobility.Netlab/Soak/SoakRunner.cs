using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mobility.Daemon.Client;
using Mobility.Net.Socks5;
using Mobility.Protocol.Forwarding;
using Mobility.Netlab.Reporting;
using Mobility.Netlab.Systems.Mobility;

namespace Mobility.Netlab.Soak;

/// <summary>What one soak run does.</summary>
public sealed record SoakOptions
{
    /// <summary><c>sqlite</c> (gns --data) or <c>redis</c> (gns --redis primary,replica; redis-server from PATH).</summary>
    public string Store { get; init; } = "sqlite";

    public int Moves { get; init; } = 50;

    /// <summary>Bytes streamed in each direction (rounded down to whole 16-byte blocks). Ignored in long mode.</summary>
    public long Bytes { get; init; } = 256L << 20;

    public TimeSpan MoveInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>SIGKILL the gns process before the middle move; it is restarted after <see cref="GnsDown"/>.</summary>
    public bool KillGns { get; init; } = true;

    public TimeSpan GnsDown { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Redis only: promote the replica (REPLICAOF NO ONE) and SIGKILL the old primary before the move at three quarters.</summary>
    public bool Failover { get; init; } = true;

    /// <summary>Long mode: move every <see cref="MoveInterval"/> for this long with a paced stream each way, sampling the daemons.</summary>
    public TimeSpan? Duration { get; init; }

    /// <summary>Long mode's pace per direction.</summary>
    public long RateBytesPerSecond { get; init; } = 1 << 20;

    public TimeSpan SampleInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>A move whose streams do not both progress within this long counts as not resumed.</summary>
    public TimeSpan StallLimit { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Appended to gns's Redis connection string (StackExchange.Redis options, e.g. <c>,configCheckSeconds=2</c>).</summary>
    public string RedisConnectionOptions { get; init; } = "";

    public string? CsvPath { get; init; }

    public string? SvgPath { get; init; }

    /// <summary>A folder for the output of gns, redis-server and both mobilityd (one file each, appended across restarts).</summary>
    public string? LogDirectory { get; init; }

    /// <summary>Set in both mobilityd's environment only (e.g. <c>MALLOC_ARENA_MAX</c>, <c>DOTNET_TieredPGO</c>), to compare runtime settings under one load.</summary>
    public IReadOnlyDictionary<string, string> DaemonEnvironment { get; init; } = new Dictionary<string, string>();

    public TextWriter Log { get; init; } = Console.Error;
}

public sealed record DirectionResult(string Name, long Sent, long Received, long InOrder, long Lost, long Duplicated, long Corrupt, long FirstAnomalyAt, string? Error);

public sealed record MoveResult(int Move, string Who, bool Resumed, double StallMs, double PublishMs, string? Fault);

/// <summary>One sample of a daemon: VmRSS and its parts in KiB (anonymous: heaps, stacks, GC regions; file: mapped assemblies; shmem: JIT code), fds, threads.</summary>
public sealed record SampleRow(double ElapsedS, string Process, long RssKiB, long AnonKiB, long FileKiB, long ShmemKiB, int Fds, int Threads);

public sealed record SoakResult(
    string Store,
    IReadOnlyList<DirectionResult> Directions,
    IReadOnlyList<MoveResult> Moves,
    double? GnsDowntimeMs,
    double? FailoverMs,
    double ElapsedS,
    IReadOnlyList<SampleRow> Samples)
{
    public bool Ok => Directions.All(d => d.Error is null && d.Lost == 0 && d.Duplicated == 0 && d.Corrupt == 0 && d.Received == d.Sent)
                      && Moves.All(m => m.Resumed);

    public double StallMedianMs => Percentile(0.5);

    public double StallMaxMs => Moves.Count == 0 ? 0 : Moves.Max(m => m.StallMs);

    private double Percentile(double p)
    {
        var s = Moves.Select(m => m.StallMs).Order().ToArray();
        return s.Length == 0 ? 0 : s[(int)Math.Min(s.Length - 1, Math.Floor(p * s.Length))];
    }
}

/// <summary>
/// The fault soak: gns (SQLite, or Redis primary + replica), two mobilityd on 127.x.y.z addresses, a
/// checked stream each way (A's SOCKS5 to B's exposed port, B's SOCKS5 to A's), moves of one end, the
/// other and both with <c>PUT /v1/addresses</c>, SIGKILL of gns and a Redis failover in the middle.
/// </summary>
public sealed class SoakRunner
{
    /// <summary>Bytes a receiver must get after a move (past what was in flight when the move was published) to count as resumed.</summary>
    private const long ResumeProgress = 64 * 1024;

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    private readonly SoakOptions _o;
    private readonly string _work = Directory.CreateTempSubdirectory("fault-soak-").FullName;
    private readonly string _gnsDll = Executables.Locate("gns", "Mobility.Gns.Host");
    private readonly string _daemonDll = Executables.Locate("mobilityd", "Mobility.Daemon.Host");
    private readonly List<ChildProcess> _redis = [];
    private readonly string _subnet;
    private readonly int _gnsUdp = Host.FreeUdpPort();
    private readonly int _gnsGrpc = Host.FreeTcpPort();
    private readonly int _gnsHttp = Host.FreeTcpPort();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private ChildProcess? _gns;
    private int _redisPrimary;
    private int _redisReplica;

    public SoakRunner(SoakOptions options)
    {
        _o = options;
        // A /24 of 127/8 of its own, so that other loopback users (a default 7390/7391 on 127.0.0.2) do not collide.
        _subnet = $"127.{Random.Shared.Next(64, 250)}.{Random.Shared.Next(1, 250)}.";
    }

    public async Task<SoakResult> RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await RunCoreAsync(cancellationToken);
        }
        finally
        {
            if (_gns is not null)
            {
                await _gns.DisposeAsync();
            }

            foreach (var r in _redis)
            {
                await r.DisposeAsync();
            }

            try
            {
                Directory.Delete(_work, recursive: true);
            }
            catch (IOException)
            {
                // a child still closing a file: the temporary folder is left behind
            }
        }
    }

    private async Task<SoakResult> RunCoreAsync(CancellationToken cancellationToken)
    {
        if (_o.Store == "redis")
        {
            await StartRedisAsync();
        }
        else if (_o.Store != "sqlite")
        {
            throw new ArgumentException($"unknown store '{_o.Store}' (sqlite or redis)");
        }

        await StartGnsAsync();
        string[] poolA = [.. Enumerable.Range(10, 4).Select(i => _subnet + i.ToString(CultureInfo.InvariantCulture))];
        string[] poolB = [.. Enumerable.Range(20, 4).Select(i => _subnet + i.ToString(CultureInfo.InvariantCulture))];
        await using var a = await Daemon.StartAsync(this, "a", poolA[0]);
        await using var b = await Daemon.StartAsync(this, "b", poolB[0]);
        Say($"daemons a={a.Guid[..8]} at {poolA[0]}, b={b.Guid[..8]} at {poolB[0]}, gns on {_o.Store}");

        var longMode = _o.Duration is not null;
        var moves = longMode ? (int)(_o.Duration!.Value / _o.MoveInterval) : _o.Moves;
        var bytes = longMode ? long.MaxValue : _o.Bytes / CheckedStream.BlockSize * CheckedStream.BlockSize;
        // Paced so that the streams outlast the moves: the last bytes go after the last move, unpaced.
        var rate = longMode ? _o.RateBytesPerSecond : (long)(bytes / Math.Max(1, (moves + 2) * _o.MoveInterval.TotalSeconds));

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await using var ab = await Flow.StartAsync("a->b", a, b, 0xA5A5_0001UL, bytes, rate, stop.Token);
        await using var ba = await Flow.StartAsync("b->a", b, a, 0xA5A5_0002UL, bytes, rate, stop.Token);

        var samples = new List<SampleRow>();
        var sampler = longMode || _o.CsvPath is not null ? SampleAsync(samples, [("mobilityd-a", a.Process), ("mobilityd-b", b.Process)], stop.Token) : Task.CompletedTask;

        var results = new List<MoveResult>();
        double? gnsDowntime = null, failover = null;
        Task? gnsRestart = null;
        int ia = 0, ib = 0;
        for (var i = 0; i < moves; i++)
        {
            var next = _clock.Elapsed + _o.MoveInterval;
            string? fault = null;
            if (_o.KillGns && i == moves / 2)
            {
                fault = "gns SIGKILL";
                var killedAt = _clock.Elapsed;
                await _gns!.KillAsync();
                Say($"move {i + 1}: gns SIGKILLed; restart in {_o.GnsDown.TotalSeconds:0.#} s");
                gnsRestart = Task.Run(async () =>
                {
                    await Task.Delay(_o.GnsDown, cancellationToken);
                    await StartGnsAsync();
                    gnsDowntime = (_clock.Elapsed - killedAt).TotalMilliseconds;
                }, cancellationToken);
            }

            if (_o.Store == "redis" && _o.Failover && i == moves * 3 / 4)
            {
                fault = "redis failover";
                var started = _clock.Elapsed;
                await FailoverAsync();
                failover = (_clock.Elapsed - started).TotalMilliseconds;
                Say($"move {i + 1}: redis failover (replica promoted, old primary SIGKILLed) in {failover:0} ms");
            }

            var who = (i % 3) switch { 0 => "a", 1 => "b", _ => "both" };
            var t0 = _clock.Elapsed;
            var puts = new List<Task>();
            if (who != "b")
            {
                puts.Add(a.Api.SetAddressesAsync([poolA[++ia % poolA.Length]], cancellationToken));
            }

            if (who != "a")
            {
                puts.Add(b.Api.SetAddressesAsync([poolB[++ib % poolB.Length]], cancellationToken));
            }

            await Task.WhenAll(puts).WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            var published = (_clock.Elapsed - t0).TotalMilliseconds;
            var (mark1, mark2) = (ab.Checker.Received, ba.Checker.Received);
            var resumed = false;
            while (_clock.Elapsed - t0 < _o.StallLimit)
            {
                // A finished stream counts as progressing: nothing more was to come.
                if ((ab.Checker.Received - mark1 >= ResumeProgress || ab.Done) && (ba.Checker.Received - mark2 >= ResumeProgress || ba.Done))
                {
                    resumed = true;
                    break;
                }

                await Task.Delay(5, cancellationToken);
            }

            var stall = (_clock.Elapsed - t0).TotalMilliseconds;
            results.Add(new MoveResult(i + 1, who, resumed, stall, published, fault));
            Say($"move {i + 1}/{moves} {who,-4} {(resumed ? "resumed" : "NOT RESUMED")} stall {stall:0} ms publish {published:0} ms  a->b {ab.Checker.Received >> 20} MiB b->a {ba.Checker.Received >> 20} MiB");
            if (gnsRestart is { IsCompleted: true })
            {
                await gnsRestart;
                gnsRestart = null;
            }

            var wait = next - _clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, cancellationToken);
            }
        }

        if (gnsRestart is not null)
        {
            await gnsRestart.WaitAsync(StartTimeout, cancellationToken);
        }

        if (longMode)
        {
            ab.StopSending();
            ba.StopSending();
        }
        else
        {
            ab.Unpace();
            ba.Unpace();
        }

        // The rest of the 256 MiB at full speed, then EOF both ways; bounded by what a stalled stream can take.
        var directions = await Task.WhenAll(ab.CompleteAsync(TimeSpan.FromMinutes(10)), ba.CompleteAsync(TimeSpan.FromMinutes(10)));
        await stop.CancelAsync();
        await sampler;
        if (_o.CsvPath is not null)
        {
            WriteCsv(_o.CsvPath, samples);
        }

        if (_o.SvgPath is not null)
        {
            WriteCharts(_o.SvgPath, samples);
        }

        return new SoakResult(_o.Store, directions, results, gnsDowntime, failover, _clock.Elapsed.TotalSeconds, samples);
    }

    private async Task SampleAsync(List<SampleRow> samples, (string Name, ChildProcess Process)[] processes, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_o.SampleInterval);
        do
        {
            foreach (var (name, process) in processes)
            {
                if (!process.HasExited)
                {
                    var s = Host.Sample(process.Pid);
                    samples.Add(new SampleRow(Math.Round(_clock.Elapsed.TotalSeconds, 1), name, s.RssKiB, s.AnonKiB, s.FileKiB, s.ShmemKiB, s.Fds, s.Threads));
                }
            }
        }
        while (await NextTickAsync(timer, cancellationToken));
    }

    private static async Task<bool> NextTickAsync(PeriodicTimer timer, CancellationToken cancellationToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static void WriteCsv(string path, List<SampleRow> samples)
    {
        var csv = new StringBuilder("elapsed_s,process,rss_kib,rss_anon_kib,rss_file_kib,rss_shmem_kib,fds,threads\n");
        foreach (var s in samples)
        {
            csv.Append(CultureInfo.InvariantCulture, $"{s.ElapsedS},{s.Process},{s.RssKiB},{s.AnonKiB},{s.FileKiB},{s.ShmemKiB},{s.Fds},{s.Threads}\n");
        }

        File.WriteAllText(path, csv.ToString());
    }

    /// <summary>Two charts: RSS and its anonymous part (MiB) in <paramref name="path"/>, fds and threads beside it (<c>-fds.svg</c>).</summary>
    private static void WriteCharts(string path, List<SampleRow> samples)
    {
        var memory = new List<ChartSeries>();
        var handles = new List<ChartSeries>();
        foreach (var group in samples.GroupBy(s => s.Process))
        {
            memory.Add(new ChartSeries(group.Key, [.. group.Select(s => (s.ElapsedS, s.RssKiB / 1024.0))]));
            memory.Add(new ChartSeries(group.Key + " anon", [.. group.Select(s => (s.ElapsedS, s.AnonKiB / 1024.0))]));
            handles.Add(new ChartSeries(group.Key + " fds", [.. group.Select(s => (s.ElapsedS, (double)s.Fds))]));
            handles.Add(new ChartSeries(group.Key + " threads", [.. group.Select(s => (s.ElapsedS, (double)s.Threads))]));
        }

        File.WriteAllText(path, SvgChart.Render("mobilityd RSS during the soak", "elapsed (s)", [new ChartPanel("RSS (MiB)", memory)]));
        File.WriteAllText(Path.ChangeExtension(path, null) + "-fds.svg",
            SvgChart.Render("mobilityd file descriptors and threads during the soak", "elapsed (s)", [new ChartPanel("count", handles)]));
    }

    private async Task StartRedisAsync()
    {
        _redisPrimary = Host.FreeTcpPort();
        _redisReplica = Host.FreeTcpPort();
        _redis.Add(await StartRedisServerAsync(_redisPrimary, null));
        _redis.Add(await StartRedisServerAsync(_redisReplica, _redisPrimary));
        // The replica must hold the primary's data before the soak relies on it.
        var deadline = _clock.Elapsed + StartTimeout;
        while (!(await RedisCliAsync(_redisReplica, "INFO", "replication")).Contains("master_link_status:up", StringComparison.Ordinal))
        {
            if (_clock.Elapsed > deadline)
            {
                throw new TimeoutException("the redis replica never linked to its primary");
            }

            await Task.Delay(100);
        }
    }

    private async Task<ChildProcess> StartRedisServerAsync(int port, int? primary)
    {
        var dir = Path.Combine(_work, "redis-" + port.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dir);
        // Durable as docs/redis.md asks: every acknowledged write is in the AOF before the reply.
        List<string> args = ["--bind", "127.0.0.1", "--port", port.ToString(CultureInfo.InvariantCulture), "--dir", dir,
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes", "--daemonize", "no"];
        if (primary is { } p)
        {
            args.AddRange(["--replicaof", "127.0.0.1", p.ToString(CultureInfo.InvariantCulture)]);
        }

        var server = ChildProcess.Start("redis-server", args, "", LogFile("redis-" + port.ToString(CultureInfo.InvariantCulture)));
        var deadline = _clock.Elapsed + StartTimeout;
        while ((await RedisCliAsync(port, "PING")).Trim() != "PONG")
        {
            if (_clock.Elapsed > deadline)
            {
                throw new TimeoutException($"redis-server on {port} did not answer:\n{server.Output}");
            }

            await Task.Delay(50);
        }

        return server;
    }

    /// <summary>What an operator's script does without Sentinel: promote the replica, then make sure the old primary is gone.</summary>
    private async Task FailoverAsync()
    {
        var answer = (await RedisCliAsync(_redisReplica, "REPLICAOF", "NO", "ONE")).Trim();
        if (answer != "OK")
        {
            throw new InvalidOperationException("REPLICAOF NO ONE answered " + answer);
        }

        await _redis[0].KillAsync();
    }

    private static async Task<string> RedisCliAsync(int port, params string[] command)
    {
        var info = new ProcessStartInfo("redis-cli") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])["-h", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), .. command])
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return output;
    }

    private async Task StartGnsAsync()
    {
        List<string> args = [_gnsDll, "serve", "--udp", $"127.0.0.1:{_gnsUdp}", "--grpc", $"127.0.0.1:{_gnsGrpc}", "--http", $"127.0.0.1:{_gnsHttp}"];
        if (_o.Store == "redis")
        {
            // Both endpoints: the client follows whichever is the primary, as after a failover.
            args.AddRange(["--redis", $"127.0.0.1:{_redisPrimary},127.0.0.1:{_redisReplica}{_o.RedisConnectionOptions}"]);
        }
        else
        {
            args.AddRange(["--data", Path.Combine(_work, "gns-data")]);
        }

        var gns = ChildProcess.Start("dotnet", args, "gns listening ", LogFile("gns"));
        await gns.WaitReadyAsync(StartTimeout);
        _gns = gns;
    }

    private string? LogFile(string name)
    {
        if (_o.LogDirectory is null)
        {
            return null;
        }

        Directory.CreateDirectory(_o.LogDirectory);
        return Path.Combine(_o.LogDirectory, name + ".log");
    }

    private void Say(string line) => _o.Log.WriteLine($"[{_clock.Elapsed.TotalSeconds,7:0.0}s] {line}");

    /// <summary>One mobilityd with its API client.</summary>
    private sealed class Daemon : IAsyncDisposable
    {
        private Daemon(ChildProcess process, string guid, IPEndPoint socks, DaemonClient api)
        {
            Process = process;
            Guid = guid;
            Socks = socks;
            Api = api;
        }

        public ChildProcess Process { get; }

        public string Guid { get; }

        public IPEndPoint Socks { get; }

        public DaemonClient Api { get; }

        public static async Task<Daemon> StartAsync(SoakRunner soak, string name, string address)
        {
            var dir = Path.Combine(soak._work, name);
            Directory.CreateDirectory(dir);
            var socket = Path.Combine(dir, "api.sock");
            var process = ChildProcess.Start("dotnet",
                [soak._daemonDll, "--state-dir", dir, "--socket", socket, "--grpc-socket", "off", "--http", "off", "--grpc", "off",
                 "--socks", "127.0.0.1:0", "--address", address, "--allow-loopback", "true",
                 "--gns", $"127.0.0.1:{soak._gnsUdp}", "--gns-grpc", $"http://127.0.0.1:{soak._gnsGrpc}"],
                "mobilityd ready ", soak.LogFile("mobilityd-" + name), soak._o.DaemonEnvironment);
            try
            {
                var ready = await process.WaitReadyAsync(StartTimeout);
                var fields = ready.Split(' ').Select(f => f.Split('=', 2)).Where(f => f.Length == 2).ToDictionary(f => f[0], f => f[1]);
                return new Daemon(process, fields["guid"], IPEndPoint.Parse(fields["socks"]), new DaemonClient(socket));
            }
            catch
            {
                await process.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            Api.Dispose();
            await Process.DisposeAsync();
        }
    }

    /// <summary>
    /// One direction: a TCP receiver on 127.0.0.1 exposed by the receiving daemon, and a sender that
    /// reaches it through the sending daemon's SOCKS5 endpoint as <c>&lt;guid&gt;.guid:port</c>.
    /// </summary>
    private sealed class Flow : IAsyncDisposable
    {
        private const int Chunk = 64 * 1024;

        private readonly string _name;
        private readonly ulong _seed;
        private readonly long _bytes;
        private readonly Socket _listener;
        private readonly CancellationTokenSource _stopSending = new();
        private Socket? _client;
        private Task<long> _sender = Task.FromResult(0L);
        private Task _receiver = Task.CompletedTask;
        private long _rate;
        private string? _error;

        private Flow(string name, ulong seed, long bytes, long rate, Socket listener)
        {
            _name = name;
            _seed = seed;
            _bytes = bytes;
            _rate = rate;
            _listener = listener;
            Checker = new StreamChecker(seed);
        }

        public StreamChecker Checker { get; }

        public bool Done => _receiver.IsCompleted;

        public static async Task<Flow> StartAsync(string name, Daemon from, Daemon to, ulong seed, long bytes, long rate, CancellationToken cancellationToken)
        {
            var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(4);
            var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
            var flow = new Flow(name, seed, bytes, rate, listener);
            await to.Api.ExposeAsync(port, null, cancellationToken);
            flow._receiver = flow.ReceiveAsync(cancellationToken);
            // The sender's daemon may not see the receiver's record at once after start: retry the open for a while.
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    timeout.CancelAfter(TimeSpan.FromSeconds(30));
                    await socket.ConnectAsync(from.Socks, timeout.Token);
                    var reply = await Socks5Client.ConnectAsync(socket, to.Guid + ".guid", checked((ushort)port), timeout.Token);
                    if (reply != Socks5Reply.Succeeded)
                    {
                        throw new IOException($"SOCKS5 CONNECT to {to.Guid}.guid:{port} answered {reply}");
                    }

                    flow._client = socket;
                    break;
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException && deadline.Elapsed < StartTimeout)
                {
                    socket.Dispose();
                    await Task.Delay(200, cancellationToken);
                }
            }

            flow._sender = flow.SendAsync(cancellationToken);
            return flow;
        }

        public void Unpace() => Interlocked.Exchange(ref _rate, 0);

        public void StopSending() => _stopSending.Cancel();

        /// <summary>Waits for the sender to finish and the receiver to see EOF; the checker then counts what never came.</summary>
        public async Task<DirectionResult> CompleteAsync(TimeSpan limit)
        {
            long sent = 0;
            try
            {
                sent = await _sender.WaitAsync(limit);
                await _receiver.WaitAsync(limit);
            }
            catch (Exception e) when (e is TimeoutException or IOException or SocketException)
            {
                _error ??= e.GetType().Name + ": " + e.Message;
            }

            Checker.Finish(sent);
            return new DirectionResult(_name, sent, Checker.Received, (long)Checker.Next * CheckedStream.BlockSize - Checker.Lost,
                Checker.Lost, Checker.Duplicated, Checker.Corrupt, Checker.FirstAnomalyAt, _error);
        }

        public async ValueTask DisposeAsync()
        {
            _stopSending.Cancel();
            _client?.Dispose();
            _listener.Dispose();
            try
            {
                await Task.WhenAll(_sender, _receiver).WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or TimeoutException or ObjectDisposedException)
            {
                // torn down after the result was taken
            }

            _stopSending.Dispose();
        }

        private async Task<long> SendAsync(CancellationToken cancellationToken)
        {
            await Task.Yield();
            var buffer = new byte[Chunk];
            long sent = 0;
            var clock = Stopwatch.StartNew();
            try
            {
                while (sent < _bytes && !_stopSending.IsCancellationRequested)
                {
                    var rate = Interlocked.Read(ref _rate);
                    if (rate > 0)
                    {
                        var ahead = TimeSpan.FromSeconds(sent / (double)rate) - clock.Elapsed;
                        if (ahead > TimeSpan.FromMilliseconds(2))
                        {
                            await Task.Delay(ahead, _stopSending.Token);
                            continue;
                        }
                    }

                    var n = (int)Math.Min(Chunk, _bytes - sent);
                    CheckedStream.Fill(buffer.AsSpan(0, n), _seed, (ulong)(sent / CheckedStream.BlockSize));
                    var written = 0;
                    while (written < n)
                    {
                        written += await _client!.SendAsync(buffer.AsMemory(written, n - written), cancellationToken);
                    }

                    sent += n;
                }
            }
            catch (OperationCanceledException) when (_stopSending.IsCancellationRequested)
            {
                // long mode's end: whole chunks only were sent
            }

            _client!.Shutdown(SocketShutdown.Send);
            return sent;
        }

        private async Task ReceiveAsync(CancellationToken cancellationToken)
        {
            using var accepted = await _listener.AcceptAsync(cancellationToken);
            var buffer = new byte[Chunk];
            while (true)
            {
                var n = await accepted.ReceiveAsync(buffer, cancellationToken);
                if (n == 0)
                {
                    return;
                }

                Checker.Add(buffer.AsSpan(0, n));
            }
        }
    }
}
