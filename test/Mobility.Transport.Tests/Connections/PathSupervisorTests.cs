using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Mobility.Protocol.Identity;
using Mobility.Transport.Connections;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Tests.Connections;

/// <summary>
/// The client's path supervisor on a <see cref="FakeTimeProvider"/>, against a connection that
/// only records what it is asked and a flow factory that refuses or never answers: the back-off
/// schedule, a push cutting a back-off short, the attempt deadline on the injected clock.
/// </summary>
public sealed class PathSupervisorTests
{
    private static readonly IPEndPoint First = new(IPAddress.Parse("203.0.113.1"), 443);
    private static readonly IPEndPoint Second = new(IPAddress.Parse("203.0.113.2"), 443);

    /// <summary>A fake clock that records the due time of every timer created on it (so a test knows a pause has begun).</summary>
    private sealed class RecordingTime : FakeTimeProvider
    {
        private readonly ConcurrentQueue<TimeSpan> _due = new();

        public RecordingTime()
            : base(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(20000))
        {
        }

        public int TimersDue(TimeSpan due) => _due.Count(d => d == due);

        public override string ToString() => string.Join(' ', _due.Select(d => d.TotalMilliseconds));

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            _due.Enqueue(dueTime);
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }

    /// <summary>Refuses every connect (or, with <see cref="Hang"/>, never answers) and records when and where.</summary>
    private sealed class RefusingFactory(TimeProvider time) : IFlowFactory
    {
        public ConcurrentQueue<(IPEndPoint Remote, DateTimeOffset At)> Attempts { get; } = new();

        public ConcurrentQueue<CancellationToken> Tokens { get; } = new();

        public bool Hang { get; set; }

        public async ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
        {
            Attempts.Enqueue((remote, time.GetUtcNow()));
            Tokens.Enqueue(cancellationToken);
            if (Hang)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            throw new SocketException((int)SocketError.ConnectionRefused);
        }
    }

    private sealed class PathlessConnection : ISupervisedConnection
    {
        private readonly CancellationTokenSource _closed = new();

        public HostGuid RemoteGuid => Keys.Server.Guid;

        public UInt128 Token => 42;

        public MobileConnectionState State => MobileConnectionState.Pathless;

        public CancellationToken Closed => _closed.Token;

        public ConnectionPath? ActivePath => null;

        public int ResumeAttempts;

        public bool NeedsPath() => !_closed.IsCancellationRequested;

        public void CountResumeAttempt() => Interlocked.Increment(ref ResumeAttempts);

        public TimeSpan? LastRtt => null;

        public void RecordMove(MoveEventKind kind, string? detail)
        {
        }

        public void OnFlowConnected(IFlow flow) => throw new InvalidOperationException("no flow connects in these tests");

        public ConnectionPath? BeginResume(IFlow flow) => throw new InvalidOperationException("no flow connects in these tests");

        public void PathFailed(ConnectionPath path, string reason) => throw new InvalidOperationException("no path exists in these tests");

        public void OnUnknownToPeer(IPEndPoint endpoint) => throw new InvalidOperationException("no server answers in these tests");

        public void Fail(Exception reason, uint? resetCode = null) => throw new InvalidOperationException("unexpected failure: " + reason.Message);

        public void Close() => _closed.Cancel();
    }

    private static (PathSupervisor Supervisor, PathlessConnection Connection, RefusingFactory Factory, RecordingTime Time) Create(IPeerLocator? locator = null)
    {
        var time = new RecordingTime();
        var factory = new RefusingFactory(time);
        var options = new MobileConnectionOptions
        {
            TimeProvider = time,
            FlowFactory = factory,
            ReconnectBackoffMin = TimeSpan.FromMilliseconds(50),
            ReconnectBackoffMax = TimeSpan.FromSeconds(1),
            ResumeAttemptTimeout = TimeSpan.FromSeconds(30),
        };
        var connection = new PathlessConnection();
        var supervisor = new PathSupervisor(connection, options, locator, [First], null, NullLogger.Instance, random: () => 0.5);
        supervisor.Start();
        return (supervisor, connection, factory, time);
    }

