using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Mobility.Protocol.Identity;
using Mobility.Transport.Connections;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Tests.Connections;

/// <summary>
/// A resume attempt races its flow connects (Happy Eyeballs, RFC 8305) on a <see cref="FakeTimeProvider"/>:
/// staggered by the RTT-derived delay, first connected wins and carries the one Resume, losers are
/// cancelled and closed, a refused connect starts the next at once.
/// </summary>
public sealed class ConnectRaceTests
{
    private static readonly IPEndPoint First = new(IPAddress.Parse("203.0.113.1"), 443);
    private static readonly IPEndPoint Second = new(IPAddress.Parse("203.0.113.2"), 443);
    private static readonly IPEndPoint Third = new(IPAddress.Parse("203.0.113.3"), 443);

    private sealed class FakeFlow(IPEndPoint remote) : IFlow
    {
        private int _aborted;

        public Stream Stream { get; } = new MemoryStream();

        public IPEndPoint? LocalEndPoint { get; } = new(IPAddress.Parse("198.51.100.7"), 40000);

        public IPEndPoint? RemoteEndPoint => remote;

        public bool Aborted => Volatile.Read(ref _aborted) != 0;

        public void Abort() => Interlocked.Exchange(ref _aborted, 1);

        public ValueTask DisposeAsync()
        {
            Abort();
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>One connect the test finishes by hand: with a flow, a refusal, or never.</summary>
    private sealed record PendingConnect(IPEndPoint Remote, DateTimeOffset At, CancellationToken Token, TaskCompletionSource<IFlow> Result);

    /// <summary>Connects that wait for the test (ignoring cancellation, so that a loser can still connect late); refuses <see cref="Refuse"/> at once.</summary>
    private sealed class ControlledFactory(TimeProvider time) : IFlowFactory
    {
        public ConcurrentQueue<PendingConnect> Connects { get; } = new();

        public IPEndPoint? Refuse { get; set; }

        public PendingConnect this[int i] => Connects.ElementAt(i);

        public ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
        {
            var pending = new PendingConnect(remote, time.GetUtcNow(), cancellationToken, new TaskCompletionSource<IFlow>(TaskCreationOptions.RunContinuationsAsynchronously));
            Connects.Enqueue(pending);
            if (remote.Equals(Refuse))
            {
                pending.Result.SetException(new SocketException((int)SocketError.ConnectionRefused));
            }

            return new ValueTask<IFlow>(pending.Result.Task);
        }
    }

    /// <summary>A pathless connection whose resumes the test answers; records its timeline events.</summary>
    private sealed class ResumingConnection(TimeSpan? rtt) : ISupervisedConnection
    {
        private readonly CancellationTokenSource _closed = new();
        private volatile bool _resumed;

        public HostGuid RemoteGuid => Keys.Server.Guid;

        public UInt128 Token => 42;

        public MobileConnectionState State => _resumed ? MobileConnectionState.Connected : MobileConnectionState.Pathless;

        public CancellationToken Closed => _closed.Token;

        public ConnectionPath? ActivePath => null;

        public TimeSpan? LastRtt => rtt;

        public ConcurrentQueue<ConnectionPath> Resumes { get; } = new();

        public ConcurrentQueue<(MoveEventKind Kind, string? Detail)> Events { get; } = new();

        public bool NeedsPath() => !_resumed && !_closed.IsCancellationRequested;

        public void CountResumeAttempt()
        {
        }

        public void RecordMove(MoveEventKind kind, string? detail) => Events.Enqueue((kind, detail));

        public void OnFlowConnected(IFlow flow)
        {
        }

        public ConnectionPath? BeginResume(IFlow flow)
        {
            var path = new ConnectionPath(flow, PipeReader.Create(flow.Stream), null, established: false);
            Resumes.Enqueue(path);
            return path;
        }

        /// <summary>The server accepts the Resume on <paramref name="path"/>.</summary>
        public void Accept(ConnectionPath path)
        {
            _resumed = true;
            path.ResumeResult.TrySetResult(null);
        }

        /// <summary>Paths given up (only when the test stops the supervisor before it saw the answer).</summary>
        public ConcurrentQueue<string> Failed { get; } = new();

        public void PathFailed(ConnectionPath path, string reason) => Failed.Enqueue(reason);

        public void OnUnknownToPeer(IPEndPoint endpoint) => throw new InvalidOperationException("no server forgets the connection in these tests");

        public void Fail(Exception reason, uint? resetCode = null) => throw new InvalidOperationException("unexpected failure: " + reason.Message);

        public void Close() => _closed.Cancel();
    }

    private static (PathSupervisor Supervisor, ResumingConnection Connection, ControlledFactory Factory, FakeTimeProvider Time) Start(IPEndPoint[] endpoints, TimeSpan? rtt, IPeerLocator? locator = null)
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(20000));
        var factory = new ControlledFactory(time);
        var options = new MobileConnectionOptions { TimeProvider = time, FlowFactory = factory, ResumeAttemptTimeout = TimeSpan.FromSeconds(30) };
        var connection = new ResumingConnection(rtt);
        var supervisor = new PathSupervisor(connection, options, locator, endpoints, null, NullLogger.Instance, random: () => 0.5);
        supervisor.Start();
        supervisor.Kick();
        return (supervisor, connection, factory, time);
    }

    private static async Task StopAsync(PathSupervisor supervisor, ResumingConnection connection)
    {
        connection.Close();
        await supervisor.Completion.WithTimeout();
    }

