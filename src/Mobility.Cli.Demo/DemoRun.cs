using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;
using Mobility.Net.Text;
using Mobility.Protocol.Identity;
using Mobility.Transport;

namespace Mobility.Cli.Demo;

/// <summary>Where a demo is.</summary>
public enum DemoPhase
{
    Starting,
    Streaming,
    Closing,
    Done,
}

/// <summary>A host as the display shows it.</summary>
public sealed record DemoHostView(string Name, HostGuid Guid, IPAddress Address, IPEndPoint Listening, ulong RecordVersion);

/// <summary>What a finished demo measured.</summary>
public sealed record DemoResult(
    bool Ok,
    string Verdict,
    IReadOnlyList<DemoMove> Moves,
    long BytesSent,
    long BytesReceived,
    byte[]? SentHash,
    byte[]? ReceivedHash,
    double StreamSeconds,
    ulong Seed,
    IPEndPoint GnsUdp,
    Uri GnsGrpc,
    IReadOnlyList<DemoHostView> Hosts,
    MobileConnectionStatistics? ClientStatistics,
    int LogProblemCount,
    IReadOnlyList<string> LogProblems);

/// <summary>
/// <c>mob demo</c> itself: an embedded GNS on SQLite in a temporary folder, hosts alice and bob
/// (fresh identities, registered by name), one mobile connection alice → bob opened by GUID, data
/// streamed through it while alice moves, then bob, then both at once; every move's stall measured
/// at the receiving application; SHA-256 of both ends compared. Everything it started is stopped and
/// the folder removed, also on Ctrl-C. The display polls the public state.
/// </summary>
public sealed class DemoRun
{
    public const string ClientName = "alice";
    public const string ServerName = "bob";

    /// <summary>Connecting (lookup, handshake) on loopback takes milliseconds; this bounds a broken setup.</summary>
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The graceful close (both FINs acknowledged) after the last byte.</summary>
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How long a moved host may take to get its new record stored.</summary>
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Who moves, in order: the client, the server, then both at the same instant.</summary>
    private static readonly string[][] Plan = [[ClientName], [ServerName], [ClientName, ServerName]];

    private readonly DemoSettings _settings;
    private readonly TextWriter _stderr;
    private readonly Lock _gate = new();
    private readonly List<DemoMove> _moves = [];
    private readonly List<Task> _publishWaits = [];
    private DemoMove? _current;
    private DemoHost? _alice;
    private DemoHost? _bob;
    private int _phase;
    private long _streamStartedAt;
    private long _streamEndedAt;

    public DemoRun(DemoSettings settings, TextWriter stderr)
    {
        _settings = settings;
        _stderr = stderr;
    }

    /// <summary>One line per step (GNS up, hosts registered, connected, each move and its resume); raised on any thread.</summary>
    public event Action<string>? Event;

    public static int MoveCount => Plan.Length;

    public DemoSettings Settings => _settings;

    public DemoTraffic Traffic { get; } = new();

    public DemoPhase Phase => (DemoPhase)Volatile.Read(ref _phase);

    /// <summary>Seconds since the stream started (0 before; frozen at its end).</summary>
    public double StreamSeconds
    {
        get
        {
            var start = Interlocked.Read(ref _streamStartedAt);
            var end = Interlocked.Read(ref _streamEndedAt);
            return start == 0 ? 0 : Stopwatch.GetElapsedTime(start, end == 0 ? Stopwatch.GetTimestamp() : end).TotalSeconds;
        }
    }

    public IReadOnlyList<DemoMove> Moves
    {
        get
        {
            lock (_gate)
            {
                return [.. _moves];
            }
        }
    }

    public IReadOnlyList<DemoHostView> Hosts => [.. new[] { Volatile.Read(ref _alice), Volatile.Read(ref _bob) }.OfType<DemoHost>().Select(View)];

