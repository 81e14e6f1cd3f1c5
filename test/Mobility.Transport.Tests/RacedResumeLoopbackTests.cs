using System.Net;
using System.Net.Sockets;
using Mobility.Transport.Flows;

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

    [Fact]
    public async Task A_client_move_resumes_past_an_unanswered_endpoint_without_losing_or_duplicating_a_byte()
    {
        var net = LoopbackScenario.NextSubnet();
        var clientAddress = IPAddress.Parse($"127.{net}.1.1");
        var logs = new ListLoggerFactory();
        await using var listener = new MobileListener(Keys.Server, new MobileListenerOptions { LoggerFactory = logs });
        listener.Start(new IPEndPoint(IPAddress.Parse($"127.{net}.2.1"), 0));
        var (hole, fillers) = Blackhole(IPAddress.Parse($"127.{net}.3.1"));
        using var holeScope = hole;
        var locator = new TestLocator();
        locator.Set(Keys.Server.Guid, listener.LocalEndPoint);

        // Tried in order, the unanswered endpoint would hold the attempt for its whole minute.
        var connector = new MobileConnector(Keys.Client, new MobileConnectionOptions
        {
            LocalAddress = clientAddress,
            LoggerFactory = logs,
            ResumeAttemptTimeout = TimeSpan.FromMinutes(1),
        });
        var accept = listener.AcceptAsync().AsTask();
        await using var client = await connector.ConnectAsync(Keys.Server.Guid, locator).WithTimeout();
        await using var server = await accept.WithTimeout();

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
        Assert.Equal(1, client.Statistics.Moves);
        client.ShutdownWrite();
        Assert.Equal(0, await server.Stream.ReadAsync(new byte[1]).AsTask().WithTimeout());   // nothing delivered twice
        Assert.Equal(IPAddress.Parse($"127.{net}.1.2"), client.LocalEndPoint!.Address);

        var move = client.Moves[^1];
        var holeText = hole.LocalEndPoint!.ToString()!;
        Assert.Contains(move.Events, e => e.Kind == MoveEventKind.ConnectStarted && e.Detail == holeText);
        Assert.Contains(move.Events, e => e.Kind == MoveEventKind.ConnectFinished && e.Detail!.EndsWith(listener.LocalEndPoint.ToString(), StringComparison.Ordinal));
        Assert.Contains(move.Events, e => e.Kind == MoveEventKind.AttemptFailed && e.Detail == $"connect to {holeText}: lost the race");
        Assert.Contains(move.Events, e => e.Kind == MoveEventKind.ResumeAnswered);
        Assert.Contains(server.Moves[^1].Events, e => e.Kind == MoveEventKind.FirstByteDelivered);
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

        private sealed class HeldFlow(IFlow inner, Task released) : IFlow
        {
            public Stream Stream { get; } = new HeldStream(inner.Stream, released);

            public IPEndPoint? LocalEndPoint => inner.LocalEndPoint;

            public IPEndPoint? RemoteEndPoint => inner.RemoteEndPoint;

            public void Abort() => inner.Abort();

            public ValueTask DisposeAsync() => inner.DisposeAsync();
        }

        private sealed class HeldStream(Stream inner, Task released) : Stream
        {
            public override bool CanRead => true;

            public override bool CanSeek => false;

            public override bool CanWrite => true;

            public override long Length => throw new NotSupportedException();

            public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

            public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            {
                await released.WaitAsync(cancellationToken);
                return await inner.ReadAsync(buffer, cancellationToken);
            }

            public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
                => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

            public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

            public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);

            public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

            public override void Flush() => inner.Flush();

            public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

            public override void SetLength(long value) => throw new NotSupportedException();

            public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

            protected override void Dispose(bool disposing)
            {
                if (disposing)
                {
                    inner.Dispose();
                }

                base.Dispose(disposing);
            }
        }
    }

    [Fact]
    public async Task A_second_address_event_while_the_resume_is_on_its_way_does_not_throw_it_away()
    {
        var net = LoopbackScenario.NextSubnet();
        var moved = IPAddress.Parse($"127.{net}.1.2");
        var logs = new ListLoggerFactory();
        await using var listener = new MobileListener(Keys.Server, new MobileListenerOptions { LoggerFactory = logs });
        listener.Start(new IPEndPoint(IPAddress.Parse($"127.{net}.2.1"), 0));
        var locator = new TestLocator();
        locator.Set(Keys.Server.Guid, listener.LocalEndPoint);
        var factory = new HoldingFactory();
        var connector = new MobileConnector(Keys.Client, new MobileConnectionOptions
        {
            LocalAddress = IPAddress.Parse($"127.{net}.1.1"),
            LoggerFactory = logs,
            FlowFactory = factory,
            ResumeAttemptTimeout = TimeSpan.FromMinutes(1),
        });
        var accept = listener.AcceptAsync().AsTask();
        await using var client = await connector.ConnectAsync(Keys.Server.Guid, locator).WithTimeout();
        await using var server = await accept.WithTimeout();

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
