namespace Mobility.Transport.Tests;

public enum MoveKind
{
    Client,
    Server,
    Simultaneous,
}

/// <summary>Bulk transfers over real loopback sockets while the hosts move between 127.x addresses.</summary>
public class LoopbackMoveTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(MoveKind.Client)]
    [InlineData(MoveKind.Server)]
    [InlineData(MoveKind.Simultaneous)]
    public Task Transfer_of_16_MiB_survives_10_moves_during_bulk(MoveKind kind)
        => LoopbackScenario.RunAsync(output, 16L << 20, moves: 10, kind, idle: false);

    [Theory]
    [InlineData(MoveKind.Client)]
    [InlineData(MoveKind.Simultaneous)]
    public Task Transfer_survives_10_moves_while_idle(MoveKind kind)
        => LoopbackScenario.RunAsync(output, 4L << 20, moves: 10, kind, idle: true);

    [Theory]
    [InlineData(MoveKind.Client, false)]
    [InlineData(MoveKind.Simultaneous, false)]
    [InlineData(MoveKind.Server, false)]
    [InlineData(MoveKind.Client, true)]
    [InlineData(MoveKind.Simultaneous, true)]
    public Task Transfer_of_256_MiB_survives_50_moves(MoveKind kind, bool idle)
        => LoopbackScenario.RunAsync(output, 256L << 20, moves: 50, kind, idle, TimeSpan.FromMinutes(5));
}

internal static class LoopbackScenario
{
    private static int s_subnet;

    /// <summary>A fresh 127.N.0.0/16 block per scenario, so parallel tests never share addresses.</summary>
    public static int NextSubnet() => 10 + (Interlocked.Increment(ref s_subnet) % 200);

    public static async Task RunAsync(ITestOutputHelper output, long bytes, int moves, MoveKind kind, bool idle, TimeSpan? limit = null)
    {
        var timeout = limit ?? TimeSpan.FromSeconds(90);
        var net = NextSubnet();
        IPAddress ClientAddress(int i) => IPAddress.Parse($"127.{net}.1.{1 + (i % 250)}");
        IPAddress ServerAddress(int i) => IPAddress.Parse($"127.{net}.2.{1 + (i % 250)}");

        var locator = new TestLocator();
        var logs = new ListLoggerFactory();
        await using var listener = new MobileListener(Keys.Server, new MobileListenerOptions { LoggerFactory = logs });
        listener.Start(new IPEndPoint(ServerAddress(0), 0));
        locator.Set(Keys.Server.Guid, listener.LocalEndPoint);
        var connector = new MobileConnector(Keys.Client, new MobileConnectionOptions { LocalAddress = ClientAddress(0), LoggerFactory = logs });
        var stopwatch = Stopwatch.StartNew();
        var acceptTask = listener.AcceptAsync().AsTask();
        await using var client = await connector.ConnectAsync(Keys.Server.Guid, locator).WithTimeout();
        await using var server = await acceptTask.WithTimeout();

        long clientSent = 0;
        var gate = idle ? new SemaphoreSlim(0) : null;
        var resumed = new SemaphoreSlim(0);
        client.Diagnostic += (_, e) =>
        {
            if (e.Kind == MobileConnectionEventKind.Resumed)
            {
                resumed.Release();
            }
        };

        var chunk = bytes / (moves + 1);
        async Task Progress(long sent)
        {
            Volatile.Write(ref clientSent, sent);
            if (gate is not null && sent % chunk < 64 * 1024 && sent < bytes)
            {
                // Idle mode: stop at each chunk boundary until the mover has moved.
                await gate.WaitAsync(timeout);
            }
        }

        using var cts = new CancellationTokenSource(timeout);
        var movesDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var clientSend = Task.Run(async () =>
        {
            var hash = await PatternSource.SendAsync(client.Stream, bytes, 1, Progress, cts.Token);
            await movesDone.Task;
            client.ShutdownWrite();
            return hash;
        });
        var serverSend = Task.Run(async () =>
        {
            var hash = await PatternSource.SendAsync(server.Stream, bytes, 2, null, cts.Token);
            await movesDone.Task;
            server.ShutdownWrite();
            return hash;
        });
        var serverReceive = Task.Run(() => PatternSource.ReceiveAsync(server.Stream, cts.Token));
        var clientReceive = Task.Run(() => PatternSource.ReceiveAsync(client.Stream, cts.Token));

        var stalls = new List<TimeSpan>();
        for (var i = 1; i <= moves; i++)
        {
            if (idle)
            {
                // Wait until the client's writer paused at a boundary and everything it wrote was read.
                while (Volatile.Read(ref clientSent) < Math.Min(bytes, chunk * i) && !clientSend.IsCompleted)
                {
                    await Task.Delay(2, cts.Token);
                }

                await Task.Delay(20, cts.Token);
            }
            else
            {
                while (Volatile.Read(ref clientSent) < chunk * i && !clientSend.IsCompleted)
                {
                    await Task.Delay(1, cts.Token);
                }
            }

            if (kind is MoveKind.Client or MoveKind.Simultaneous)
            {
                connector.NotifyLocalAddressChanged(ClientAddress(i));
            }

            if (kind is MoveKind.Server or MoveKind.Simultaneous)
            {
                var endpoint = await listener.RebindAsync(new IPEndPoint(ServerAddress(i), 0)).WithTimeout();
                locator.Push(Keys.Server.Guid, endpoint);
            }

            if (!await resumed.WaitAsync(TimeSpan.FromSeconds(20)))
            {
                Assert.Fail($"move {i} did not resume: client {client.State} {client.Failure?.Message} {client.Statistics}; server {server.State} {server.Failure?.Message} {server.Statistics}\n{logs.Dump()}");
            }

            stalls.Add(client.Statistics.LastStall);
            gate?.Release();
        }

        movesDone.SetResult();
        var sentByClient = await clientSend.WithTimeout(timeout);
        var sentByServer = await serverSend.WithTimeout(timeout);
        var receivedByServer = await serverReceive.WithTimeout(timeout);
        var receivedByClient = await clientReceive.WithTimeout(timeout);
        var closeClient = client.CloseAsync();
        await server.CloseAsync().WithTimeout(timeout);
        await closeClient.WithTimeout(timeout);

        Assert.Equal(bytes, receivedByServer.Length);
        Assert.Equal(bytes, receivedByClient.Length);
        Assert.Equal(sentByClient, receivedByServer.Hash);
        Assert.Equal(sentByServer, receivedByClient.Hash);
        var stats = client.Statistics;
        Assert.True(stats.Moves >= moves, $"{stats.Moves} moves recorded, expected {moves}");
        Assert.Equal(MobileConnectionState.Completed, client.State);
        Assert.Equal(MobileConnectionState.Completed, server.State);
        stalls.Sort();
        output.WriteLine($"{kind} idle={idle}: {bytes >> 20} MiB each way, {moves} moves in {stopwatch.Elapsed.TotalSeconds:0.00} s; " +
            $"client moves {stats.Moves}, resent {stats.BytesResent} B, dup received {stats.DuplicateBytesReceived} B, attempts {stats.ResumeAttempts}; " +
            $"server resent {server.Statistics.BytesResent} B; stall median {stalls[stalls.Count / 2].TotalMilliseconds:0.0} ms, max {stalls[^1].TotalMilliseconds:0.0} ms");
    }
}