    [Theory]
    [InlineData(null, 50)]     // nothing measured yet: the minimum
    [InlineData(10, 50)]       // a fast path: the minimum
    [InlineData(100, 200)]     // 2 x RTT
    [InlineData(1000, 750)]    // capped below the kernel's 1 s SYN retransmission
    public void The_race_delay_is_twice_the_measured_rtt_within_its_bounds(int? rttMs, int expectedMs)
    {
        var rtt = rttMs is { } ms ? TimeSpan.FromMilliseconds(ms) : (TimeSpan?)null;
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), PathSupervisor.RaceDelay(rtt, new MobileConnectionOptions()));
    }

    [Fact]
    public async Task The_first_connect_to_finish_wins_and_the_losers_are_cancelled_and_closed()
    {
        var (supervisor, connection, factory, time) = Start([First, Second, Third], rtt: null);
        await TestTimeout.Eventually(() => factory.Connects.Count == 1, "the first connect started");
        time.Advance(TimeSpan.FromMilliseconds(49));
        Assert.Single(factory.Connects);   // not a moment early
        time.Advance(TimeSpan.FromMilliseconds(1));
        await TestTimeout.Eventually(() => factory.Connects.Count == 2, "the second endpoint's connect started after the race delay");
        Assert.Equal(Second, factory[1].Remote);

        var winner = new FakeFlow(Second);
        factory[1].Result.SetResult(winner);
        await TestTimeout.Eventually(() => connection.Resumes.Count == 1, "the winner carries the Resume");
        Assert.Same(winner, connection.Resumes.Single().Flow);
        await TestTimeout.Eventually(() => factory[0].Token.IsCancellationRequested, "the loser's connect was cancelled");

        // The loser connects anyway: its flow is closed, never resumed on.
        var late = new FakeFlow(First);
        factory[0].Result.SetResult(late);
        await TestTimeout.Eventually(() => late.Aborted, "the late loser's flow was closed");

        connection.Accept(connection.Resumes.Single());
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(2, factory.Connects.Count);   // the third endpoint was never needed
        Assert.Single(connection.Resumes);
        Assert.False(winner.Aborted);
        var kinds = connection.Events.Select(e => e.Kind).ToList();
        Assert.Equal(2, kinds.Count(k => k == MoveEventKind.ConnectStarted));
        Assert.Equal(1, kinds.Count(k => k == MoveEventKind.ConnectFinished));
        Assert.Contains(connection.Events, e => e.Kind == MoveEventKind.AttemptFailed && e.Detail!.Contains("lost the race", StringComparison.Ordinal));
        await StopAsync(supervisor, connection);
    }

    [Fact]
    public async Task An_unanswered_connect_is_raced_by_a_second_one_to_the_same_endpoint_after_twice_the_measured_rtt()
    {
        var (supervisor, connection, factory, time) = Start([First], rtt: TimeSpan.FromMilliseconds(100));
        var start = time.GetUtcNow();
        await TestTimeout.Eventually(() => factory.Connects.Count == 1, "the first connect started");
        time.Advance(TimeSpan.FromMilliseconds(199));
        Assert.Single(factory.Connects);
        time.Advance(TimeSpan.FromMilliseconds(1));
        await TestTimeout.Eventually(() => factory.Connects.Count == 2, "a second connect started");
        Assert.Equal(First, factory[1].Remote);
        Assert.Equal(start + TimeSpan.FromMilliseconds(200), factory[1].At);

        var second = new FakeFlow(First);
        factory[1].Result.SetResult(second);   // the first one's SYN was lost
        await TestTimeout.Eventually(() => connection.Resumes.Count == 1, "the second flow carries the Resume");
        Assert.Same(second, connection.Resumes.Single().Flow);
        Assert.True(factory[0].Token.IsCancellationRequested);
        connection.Accept(connection.Resumes.Single());
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(2, factory.Connects.Count);   // two connects per endpoint at most
        await StopAsync(supervisor, connection);
    }

    [Fact]
    public async Task A_refused_connect_starts_the_next_endpoint_at_once_and_is_not_repeated()
    {
        var (supervisor, connection, factory, time) = Start([First, Second], rtt: null);
        factory.Refuse = First;
        var start = time.GetUtcNow();
        await TestTimeout.Eventually(() => factory.Connects.Count == 2, "the second endpoint was tried");
        Assert.Equal([(First, start), (Second, start)], factory.Connects.Select(c => (c.Remote, c.At)));

        time.Advance(TimeSpan.FromMilliseconds(50));
        await TestTimeout.Eventually(() => factory.Connects.Count == 3, "the unanswered endpoint was raced again");
        Assert.Equal(Second, factory[2].Remote);   // not the refused one
        factory[2].Result.SetResult(new FakeFlow(Second));
        await TestTimeout.Eventually(() => connection.Resumes.Count == 1, "the Resume went out");
        connection.Accept(connection.Resumes.Single());
        await TestTimeout.Eventually(() => factory[1].Token.IsCancellationRequested, "the other connect was cancelled");
        await StopAsync(supervisor, connection);
    }

    [Fact]
    public async Task Only_a_push_that_changes_the_endpoints_is_recorded_in_the_move()
    {
        var locator = new TestLocator();
        locator.Set(Keys.Server.Guid, First);
        var (supervisor, connection, factory, _) = Start([First], rtt: null, locator);
        await TestTimeout.Eventually(() => factory.Connects.Count == 1, "the first connect started");

        locator.Push(Keys.Server.Guid, First);    // a re-opened watch re-delivers the record in use
        Assert.DoesNotContain(connection.Events, e => e.Kind == MoveEventKind.EndpointsPushed);
        locator.Push(Keys.Server.Guid, Second);   // the peer moved
        Assert.Contains(connection.Events, e => e.Kind == MoveEventKind.EndpointsPushed && e.Detail == Second.ToString());
        await TestTimeout.Eventually(() => factory.Connects.Any(c => c.Remote.Equals(Second)), "the pushed endpoint was tried");
        await StopAsync(supervisor, connection);
    }
}