    public async Task<DemoResult> RunAsync(CancellationToken cancellationToken)
    {
        var folder = Directory.CreateTempSubdirectory("mob-demo-").FullName;
        var log = new DemoLog(_settings.Verbose ? _stderr : null);
        using var loggers = log.CreateFactory();
        EmbeddedGns? gns = null;
        MobileConnection? client = null;
        MobileConnection? server = null;
        try
        {
            gns = await EmbeddedGns.StartAsync(Path.Combine(folder, "gns"), log, cancellationToken);
            OnEvent($"gns: embedded, SQLite store in {gns.DataDirectory}; udp {gns.Udp}, grpc {gns.Grpc}");
            var alice = await DemoHost.StartAsync(ClientName, Path.Combine(folder, ClientName), DemoSettings.Address(0, 0), gns, loggers, cancellationToken);
            Volatile.Write(ref _alice, alice);
            Announce(alice);
            var bob = await DemoHost.StartAsync(ServerName, Path.Combine(folder, ServerName), DemoSettings.Address(1, 0), gns, loggers, cancellationToken);
            Volatile.Write(ref _bob, bob);
            Announce(bob);

            (client, server) = await ConnectAsync(alice, bob, cancellationToken);
            var failure = await StreamAsync(alice, bob, client, server, cancellationToken);
            // The records of the moves: normally stored long ago; bounded by PublishTimeout.
            await Task.WhenAll(_publishWaits);
            var clientStatistics = client.Statistics;
            return Result(failure, gns, clientStatistics, log);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressNotAvailable)
        {
            throw new DemoException(DemoFailure.Failure,
                $"demo: a 127.0.0.x address is not local here ({e.Message}); Linux routes all of 127.0.0.0/8 to lo, other systems need loopback aliases", e);
        }
        catch (Exception e) when (e is SocketException or IOException or InvalidOperationException or UnauthorizedAccessException
                                      or OptionsValidationException)
        {
            // Setting up failed (the stream's own failures are in the result): one line, not a stack trace.
            throw new DemoException(DemoFailure.Failure, $"demo: {e.Message}", e);
        }
        finally
        {
            Volatile.Write(ref _phase, (int)DemoPhase.Done);
            // Interrupted: these end at once (they watch the same token); never left running.
            await Task.WhenAll(_publishWaits);
            if (client is not null)
            {
                await client.DisposeAsync();
            }

            if (server is not null)
            {
                await server.DisposeAsync();
            }

            foreach (var host in new[] { Interlocked.Exchange(ref _alice, null), Interlocked.Exchange(ref _bob, null) })
            {
                if (host is not null)
                {
                    await host.DisposeAsync();
                }
            }

            if (gns is not null)
            {
                await gns.DisposeAsync();
            }

            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await _stderr.WriteLineAsync($"mob: could not remove {folder}: {e.Message}");
            }
        }
    }

    private void OnEvent(string text) => Event?.Invoke(text);

    private void Announce(DemoHost host)
        => OnEvent($"{host.Name}: GUID {host.Guid}, transport {host.Listening}, record v{host.RecordVersion} registered as '{host.Name}'");

    private async Task<(MobileConnection Client, MobileConnection Server)> ConnectAsync(DemoHost alice, DemoHost bob, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ConnectTimeout);
        try
        {
            // alice knows bob by name only: the GNS gives the GUID, and the connection is opened by GUID
            // (its endpoints resolved, and watched, through alice's GNS peer locator).
            var record = await alice.Gns.LookupNameAsync(ServerName, timeout.Token)
                         ?? throw new DemoException(DemoFailure.NotFound, $"the embedded GNS has no record named '{ServerName}'");
            OnEvent($"alice: looked up '{ServerName}': GUID {record.Guid}, locators {string.Join(' ', record.Locators)}");
            var accept = bob.AcceptAsync(timeout.Token).AsTask();
            var client = await alice.ConnectAsync(record.Guid, timeout.Token);
            var server = await accept;
            OnEvent($"alice -> bob: mobile connection by GUID {record.Guid} over {client.LocalEndPoint} -> {client.RemoteEndPoint}" +
                   (client.IsEncrypted ? " (encrypted)" : ""));
            return (client, server);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new DemoException(DemoFailure.Failure, $"alice could not connect to bob within {ConnectTimeout.TotalSeconds:0} s");
        }
    }

    /// <summary>Streams, moves, closes. Returns why the demo failed, or null.</summary>
    private async Task<string?> StreamAsync(DemoHost alice, DemoHost bob, MobileConnection client, MobileConnection server, CancellationToken cancellationToken)
    {
        server.Diagnostic += (_, e) => Volatile.Read(ref _current)?.OnDiagnostic(e, server.Statistics.BytesReceived);
        alice.Locator.EndpointsChanged += (_, e) => Volatile.Read(ref _current)?.OnEndpointsChanged(bob.Guid, e, Stopwatch.GetTimestamp());

        using var streaming = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var size = _settings.Budget == DemoBudgetKind.Size ? _settings.Size : 0;
        Interlocked.Exchange(ref _streamStartedAt, Stopwatch.GetTimestamp());
        Volatile.Write(ref _phase, (int)DemoPhase.Streaming);
        OnEvent(_settings.Budget == DemoBudgetKind.Size
            ? $"streaming {Units.Bytes(size)} of pseudo-random data (seed {_settings.Seed:x16}); moves at each quarter"
            : $"streaming pseudo-random data (seed {_settings.Seed:x16}) for {_settings.Duration.TotalSeconds:0.###} s; moves at each quarter");
        var send = Task.Run(() => Traffic.SendAsync(client, _settings.Seed, size, CloseTimeout, streaming.Token), CancellationToken.None);
        var receive = Task.Run(() => Traffic.ReceiveAsync(server, (now, previous, total) => Volatile.Read(ref _current)?.OnRead(now, previous, total), CloseTimeout, streaming.Token),
            CancellationToken.None);
        var stream = Task.WhenAll(send, receive);

        string? failure = null;
        try
        {
            failure = await MoveAsync(alice, bob, client, server, stream, cancellationToken);
            if (failure is null && _settings.Budget == DemoBudgetKind.Duration)
            {
                var left = _settings.Duration - Stopwatch.GetElapsedTime(Interlocked.Read(ref _streamStartedAt));
                if (left > TimeSpan.Zero)
                {
                    await WhenAnyAsync(left, cancellationToken, stream);
                }
            }

            if (_settings.Budget == DemoBudgetKind.Duration || failure is not null)
            {
                // A size-bound sender stops by itself after the last byte.
                Traffic.RequestStop();
            }

            Volatile.Write(ref _phase, (int)DemoPhase.Closing);
            if (failure is not null)
            {
                // Give up: resetting both ends fails the loops at once.
                client.Abort(failure);
                server.Abort(failure);
            }

            try
            {
                // Size-bound: the rest of the bytes first (progress is shown meanwhile; Ctrl-C stops it).
                await (_settings.Budget == DemoBudgetKind.Size && failure is null ? stream.WaitAsync(cancellationToken) : stream.WaitAsync(CloseTimeout * 2, cancellationToken));
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or TimeoutException
                                          || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                failure ??= $"the stream failed: {SafeText.OneLine(e.Message)}";
            }
        }
        finally
        {
            Interlocked.Exchange(ref _streamEndedAt, Traffic.EndedAt ?? Stopwatch.GetTimestamp());
            // On failure or Ctrl-C the loops end once cancelled: never leave them running unawaited.
            await streaming.CancelAsync();
            await WhenAnyAsync(CloseTimeout, CancellationToken.None, stream);
        }

        return failure;
    }

    /// <summary>The three moves, each at its quarter and each waited for until it resumed. Returns why it failed, or null.</summary>
    private async Task<string?> MoveAsync(DemoHost alice, DemoHost bob, MobileConnection client, MobileConnection server, Task stream,
        CancellationToken cancellationToken)
    {
        var indices = new Dictionary<string, int> { [ClientName] = 0, [ServerName] = 0 };
        for (var k = 1; k <= Plan.Length; k++)
        {
            if (!await WaitForQuarterAsync(k, stream, cancellationToken))
            {
                return $"the stream ended before move {k}{StreamError(stream)}";
            }

            var who = Plan[k - 1];
            foreach (var name in who)
            {
                indices[name]++;
            }

            var move = new DemoMove(k, who, Stopwatch.GetTimestamp(), DemoSettings.Address(0, indices[ClientName]), DemoSettings.Address(1, indices[ServerName]));
            Volatile.Write(ref _current, move);
            lock (_gate)
            {
                _moves.Add(move);
            }

            var hosts = who.Select(name => name == ClientName ? alice : bob).ToArray();
            move.Hosts = await Task.WhenAll(hosts.Select(h => h.MoveAsync(h == alice ? move.ClientAfter : move.ServerAfter)));
            _publishWaits.Add(TrackPublishedAsync(hosts, move, cancellationToken));
            OnEvent($"move {k}: {Describe(move)}");

            await WhenAnyAsync(_settings.MoveTimeout, cancellationToken, move.FirstByte, stream);
            if (!move.Resumed)
            {
                return stream.IsCompleted
                    ? $"the stream ended before move {k} resumed{StreamError(stream)}"
                    : $"move {k} did not resume within {_settings.MoveTimeout.TotalSeconds:0.###} s (client {client.State}, server {server.State})";
            }

            OnEvent($"move {k}: first byte over {move.ResumedPath?.Client} -> {move.ResumedPath?.Server} after {move.StallMs:0.0} ms (receiver silent {move.GapMs:0.0} ms)");
        }

        return null;
    }

    private static string StreamError(Task stream)
        => stream.Exception?.InnerException is { } e ? $": {SafeText.OneLine(e.Message)}" : "";

    private async Task<bool> WaitForQuarterAsync(int k, Task stream, CancellationToken cancellationToken)
    {
        if (_settings.Budget == DemoBudgetKind.Duration)
        {
            var due = (_settings.Duration * k / 4) - Stopwatch.GetElapsedTime(Interlocked.Read(ref _streamStartedAt));
            if (due > TimeSpan.Zero)
            {
                await WhenAnyAsync(due, cancellationToken, stream);
            }

            return !stream.IsCompleted;
        }

        var target = _settings.Size * k / 4;
        while (Traffic.Sent < target && !stream.IsCompleted)
        {
            await Task.Delay(1, cancellationToken);
        }

        return !stream.IsCompleted;
    }

    /// <summary>Waits until one of <paramref name="tasks"/> completes or <paramref name="timeout"/> passes (no timer is left behind).</summary>
    private static async Task WhenAnyAsync(TimeSpan timeout, CancellationToken cancellationToken, params Task[] tasks)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await Task.WhenAny([.. tasks, Task.Delay(timeout, timer.Token)]);
        await timer.CancelAsync();
        cancellationToken.ThrowIfCancellationRequested();
    }

    private static async Task TrackPublishedAsync(DemoHost[] hosts, DemoMove move, CancellationToken cancellationToken)
    {
        try
        {
            var stored = await Task.WhenAll(hosts.Select((h, i) => h.WaitPublishedAsync(move.Hosts[i].Generation, PublishTimeout, cancellationToken)));
            if (stored.All(s => s))
            {
                move.SetPublished(Stopwatch.GetTimestamp());
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Interrupted: the run is being torn down.
        }
    }

    public static string Describe(DemoMove move)
        => string.Join(", ", move.Hosts.Select(h => $"{h.Host} {h.From} -> {h.To}"));

    private static DemoHostView View(DemoHost host) => new(host.Name, host.Guid, host.Address, host.Listening, host.RecordVersion);

    private DemoResult Result(string? failure, EmbeddedGns gns, MobileConnectionStatistics clientStatistics, DemoLog log)
    {
        var moves = Moves;
        var sent = Traffic.SentHash;
        var received = Traffic.ReceivedHash;
        var hashesEqual = sent is not null && received is not null && sent.AsSpan().SequenceEqual(received);
        var allResumed = moves.Count == Plan.Length && moves.All(m => m.Resumed);
        var ok = failure is null && hashesEqual && allResumed && Traffic.Sent == Traffic.Received && Traffic.Sent > 0;
        var verdict = ok
            ? $"OK: {moves.Count} moves, each resumed; {Units.Bytes(Traffic.Received)} received intact (SHA-256 equal)"
            : "FAILED: " + (failure ?? (!allResumed ? "not every move resumed"
                : !hashesEqual ? "the SHA-256 of what was received differs from what was sent"
                : $"sent {Traffic.Sent} bytes but received {Traffic.Received}"));
        return new DemoResult(ok, verdict, moves, Traffic.Sent, Traffic.Received, sent, received, StreamSeconds, _settings.Seed,
            gns.Udp, gns.Grpc, Hosts, clientStatistics, log.ProblemCount, log.Problems);
    }
}
