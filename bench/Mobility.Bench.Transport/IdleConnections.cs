using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Mobility.Net.Processes;
using Mobility.Protocol.Identity;
using Mobility.Transport;

namespace Mobility.Bench.Transport;

/// <summary>
/// The memory of idle mobile connections. Against a real mobilityd: each connection is what an idle
/// forwarded session is (mobile connection, open header, relay to a local TCP port), and the
/// daemon's resident set (/proc/PID/status) is read before and after. In process: listener and
/// connector here, managed heap and resident set per connection for both ends together.
/// </summary>
internal static class IdleConnections
{
    private static readonly byte[] OpenMagic = "MOPN"u8.ToArray();

    /// <param name="relay">
    /// True: each connection sends the open header and the daemon relays it to the exposed port (two
    /// descriptors per connection on each side). False: the connections stay at the open-header
    /// stage (the daemon's handshake timeout is raised to an hour): the transport's own cost, one
    /// descriptor each, so 10,000 fit under a 20,000 descriptor limit.
    /// </param>
    public static async Task<int> RunAgainstDaemonAsync(int connections, int concurrency, int settle, bool relay, string? mobilityd, string? json)
    {
        mobilityd ??= LocateDaemon();
        Console.WriteLine($"idle: {connections} connections to a mobilityd process ({mobilityd}), {(relay ? "each relayed to an exposed port" : "no relay (waiting for the open header)")}, {concurrency} opening at once; fd limit {Limits.FileLimit()}; load average {Measure.LoadAverage()}");

        // The exposed port: accepts the daemon's relay connections and holds them.
        using var sink = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        sink.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        sink.Listen(4096);
        var held = new List<Socket>();
        using var stop = new CancellationTokenSource();
        var sinkLoop = Task.Run(async () =>
        {
            while (true)
            {
                try
                {
                    var s = await sink.AcceptAsync(stop.Token);
                    lock (held)
                    {
                        held.Add(s);
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }
            }
        });
        var sinkPort = ((IPEndPoint)sink.LocalEndPoint!).Port;

        var dir = Directory.CreateTempSubdirectory("transport-bench-").FullName;
        var daemon = StartDaemon(mobilityd, dir, sinkPort, connections + 256, relay);
        try
        {
            var ready = await ReadyLineAsync(daemon);
            var fields = ReadyLine.Find(ready, "mobilityd ready");
            var transport = fields.EndPoint("transport") ?? throw new FormatException("mobilityd has no transport listener: " + ready);
            var guid = HostGuid.Parse(fields.Require("guid"));
            var pid = daemon.Id;
            using var key = HostKey.Generate();
            var connector = new MobileConnector(key, new MobileConnectionOptions { LocalAddress = IPAddress.Parse("127.0.0.2") });

            // Warm up the daemon's code paths (JIT, pools) so that the difference below is per connection.
            var warm = await OpenAsync(connector, transport, guid, (ushort)sinkPort, Math.Min(200, connections), concurrency, relay);
            await CloseAllAsync(warm);
            await Task.Delay(TimeSpan.FromSeconds(settle));
            var before = Snapshot(pid);
            Console.WriteLine($"before: {before}");

            var clock = Stopwatch.StartNew();
            var selfBefore = Environment.WorkingSet;
            var open = await OpenAsync(connector, transport, guid, (ushort)sinkPort, connections, concurrency, relay);
            var openSeconds = clock.Elapsed.TotalSeconds;
            Console.WriteLine($"opened {open.Count} in {Measure.F(openSeconds, "0.0")} s ({Measure.F(open.Count / openSeconds, "0")}/s), load average {Measure.LoadAverage()}");
            await Task.Delay(TimeSpan.FromSeconds(settle));
            var after = Snapshot(pid);
            Console.WriteLine($"after:  {after}");

            // The idle cost over a window of `settle` seconds: the clients' idle keepalives (one PING per
            // IdleKeepAliveInterval, 20 s ± 25%, answered by the daemon); use --settle 30 or more to span one.
            var pings0 = open.Sum(c => c.Statistics.PingsSent);
            var cpu0 = Measure.CpuSeconds(pid);
            var window = Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(settle));
            var idleCpu = (Measure.CpuSeconds(pid) - cpu0) / window.Elapsed.TotalSeconds;
            var pingsPerSecond = (open.Sum(c => c.Statistics.PingsSent) - pings0) / window.Elapsed.TotalSeconds;
            var alive = open.Count(c => c.State == MobileConnectionState.Connected);
            var moved = open.Count(c => c.Statistics.Moves > 0);
            var selfAfter = Environment.WorkingSet;

            var perConnection = (after.RssKb - before.RssKb) * 1024.0 / open.Count;
            var anonPerConnection = (after.RssAnonKb - before.RssAnonKb) * 1024.0 / open.Count;
            Console.WriteLine();
            Console.WriteLine($"{"connections",11} {"RSS before MiB",15} {"RSS after MiB",14} {"per conn KiB",13} {"anon per conn KiB",18} {"fds",7} {"threads",8} {"idle CPU %",11} {"connected",10} {"resumed",8}");
            Console.WriteLine($"{open.Count,11} {Measure.F(before.RssKb / 1024.0, "0.0"),15} {Measure.F(after.RssKb / 1024.0, "0.0"),14} {Measure.F(perConnection / 1024, "0.0"),13} {Measure.F(anonPerConnection / 1024, "0.0"),18} {after.Fds,7} {after.Threads,8} {Measure.F(idleCpu * 100, "0.0"),11} {alive,10} {moved,8}");
            Console.WriteLine($"this process (client ends + sink): {Measure.F((selfAfter - selfBefore) / 1024.0 / open.Count, "0.0")} KiB per connection; client PINGs {Measure.F(pingsPerSecond, "0.0")}/s while idle; load average {Measure.LoadAverage()}");
            Measure.WriteJson(json, new
            {
                connections = open.Count,
                relay,
                openSeconds,
                before,
                after,
                rssPerConnectionBytes = perConnection,
                anonPerConnectionBytes = anonPerConnection,
                idleCpuCores = idleCpu,
                clientPingsPerSecond = pingsPerSecond,
                connected = alive,
                resumed = moved,
                load = Measure.LoadAverage(),
            });

            await CloseAllAsync(open);
            return 0;
        }
        finally
        {
            await stop.CancelAsync();
            sink.Dispose();
            await sinkLoop;
            lock (held)
            {
                held.ForEach(s => s.Dispose());
            }

            if (!daemon.HasExited)
            {
                daemon.Kill();
                await daemon.WaitForExitAsync();
            }

            daemon.Dispose();
            Directory.Delete(dir, recursive: true);
        }
    }

