using System.Collections.Concurrent;
using System.IO.Pipelines;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mobility.Transport.Tests.Connections;

/// <summary>
/// The client's path supervisor on a <see cref="FakeTimeProvider"/>, against a connection that
/// only records what it is asked and a flow factory that refuses or never answers: the back-off
/// schedule, a push cutting a back-off short, the attempt deadline on the injected clock; and the
/// connect race of an attempt against a flow factory the test answers by hand.
/// </summary>
public sealed class PathSupervisorTests
{
    private static readonly IPEndPoint First = new(IPAddress.Parse("203.0.113.1"), 443);
    private static readonly IPEndPoint Second = new(IPAddress.Parse("203.0.113.2"), 443);
    private static readonly IPEndPoint Third = new(IPAddress.Parse("203.0.113.3"), 443);

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

    /// <summary>Ends the connection (<paramref name="close"/>) and waits for the supervisor to stop.</summary>
    private static async Task StopAsync(PathSupervisor supervisor, Action close)
    {
        close();
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
        await StopAsync(supervisor, connection.Close);
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
        await StopAsync(supervisor, connection.Close);
    }

    [Fact]
    public async Task An_attempt_that_never_connects_is_given_up_after_the_attempt_timeout_on_the_injected_clock()
    {
        var (supervisor, connection, factory, time) = Create();
        factory.Hang = true;
        supervisor.Kick();
        await TestTimeout.Eventually(() => factory.Tokens.Count == 1, "the first attempt began");
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromSeconds(30)) > 0, "the attempt's deadline was set");
        // The race delay's timer too (the minimum, 50 ms: no RTT measured), or the clock would pass it before it was set.
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(50)) > 0, "the race delay was set");
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
        await StopAsync(supervisor, connection.Close);
    }

    [Fact]
    public async Task The_supervisor_ends_with_its_connection_even_in_the_middle_of_a_back_off()
    {
        var (supervisor, connection, factory, time) = Create();
        supervisor.Kick();
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(50)) > 0, "the back-off began");
        await StopAsync(supervisor, connection.Close);
        Assert.True(supervisor.Completion.IsCompletedSuccessfully);
        Assert.Single(factory.Attempts);
    }


    /// <summary>One connect the test finishes by hand: with a flow, a refusal, or never.</summary>
    private sealed record PendingConnect(IPEndPoint Remote, DateTimeOffset At, CancellationToken Token, TaskCompletionSource<IFlow> Result)
    {
        /// <summary>Opened for a first flight (TCP Fast Open) rather than by a plain connect.</summary>
        public bool FirstFlight { get; init; }
    }

    /// <summary>Connects that wait for the test (ignoring cancellation, so that a loser can still connect late); refuses <see cref="Refuse"/> at once.</summary>
    private sealed class ControlledFactory(TimeProvider time) : IFlowFactory
    {
        public ConcurrentQueue<PendingConnect> Connects { get; } = new();

        public IPEndPoint? Refuse { get; set; }

        public PendingConnect this[int i] => Connects.ElementAt(i);

        public ValueTask<IFlow> ConnectAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
            => Connect(remote, cancellationToken, firstFlight: false);

        public ValueTask<IFlow> ConnectFirstFlightAsync(IPEndPoint remote, IPAddress? localAddress, CancellationToken cancellationToken)
            => Connect(remote, cancellationToken, firstFlight: true);

        private ValueTask<IFlow> Connect(IPEndPoint remote, CancellationToken cancellationToken, bool firstFlight)
        {
            var pending = new PendingConnect(remote, time.GetUtcNow(), cancellationToken, new TaskCompletionSource<IFlow>(TaskCreationOptions.RunContinuationsAsynchronously))
            {
                FirstFlight = firstFlight,
            };
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

    private static (PathSupervisor Supervisor, ResumingConnection Connection, ControlledFactory Factory, RecordingTime Time) StartRace(IPEndPoint[] endpoints, TimeSpan? rtt,
        IPeerLocator? locator = null, bool fastOpen = true, TimeSpan? flowRtt = null)
    {
        var time = new RecordingTime();
        var factory = new ControlledFactory(time);
        var options = new MobileConnectionOptions { TimeProvider = time, FlowFactory = factory, ResumeAttemptTimeout = TimeSpan.FromSeconds(30), FastOpen = fastOpen };
        var resuming = new ResumingConnection(rtt);
        var race = new PathSupervisor(resuming, options, locator, endpoints, null, NullLogger.Instance, random: () => 0.5);
        race.NoteFlowRtt(new MemoryFlow { SmoothedRtt = flowRtt });   // the handshake flow's, as the kernel measured it
        race.Start();
        race.Kick();   // the path is lost: the first attempt starts at once
        return (race, resuming, factory, time);
    }

    // A resume attempt races its flow connects (Happy Eyeballs, RFC 8305): staggered by the
    // RTT-derived delay, first connected wins and carries the one Resume, losers are cancelled and
    // closed, a refused connect starts the next at once.

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
        var (supervisor, connection, factory, time) = StartRace([First, Second, Third], rtt: null);
        await TestTimeout.Eventually(() => factory.Connects.Count == 1, "the first connect started");
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(50)) > 0, "the race delay began");
        time.Advance(TimeSpan.FromMilliseconds(49));
        Assert.Single(factory.Connects);   // not a moment early
        time.Advance(TimeSpan.FromMilliseconds(1));
        await TestTimeout.Eventually(() => factory.Connects.Count == 2, "the second endpoint's connect started after the race delay");
        Assert.Equal(Second, factory[1].Remote);

        var winner = new MemoryFlow();
        factory[1].Result.SetResult(winner);
        await TestTimeout.Eventually(() => connection.Resumes.Count == 1, "the winner carries the Resume");
        Assert.Same(winner, connection.Resumes.Single().Flow);
        await TestTimeout.Eventually(() => factory[0].Token.IsCancellationRequested, "the loser's connect was cancelled");

        // The loser connects anyway: its flow is closed, never resumed on.
        var late = new MemoryFlow();
        factory[0].Result.SetResult(late);
        await TestTimeout.Eventually(() => late.Aborts > 0, "the late loser's flow was closed");

        connection.Accept(connection.Resumes.Single());
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(2, factory.Connects.Count);   // the third endpoint was never needed
        Assert.Single(connection.Resumes);
        Assert.Equal(0, winner.Aborts);
        var kinds = connection.Events.Select(e => e.Kind).ToList();
        Assert.Equal(2, kinds.Count(k => k == MoveEventKind.ConnectStarted));
        Assert.Equal(1, kinds.Count(k => k == MoveEventKind.ConnectFinished));
        Assert.Contains(connection.Events, e => e.Kind == MoveEventKind.AttemptFailed && e.Detail!.Contains("lost the race", StringComparison.Ordinal));
        await StopAsync(supervisor, connection.Close);
    }

    [Fact]
    public async Task An_unanswered_connect_is_raced_by_a_second_one_to_the_same_endpoint_after_twice_the_measured_rtt()
    {
        var (supervisor, connection, factory, time) = StartRace([First], rtt: TimeSpan.FromMilliseconds(100));
        var start = time.GetUtcNow();
        await TestTimeout.Eventually(() => factory.Connects.Count == 1, "the first connect started");
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(200)) > 0, "the race delay began");
        time.Advance(TimeSpan.FromMilliseconds(199));
        Assert.Single(factory.Connects);
        time.Advance(TimeSpan.FromMilliseconds(1));
        await TestTimeout.Eventually(() => factory.Connects.Count == 2, "a second connect started");
        Assert.Equal(First, factory[1].Remote);
        Assert.Equal(start + TimeSpan.FromMilliseconds(200), factory[1].At);

        var second = new MemoryFlow();
        factory[1].Result.SetResult(second);   // the first one's SYN was lost
        await TestTimeout.Eventually(() => connection.Resumes.Count == 1, "the second flow carries the Resume");
        Assert.Same(second, connection.Resumes.Single().Flow);
        Assert.True(factory[0].Token.IsCancellationRequested);
        connection.Accept(connection.Resumes.Single());
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(2, factory.Connects.Count);   // two connects per endpoint at most
        await StopAsync(supervisor, connection.Close);
    }

    [Fact]
    public async Task Before_any_pong_the_connect_race_waits_twice_the_kernels_rtt_of_the_last_flow()
    {
        // A move right after the connection opened: no PING answered yet, but the handshake flow's RTT is known.
        var (supervisor, connection, factory, time) = StartRace([First], rtt: null, fastOpen: false, flowRtt: TimeSpan.FromMilliseconds(100));
        var start = time.GetUtcNow();
        await TestTimeout.Eventually(() => factory.Connects.Count == 1, "the first connect started");
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(200)) > 0, "the race delay began");
        time.Advance(TimeSpan.FromMilliseconds(199));
        Assert.Single(factory.Connects);   // not the 50 ms minimum
        time.Advance(TimeSpan.FromMilliseconds(1));
        await TestTimeout.Eventually(() => factory.Connects.Count == 2, "a second connect started");
        Assert.Equal(start + TimeSpan.FromMilliseconds(200), factory[1].At);
        factory[1].Result.SetResult(new MemoryFlow());
        await TestTimeout.Eventually(() => connection.Resumes.Count == 1, "the second flow carries the Resume");
        connection.Accept(connection.Resumes.Single());
        await StopAsync(supervisor, connection.Close);
    }

    [Fact]
    public async Task A_refused_connect_starts_the_next_endpoint_at_once_and_is_not_repeated()
    {
        var (supervisor, connection, factory, time) = StartRace([First, Second], rtt: null);
        factory.Refuse = First;
        var start = time.GetUtcNow();
        await TestTimeout.Eventually(() => factory.Connects.Count == 2, "the second endpoint was tried");
        Assert.Equal([(First, start), (Second, start)], factory.Connects.Select(c => (c.Remote, c.At)));

        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(50)) > 0, "the race delay began");
        time.Advance(TimeSpan.FromMilliseconds(50));
        await TestTimeout.Eventually(() => factory.Connects.Count == 3, "the unanswered endpoint was raced again");
        Assert.Equal(Second, factory[2].Remote);   // not the refused one
        factory[2].Result.SetResult(new MemoryFlow());
        await TestTimeout.Eventually(() => connection.Resumes.Count == 1, "the Resume went out");
        connection.Accept(connection.Resumes.Single());
        await TestTimeout.Eventually(() => factory[1].Token.IsCancellationRequested, "the other connect was cancelled");
        await StopAsync(supervisor, connection.Close);
    }

    [Fact]
    public async Task Only_a_push_that_changes_the_endpoints_is_recorded_in_the_move()
    {
        var locator = new TestLocator();
        locator.Set(Keys.Server.Guid, First);
        var (supervisor, connection, factory, _) = StartRace([First], rtt: null, locator);
        await TestTimeout.Eventually(() => factory.Connects.Count == 1, "the first connect started");

        locator.Push(Keys.Server.Guid, First);    // a re-opened watch re-delivers the record in use
        Assert.DoesNotContain(connection.Events, e => e.Kind == MoveEventKind.EndpointsPushed);
        locator.Push(Keys.Server.Guid, Second);   // the peer moved
        Assert.Contains(connection.Events, e => e.Kind == MoveEventKind.EndpointsPushed && e.Detail == Second.ToString());
        await TestTimeout.Eventually(() => factory.Connects.Any(c => c.Remote.Equals(Second)), "the pushed endpoint was tried");
        await StopAsync(supervisor, connection.Close);
    }

    // The resume race: a Resume without an answer within max(2 x RTT, 50 ms) (one RTT more while a
    // first flight's server may still need its TCP handshake) is raced by another flow with the next
    // counter; the newest flow is the one used; at most four flows per attempt.

    [Theory]
    [InlineData(10, false, 50)]       // a fast path: the minimum
    [InlineData(100, false, 200)]     // 2 x RTT
    [InlineData(100, true, 300)]      // a first flight the server may take only after its handshake
    [InlineData(1000, false, 750)]    // capped
    public void The_resume_race_delay_is_twice_the_rtt_and_one_more_for_a_handshake_ahead(int rttMs, bool handshakeAhead, int expectedMs)
        => Assert.Equal(TimeSpan.FromMilliseconds(expectedMs),
            PathSupervisor.ResumeRaceDelay(TimeSpan.FromMilliseconds(rttMs), handshakeAhead, new MobileConnectionOptions()));

    [Fact]
    public async Task An_unanswered_resume_is_raced_by_a_new_flow_after_twice_the_rtt_and_the_newest_flow_is_used()
    {
        var (supervisor, connection, factory, time) = StartRace([First], rtt: TimeSpan.FromMilliseconds(100), fastOpen: false);
        await TestTimeout.Eventually(() => factory.Connects.Count == 1, "the first connect started");
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(200)) >= 1, "the connect's race pause began");
        var first = new MemoryFlow();
        factory[0].Result.SetResult(first);
        await TestTimeout.Eventually(() => connection.Resumes.Count == 1, "the first Resume went out");
        var sentAt = time.GetUtcNow();
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(200)) >= 2, "the resume race delay began");
        time.Advance(TimeSpan.FromMilliseconds(199));
        Assert.Single(factory.Connects);   // not a moment early
        time.Advance(TimeSpan.FromMilliseconds(1));
        await TestTimeout.Eventually(() => factory.Connects.Count == 2, "a racing flow's connect started");
        Assert.Equal(sentAt + TimeSpan.FromMilliseconds(200), factory[1].At);
        Assert.Equal(First, factory[1].Remote);
        Assert.False(factory[1].FirstFlight);

        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(200)) >= 3, "the racing connect's race pause began");
        var second = new MemoryFlow();
        factory[1].Result.SetResult(second);
        await TestTimeout.Eventually(() => connection.Resumes.Count == 2, "the racing flow carries its own Resume");
        Assert.Same(second, connection.Resumes.Last().Flow);
        Assert.Contains(connection.Events, e => e.Kind == MoveEventKind.AttemptFailed && e.Detail!.Contains("racing resume flow 2", StringComparison.Ordinal));

        // The old flow's late answer means nothing; the newest one's ends the attempt.
        connection.Resumes.First().ResumeResult.TrySetResult(null);
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(400)) >= 1, "the race delay of the newest Resume began, doubled");
        time.Advance(TimeSpan.FromMilliseconds(399));
        Assert.Equal(2, factory.Connects.Count);
        time.Advance(TimeSpan.FromMilliseconds(1));
        await TestTimeout.Eventually(() => factory.Connects.Count == 3, "the newest flow still unanswered is raced again");
        factory[2].Result.SetResult(new MemoryFlow());
        await TestTimeout.Eventually(() => connection.Resumes.Count == 3, "the third Resume went out");
        connection.Accept(connection.Resumes.Last());
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(3, factory.Connects.Count);
        Assert.Empty(connection.Failed);
        await StopAsync(supervisor, connection.Close);
    }

    [Fact]
    public async Task An_answer_that_comes_while_the_racing_flow_connects_wins_and_the_racing_flow_is_closed()
    {
        var (supervisor, connection, factory, time) = StartRace([First], rtt: TimeSpan.FromMilliseconds(100), fastOpen: false);
        await TestTimeout.Eventually(() => factory.Connects.Count == 1, "the first connect started");
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(200)) >= 1, "the connect's race pause began");
        factory[0].Result.SetResult(new MemoryFlow());
        await TestTimeout.Eventually(() => connection.Resumes.Count == 1, "the first Resume went out");
        await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(200)) >= 2, "the resume race delay began");
        time.Advance(TimeSpan.FromMilliseconds(200));
        await TestTimeout.Eventually(() => factory.Connects.Count == 2, "a racing flow's connect started");

        connection.Accept(connection.Resumes.Single());   // the ResumeAck was only late
        await TestTimeout.Eventually(() => factory[1].Token.IsCancellationRequested, "the racing connect was cancelled");
        var late = new MemoryFlow();
        factory[1].Result.SetResult(late);
        await TestTimeout.Eventually(() => late.Aborts > 0, "the racing flow that connected anyway was closed");
        Assert.Single(connection.Resumes);
        await StopAsync(supervisor, connection.Close);
    }

    [Fact]
    public async Task Racing_flows_alternate_plain_and_first_flight_and_stop_at_four_per_attempt()
    {
        var (supervisor, connection, factory, time) = StartRace([First, Second], rtt: TimeSpan.FromMilliseconds(100));
        // Timers so far: each connect's race pause (200 ms) and each Resume's race delay (200 ms plain,
        // 300 ms for a first flight, whose answer may need the TCP handshake first), doubled for each
        // flow already raced: 300, 400, 1200 ms.
        var pauses = 0;
        async Task Connected(int index)
        {
            await TestTimeout.Eventually(() => factory.Connects.Count == index + 1, $"connect {index + 1} started");
            pauses++;
            await TestTimeout.Eventually(() => time.TimersDue(TimeSpan.FromMilliseconds(200)) >= pauses, $"connect {index + 1}'s race pause began");
            factory[index].Result.SetResult(new MemoryFlow());
        }

        await Connected(0);
        for (var flow = 2; flow <= PathSupervisor.MaxResumeFlows; flow++)
        {
            await TestTimeout.Eventually(() => connection.Resumes.Count == flow - 1, $"Resume {flow - 1} went out");
            var delay = TimeSpan.FromMilliseconds((factory[flow - 2].FirstFlight ? 300 : 200) << (flow - 2));
            await TestTimeout.Eventually(() => time.TimersDue(delay) >= (delay == TimeSpan.FromMilliseconds(200) ? pauses + 1 : 1),
                $"the race delay before flow {flow} began");
            time.Advance(delay - TimeSpan.FromMilliseconds(1));
            Assert.Equal(flow - 1, factory.Connects.Count);   // not a moment early
            time.Advance(TimeSpan.FromMilliseconds(1));
            await Connected(flow - 1);
        }

        Assert.Equal([true, false, true, false], factory.Connects.Select(c => c.FirstFlight));
        Assert.Equal([First, Second, First, Second], factory.Connects.Select(c => c.Remote));   // the endpoints in turn
        await TestTimeout.Eventually(() => connection.Resumes.Count == PathSupervisor.MaxResumeFlows, "the last Resume went out");
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(PathSupervisor.MaxResumeFlows, factory.Connects.Count);   // bounded: the last one waits for TCP
        connection.Accept(connection.Resumes.Last());
        await StopAsync(supervisor, connection.Close);
    }

    [Fact]
    public async Task Without_any_rtt_measured_a_resume_is_not_raced()
    {
        var (supervisor, connection, factory, time) = StartRace([First], rtt: null);
        await TestTimeout.Eventually(() => factory.Connects.Count == 1, "the first connect started");
        factory[0].Result.SetResult(new MemoryFlow());
        await TestTimeout.Eventually(() => connection.Resumes.Count == 1, "the Resume went out");
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Single(factory.Connects);
        connection.Accept(connection.Resumes.Single());
        await StopAsync(supervisor, connection.Close);
    }

    /// <summary>A connection whose active path (from 127.0.0.1, MemoryFlow's) is up; counts how often the supervisor asked whether it needs a path.</summary>
    private sealed class ConnectedConnection : ISupervisedConnection
    {
        private readonly CancellationTokenSource _closed = new();
        private int _asked;

        public ConnectedConnection()
        {
            var flow = new MemoryFlow();
            ActivePath = new ConnectionPath(flow, PipeReader.Create(flow.Stream), null, established: true);
        }

        public HostGuid RemoteGuid => Keys.Server.Guid;

        public UInt128 Token => 42;

        public MobileConnectionState State => MobileConnectionState.Connected;

        public CancellationToken Closed => _closed.Token;

        public ConnectionPath? ActivePath { get; }

        public TimeSpan? LastRtt => null;

        /// <summary>Each wake of the supervisor asks once (then, the path being up, goes back to its standby check and waits).</summary>
        public int Asked => Volatile.Read(ref _asked);

        public bool NeedsPath()
        {
            Interlocked.Increment(ref _asked);
            return false;
        }

        public void CountResumeAttempt() => throw new InvalidOperationException("the path is up: no resume");

        public void RecordMove(MoveEventKind kind, string? detail)
        {
        }

        public void OnFlowConnected(IFlow flow)
        {
        }

        public ConnectionPath? BeginResume(IFlow flow) => throw new InvalidOperationException("the path is up: no resume");

        public void PathFailed(ConnectionPath path, string reason)
        {
        }

        public void OnUnknownToPeer(IPEndPoint endpoint) => throw new InvalidOperationException("no server answers in these tests");

        public void Fail(Exception reason, uint? resetCode = null) => throw new InvalidOperationException("unexpected failure: " + reason.Message);

        public void Close() => _closed.Cancel();
    }

    [Fact]
    public async Task No_standby_join_starts_from_a_new_address_when_the_active_paths_address_is_gone()
    {
        // The v6 client move (docs/evaluation.md): the address in use is deleted and another one appears in one
        // event. The supervisor hears of it before the connection's loop drops the path; it must leave the new
        // address to the resume instead of joining from it a standby the loop would refuse.
        var time = new RecordingTime();
        var factory = new ControlledFactory(time);
        var connection = new ConnectedConnection();
        var remote = connection.ActivePath!.Flow.RemoteEndPoint!;
        factory.Refuse = remote;
        var options = new MobileConnectionOptions { TimeProvider = time, FlowFactory = factory, MaxStandbyPaths = 1 };
        var supervisor = new PathSupervisor(connection, options, null, [remote], null, NullLogger.Instance, random: () => 0.5);
        supervisor.Start();

        // While the active path's address is listed, a second address is joined from (here refused at once). Two
        // wakes: the address change, then the end of the join; then the supervisor waits with no kick pending.
        supervisor.OnLocalAddresses([IPAddress.Loopback, IPAddress.Parse("127.0.0.2")]);
        await TestTimeout.Eventually(() => factory.Connects.Count == 1 && connection.Asked == 2, "a standby join from 127.0.0.2, refused");

        // The move: 127.0.0.1 (the active path's) gone, 127.0.0.3 new. The wake after the one it causes shows
        // that the standby check following it has run.
        supervisor.OnLocalAddresses([IPAddress.Parse("127.0.0.3")]);
        await TestTimeout.Eventually(() => connection.Asked >= 3, "the supervisor woke for the move");
        supervisor.Kick();
        await TestTimeout.Eventually(() => connection.Asked >= 4, "the supervisor woke again");

        // Completion includes any join started: its connect is counted by then.
        await StopAsync(supervisor, connection.Close);
        Assert.Single(factory.Connects);
    }
}