    private static async Task StopAsync(PathSupervisor supervisor, PathlessConnection connection)
    {
        connection.Close();
        await supervisor.Completion.WithTimeout();
    }

    [Fact]
    public async Task Failed_attempts_back_off_exponentially_from_the_minimum_to_the_cap()
    {
        var (supervisor, connection, factory, time) = Create();
        var start = time.GetUtcNow();
        supervisor.Kick();
        int[] pauses = [50, 100, 200, 400, 800, 1000, 1000];
        for (var i = 0; i < pauses.Length; i++)
        {
            var pause = TimeSpan.FromMilliseconds(pauses[i]);
            var expected = pauses.Take(i + 1).Count(p => p == pauses[i]);
            await TestTimeout.Eventually(() => factory.Attempts.Count == i + 1, $"attempt {i + 1} was made");
            await TestTimeout.Eventually(() => time.TimersDue(pause) >= expected, $"pause {i + 1} of {pause.TotalMilliseconds} ms began");
            time.Advance(pause - TimeSpan.FromMilliseconds(1));
            Assert.Equal(i + 1, factory.Attempts.Count);   // not a moment early
            time.Advance(TimeSpan.FromMilliseconds(1));
        }

        await TestTimeout.Eventually(() => factory.Attempts.Count == pauses.Length + 1, "the last attempt was made");
        var offsets = factory.Attempts.Select(a => (a.At - start).TotalMilliseconds).ToArray();
        Assert.Equal([0, 50, 150, 350, 750, 1550, 2550, 3550], offsets);
        Assert.Equal(pauses.Length + 1, connection.ResumeAttempts);
        await StopAsync(supervisor, connection);
    }

    [Fact]
    public async Task A_pushed_endpoint_cuts_the_back_off_short_and_is_tried_at_once()
    {
        var locator = new TestLocator();
        locator.Set(Keys.Server.Guid, First);
        var (supervisor, connection, factory, time) = Create(locator);
        var start = time.GetUtcNow();
        supervisor.Kick();
        await TestTimeout.Eventually(() => factory.Attempts.Count == 1, "the first attempt was made");
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(50)) > 0, "the back-off began");

        locator.Push(Keys.Server.Guid, Second);
        await TestTimeout.Eventually(() => factory.Attempts.Count == 2, "the pushed endpoint was tried");
        var second = factory.Attempts.Last();
        Assert.Equal(Second, second.Remote);
        Assert.Equal(start, second.At);   // no time passed: the back-off was abandoned
        Assert.Equal([Second], supervisor.Endpoints);
        await StopAsync(supervisor, connection);
    }

    [Fact]
    public async Task An_attempt_that_never_connects_is_given_up_after_the_attempt_timeout_on_the_injected_clock()
    {
        var (supervisor, connection, factory, time) = Create();
        factory.Hang = true;
        supervisor.Kick();
        await TestTimeout.Eventually(() => factory.Tokens.Count == 1, "the first attempt began");
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromSeconds(30)) > 0, "the attempt's deadline was set");
        var token = factory.Tokens.Single();
        time.Advance(TimeSpan.FromSeconds(29));
        Assert.False(token.IsCancellationRequested);
        // Within the attempt, the unanswered connect was raced by a second one after the race delay.
        await TestTimeout.Eventually(() => factory.Tokens.Count == 2, "the raced second connect began");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(token.IsCancellationRequested);
        await TestTimeout.Eventually(() => factory.Tokens.All(t => t.IsCancellationRequested), "both connects were given up");
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(50)) > 1, "the back-off began");
        time.Advance(TimeSpan.FromMilliseconds(50));
        await TestTimeout.Eventually(() => factory.Tokens.Count == 3, "the next attempt began");
        await StopAsync(supervisor, connection);
    }

    [Fact]
    public async Task The_supervisor_ends_with_its_connection_even_in_the_middle_of_a_back_off()
    {
        var (supervisor, connection, factory, time) = Create();
        supervisor.Kick();
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(50)) > 0, "the back-off began");
        await StopAsync(supervisor, connection);
        Assert.True(supervisor.Completion.IsCompletedSuccessfully);
        Assert.Single(factory.Attempts);
    }
}