    public static async Task<int> RunInProcessAsync(int connections, int concurrency, int settle, string? json)
    {
        using var serverKey = HostKey.Generate();
        using var clientKey = HostKey.Generate();
        await using var listener = new MobileListener(serverKey, new MobileListenerOptions { AcceptBacklog = connections + 16 });
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var servers = new List<MobileConnection>();
        using var stop = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            while (true)
            {
                try
                {
                    var c = await listener.AcceptAsync(stop.Token);
                    lock (servers)
                    {
                        servers.Add(c);
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
                {
                    return;
                }
            }
        });
        var connector = new MobileConnector(clientKey, new MobileConnectionOptions());
        await CloseAllAsync(await OpenRawAsync(connector, listener, Math.Min(100, connections), concurrency));
        lock (servers)
        {
            servers.Clear();
        }

        await Task.Delay(TimeSpan.FromSeconds(1));
        var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        var rssBefore = Measure.StatusField(Environment.ProcessId, "VmRSS");
        var clients = await OpenRawAsync(connector, listener, connections, concurrency);
        await Task.Delay(TimeSpan.FromSeconds(settle));
        var heapAfter = GC.GetTotalMemory(forceFullCollection: true);
        var rssAfter = Measure.StatusField(Environment.ProcessId, "VmRSS");
        var heapPer = (heapAfter - heapBefore) / (double)clients.Count;
        var rssPer = (rssAfter - rssBefore) * 1024.0 / clients.Count;
        Console.WriteLine($"in process: {clients.Count} connections (both ends here): managed heap {Measure.F(heapPer / 1024, "0.0")} KiB, RSS {Measure.F(rssPer / 1024, "0.0")} KiB per connection (client + server end); load average {Measure.LoadAverage()}");
        Measure.WriteJson(json, new { connections = clients.Count, heapPerConnectionBytes = heapPer, rssPerConnectionBytes = rssPer, load = Measure.LoadAverage() });
        await CloseAllAsync(clients);
        await stop.CancelAsync();
        await accepting;
        List<MobileConnection> ends;
        lock (servers)
        {
            ends = [.. servers];
        }

        await CloseAllAsync(ends);
        return 0;
    }

