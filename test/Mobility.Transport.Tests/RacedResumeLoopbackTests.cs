using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Mobility.Transport.Flows;
using Mobility.Transport.Tests.Connections;

namespace Mobility.Transport.Tests;

/// <summary>
/// Moves over real loopback sockets: a peer record listing an unanswered endpoint first (the resume races past it), and a
/// second address event while the Resume is on its way (it goes on).
/// </summary>
public sealed class RacedResumeLoopbackTests
{
    /// <summary>
    /// A listener whose accept queue is full (backlog 0, filled by one connection, never accepted): the kernel drops every further SYN,
    /// so a connect there is never answered, as towards an address that vanished behind a router.
    /// </summary>
    private static (Socket Listener, List<Socket> Fillers) Blackhole(IPAddress address)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(address, 0));
        listener.Listen(0);
        var fillers = new List<Socket>();
        for (var i = 0; i < 1; i++)
        {
            var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            filler.Connect(listener.LocalEndPoint!);
            fillers.Add(filler);
        }

        return (listener, fillers);
    }

    /// <summary>A listener on 127.NET.2.1, a client on 127.NET.1.1 connected to it, and the locator that names it.</summary>
    private static async Task<(MobileListener Listener, TestLocator Locator, MobileConnector Connector, MobileConnection Client, MobileConnection Server)> ConnectAsync(int net, IFlowFactory? factory = null,
        TimeSpan? raceDelay = null, bool fastOpen = true)
    {
        var logs = new ListLoggerFactory();
        var listener = new MobileListener(Keys.Server, new MobileListenerOptions { LoggerFactory = logs });
        listener.Start(new IPEndPoint(IPAddress.Parse($"127.{net}.2.1"), 0));
        var locator = new TestLocator();
        locator.Set(Keys.Server.Guid, listener.LocalEndPoint);

        // An attempt stuck on an unanswered endpoint (or a held answer) would last its whole minute.
        var options = new MobileConnectionOptions { LocalAddress = IPAddress.Parse($"127.{net}.1.1"), LoggerFactory = logs, ResumeAttemptTimeout = TimeSpan.FromMinutes(1) };
        options.FlowFactory = factory ?? options.FlowFactory;
        options.FastOpen = fastOpen;
        if (raceDelay is { } delay)
        {
            options.ConnectRaceDelayMin = options.ConnectRaceDelayMax = delay;
        }

        var connector = new MobileConnector(Keys.Client, options);
        var accept = listener.AcceptAsync().AsTask();
        var client = await connector.ConnectAsync(Keys.Server.Guid, locator).WithTimeout();
        return (listener, locator, connector, client, await accept.WithTimeout());
    }

    [Theory]
    [InlineData(false)]   // the connect race: a second connect after the race delay
    [InlineData(true)]    // a first flight's connect returns at once: the resume race opens the next flow
    public async Task A_client_move_resumes_past_an_unanswered_endpoint_without_losing_or_duplicating_a_byte(bool fastOpen)
    {
        var net = LoopbackScenario.NextSubnet();
        var (listener, locator, connector, client, server) = await ConnectAsync(net, fastOpen: fastOpen);
        await using var listenerScope = listener;
        await using var clientScope = client;
        await using var serverScope = server;
        var (hole, fillers) = Blackhole(IPAddress.Parse($"127.{net}.3.1"));
        using var holeScope = hole;

        var first = new byte[64 * 1024];
        var second = new byte[64 * 1024];
        Random.Shared.NextBytes(first);
        Random.Shared.NextBytes(second);
        await client.Stream.WriteAsync(first).AsTask().WithTimeout();
        var received = new byte[first.Length + second.Length];
        await server.Stream.ReadExactlyAsync(received.AsMemory(0, first.Length)).AsTask().WithTimeout();

        // The record now lists the unanswered endpoint first; then the client moves.
        var resumed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Diagnostic += (_, e) =>
        {
            if (e.Kind == MobileConnectionEventKind.Resumed)
            {
                resumed.TrySetResult();
            }
        };
        locator.Push(Keys.Server.Guid, (IPEndPoint)hole.LocalEndPoint!, listener.LocalEndPoint);
        connector.NotifyLocalAddressChanged(IPAddress.Parse($"127.{net}.1.2"));
        await client.Stream.WriteAsync(second).AsTask().WithTimeout();
        await resumed.Task.WithTimeout();
        await server.Stream.ReadExactlyAsync(received.AsMemory(first.Length)).AsTask().WithTimeout();

        Assert.Equal([.. first, .. second], received);
        Assert.InRange(client.Statistics.Moves, 1, 2);   // 2 when a raced flow answered late superseded the winner (below)
        client.ShutdownWrite();
        Assert.Equal(0, await server.Stream.ReadAsync(new byte[1]).AsTask().WithTimeout());   // nothing delivered twice
        Assert.Equal(IPAddress.Parse($"127.{net}.1.2"), client.LocalEndPoint!.Address);

        // Every recorded move: under load a raced flow answered late can supersede the winner, and its
        // switch is recorded as a move of its own (docs/transport.md, "the raced resume").
        var events = client.Moves.SelectMany(m => m.Events).ToList();
        var holeText = hole.LocalEndPoint!.ToString()!;
        Assert.Contains(events, e => e.Kind == MoveEventKind.ConnectStarted && e.Detail!.StartsWith(holeText, StringComparison.Ordinal));
        Assert.Contains(events, e => e.Kind == MoveEventKind.ConnectFinished && e.Detail!.EndsWith(listener.LocalEndPoint.ToString(), StringComparison.Ordinal));
        Assert.Contains(events, e => e.Kind == MoveEventKind.AttemptFailed && (fastOpen
            ? e.Detail!.StartsWith($"no answer via {holeText} within ", StringComparison.Ordinal) && e.Detail.EndsWith("racing resume flow 2", StringComparison.Ordinal)
            : e.Detail == $"connect to {holeText}: lost the race"));
        Assert.Contains(events, e => e.Kind == MoveEventKind.ResumeAnswered);
        // As at the client: a late raced flow's switch is a move of its own at the server too, and the bytes may all have
        // come in the move before it (a full-suite run saw its last move hold only PathDead and ResumeAnswered).
        Assert.Contains(server.Moves.SelectMany(m => m.Events), e => e.Kind == MoveEventKind.FirstByteDelivered);
        foreach (var filler in fillers)
        {
            filler.Dispose();
        }
    }

    /// <summary>Real TCP flows; while <see cref="Hold"/> is set, reads on the flows opened from then on wait for <see cref="Release"/>.</summary>
    private sealed class HoldingFactory : IFlowFactory
    {
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _connects;

        public bool Hold { get; set; }

        public int Connects => Volatile.Read(ref _connects);

        public void Release() => _released.TrySetResult();

        public async ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _connects);
            var flow = await TcpFlowFactory.Instance.ConnectAsync(remote, localAddress, cancellationToken);
            return Hold ? new HeldFlow(flow, _released.Task) : flow;
        }

        /// <summary>Reads what the peer sends only once <paramref name="released"/> completes; writes go straight out.</summary>
        private sealed class HeldFlow : IFlow
        {
            private readonly IFlow _inner;

            public HeldFlow(IFlow inner, Task released)
            {
                _inner = inner;
                var held = new Pipe();
                _ = Task.Run(async () =>
                {
                    await released;
                    try
                    {
                        await inner.Stream.CopyToAsync(held.Writer);
                    }
                    catch (IOException)
                    {
                        // The flow was closed.
                    }

                    await held.Writer.CompleteAsync();
                });
                Stream = new MemoryFlow.DuplexPipeStream(held.Reader, PipeWriter.Create(inner.Stream, new StreamPipeWriterOptions(leaveOpen: true)));
            }

            public Stream Stream { get; }

            public IPEndPoint? LocalEndPoint => _inner.LocalEndPoint;

            public IPEndPoint? RemoteEndPoint => _inner.RemoteEndPoint;

            public void Abort() => _inner.Abort();

            public ValueTask DisposeAsync() => _inner.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_second_address_event_while_the_resume_is_on_its_way_does_not_throw_it_away()
    {
        var net = LoopbackScenario.NextSubnet();
        var moved = IPAddress.Parse($"127.{net}.1.2");
        var factory = new HoldingFactory();
        // The held answer is not raced by another resume flow (PathSupervisor.ResumeRace): this is about the address events.
        var (listener, _, connector, client, server) = await ConnectAsync(net, factory, raceDelay: TimeSpan.FromMinutes(1));
        await using var listenerScope = listener;
        await using var clientScope = client;
        await using var serverScope = server;

        // The move: the Resume goes out, its answer is held back while the move's further address events come.
        factory.Hold = true;
        connector.NotifyLocalAddressChanged(moved);
        await TestTimeout.Eventually(() => client.Moves is [.., var m] && m.Events.Any(e => e.Kind == MoveEventKind.ResumeSent), "the Resume was sent");
        await client.SettleAsync().WithTimeout();
        connector.NotifyLocalAddressChanged(moved);
        connector.NotifyLocalAddressChanged(null);
        var data = new byte[32 * 1024];
        Random.Shared.NextBytes(data);
        await client.Stream.WriteAsync(data).AsTask().WithTimeout();
        await client.SettleAsync().WithTimeout();
        factory.Release();

        var received = new byte[data.Length];
        await server.Stream.ReadExactlyAsync(received).AsTask().WithTimeout();
        Assert.Equal(data, received);
        await TestTimeout.Eventually(() => client.Statistics.Moves == 1, "the client resumed");
        var move = client.Moves[^1];
        Assert.Single(move.Events, e => e.Kind == MoveEventKind.ResumeSent);
        Assert.Equal(2, move.Events.Count(e => e.Kind == MoveEventKind.AddressEvent && e.Detail!.Contains("goes on", StringComparison.Ordinal)));
        Assert.Equal(2, factory.Connects);   // the handshake's flow and the one resume
        Assert.Equal(0, client.Statistics.ResumesRejected);
        Assert.Equal(0, server.Statistics.ResumesRejected);
        Assert.Equal(moved, client.LocalEndPoint!.Address);
    }
}