    /// <summary>N connections, each forwarded to <paramref name="port"/> (open header answered with 0).</summary>
    private static async Task<List<MobileConnection>> OpenAsync(MobileConnector connector, IPEndPoint transport, HostGuid guid, ushort port, int count, int concurrency, bool relay)
    {
        var header = new byte[6];
        OpenMagic.CopyTo(header, 0);
        header[4] = (byte)(port >> 8);
        header[5] = (byte)port;
        var result = new List<MobileConnection>(count);
        var next = 0;
        var failures = 0;
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            var status = new byte[1];
            while (Interlocked.Increment(ref next) <= count)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    var c = await connector.ConnectAsync(transport, guid, timeout.Token);
                    if (!relay)
                    {
                        lock (result)
                        {
                            result.Add(c);
                        }

                        continue;
                    }

                    await c.WriteAsync(header, timeout.Token);
                    if (await c.ReadAsync(status, timeout.Token) != 1 || status[0] != 0)
                    {
                        throw new IOException($"open header answered {status[0]}");
                    }

                    lock (result)
                    {
                        result.Add(c);
                    }
                }
                catch (Exception e) when (e is IOException or OperationCanceledException)
                {
                    if (Interlocked.Increment(ref failures) <= 5)
                    {
                        Console.Error.WriteLine($"open failed: {e.Message}");
                    }
                }
            }
        })).ToArray();
        await Task.WhenAll(workers);
        if (failures > 0)
        {
            Console.Error.WriteLine($"{failures} connections failed to open");
        }

        return result;
    }

    private static async Task<List<MobileConnection>> OpenRawAsync(MobileConnector connector, MobileListener listener, int count, int concurrency)
    {
        var result = new List<MobileConnection>(count);
        var next = 0;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) <= count)
            {
                try
                {
                    var c = await connector.ConnectAsync(listener.LocalEndPoint, listener.Guid);
                    lock (result)
                    {
                        result.Add(c);
                    }
                }
                catch (IOException e)
                {
                    Console.Error.WriteLine($"open failed: {e.Message}");
                }
            }
        })));
        return result;
    }

    private static async Task CloseAllAsync(List<MobileConnection> connections)
    {
        foreach (var batch in connections.Chunk(500))
        {
            await Task.WhenAll(batch.Select(c => c.DisposeAsync().AsTask()));
        }
    }

    private static Process StartDaemon(string dll, string dir, int sinkPort, int maxRelays, bool relay)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[]
        {
            dll, "--state-dir", dir, "--embedded-gns", "--embedded-gns-udp", "127.0.0.1:0",
            "--address", "127.0.0.3", "--allow-loopback", "true", "--control", "127.0.0.3:0", "--transport", "127.0.0.3:0",
            "--socks", "off", "--http", "off", "--grpc", "off", "--socket", Path.Combine(dir, "d.sock"), "--grpc-socket", "off",
            "--Forwarding:MaxRelays", maxRelays.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--Forwarding:Exposed:0", sinkPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--Forwarding:HandshakeTimeout", relay ? "00:00:10" : "01:00:00",
        })
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info)!;
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task<string> ReadyLineAsync(Process daemon)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            var line = await daemon.StandardOutput.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException("mobilityd exited before it was ready");
            if (line.StartsWith("mobilityd ready ", StringComparison.Ordinal))
            {
                // Keep draining stdout so the daemon never blocks on a full pipe.
                _ = daemon.StandardOutput.BaseStream.CopyToAsync(Stream.Null, CancellationToken.None);
                return line;
            }
        }
    }

    private static DaemonSnapshot Snapshot(int pid)
        => new(Measure.StatusField(pid, "VmRSS"), Measure.StatusField(pid, "RssAnon"), Measure.StatusField(pid, "Threads"), Measure.OpenFiles(pid), Measure.CpuSeconds(pid));

    private static string LocateDaemon()
    {
        var here = AppContext.BaseDirectory;
        var candidates = new[]
        {
            Path.Combine(here, "mobilityd.dll"),
            Path.Combine(here, "..", "..", "Mobility.Daemon.Host", new DirectoryInfo(here).Name, "mobilityd.dll"),
        };
        return candidates.Where(File.Exists).Select(Path.GetFullPath).FirstOrDefault()
            ?? throw new FileNotFoundException("mobilityd.dll not found; pass --mobilityd PATH");
    }

    internal sealed record DaemonSnapshot(long RssKb, long RssAnonKb, long Threads, int Fds, double CpuSeconds)
    {
        public override string ToString() => $"RSS {RssKb / 1024.0:0.0} MiB (anon {RssAnonKb / 1024.0:0.0}), {Threads} threads, {Fds} fds, {CpuSeconds:0.00} CPU-s";
    }
}
