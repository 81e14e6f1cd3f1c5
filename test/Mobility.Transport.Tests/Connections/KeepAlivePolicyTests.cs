namespace Mobility.Transport.Tests.Connections;

/// <summary>The keepalive policy as a pure function of a <see cref="FakeTimeProvider"/>.</summary>
public sealed class KeepAlivePolicyTests
{
    private static readonly MobileTransportOptions Options = new()
    {
        KeepAliveInterval = TimeSpan.FromMilliseconds(500),
        IdleKeepAliveInterval = TimeSpan.FromSeconds(20),
        DeadPathTimeout = TimeSpan.FromSeconds(2),
        PathlessTimeout = TimeSpan.FromSeconds(60),
    };

    private sealed class Fixture
    {
        public Fixture(bool isClient, double random = 0.5)
        {
            Policy = new KeepAlivePolicy(isClient, Options, Time, Time.GetTimestamp(), () => random);
            Path = new ConnectionPath(new MemoryFlow(), new MemoryFlow().IncomingReader(), null, established: true);
            Policy.OnPathActivated(Path, Time.GetTimestamp());
        }

        public FakeTimeProvider Time { get; } = new(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(20000));

        public KeepAlivePolicy Policy { get; }

        public ConnectionPath Path { get; }

        public long Now => Time.GetTimestamp();

        public KeepAliveVerdict Tick(bool unacknowledged = false, bool ackPending = false, long? pathLostAt = null, bool withPath = true)
            => Policy.OnTick(withPath ? Path : null, unacknowledged, ackPending, pathLostAt, Now);
    }

    [Fact]
    public void An_active_path_that_sent_nothing_for_the_keepalive_interval_pings()
    {
        var f = new Fixture(isClient: false);
        f.Policy.OnDataMoved(f.Path, f.Now);
        f.Time.Advance(TimeSpan.FromMilliseconds(250));
        f.Path.LastReceived = f.Now;
        Assert.False(f.Tick().Ping);
        f.Time.Advance(TimeSpan.FromMilliseconds(250));
        f.Path.LastReceived = f.Now;
        var verdict = f.Tick();
        Assert.True(verdict.Ping);
        Assert.False(verdict.PathDead);
        Assert.Equal(TimeSpan.FromMilliseconds(250), verdict.NextTick);
    }

    [Fact]
    public void An_active_path_that_heard_nothing_for_the_dead_path_timeout_is_dead_and_silent()
    {
        var f = new Fixture(isClient: true);
        f.Time.Advance(TimeSpan.FromMilliseconds(2000));
        Assert.False(f.Tick(unacknowledged: true).PathDead);   // exactly the timeout: not yet
        f.Time.Advance(TimeSpan.FromMilliseconds(1));
        var verdict = f.Tick(unacknowledged: true);
        Assert.True(verdict.PathDead);
        Assert.True(verdict.SilentDeath);
        Assert.Equal(Options.DeadPathTimeout, verdict.DeadFor);
        Assert.Equal(f.Policy.FastTick, verdict.NextTick);
    }

    [Fact]
    public void An_active_path_asks_for_an_ack_only_when_one_would_say_something_new()
    {
        var f = new Fixture(isClient: false);
        f.Policy.OnDataMoved(f.Path, f.Now);
        Assert.False(f.Tick(ackPending: false).RequestAck);
        Assert.True(f.Tick(ackPending: true).RequestAck);
    }

    [Fact]
    public void An_idle_client_pings_once_per_jittered_idle_interval_and_probes_fast_until_answered()
    {
        var f = new Fixture(isClient: true, random: 0.5);   // jitter factor 1.0: exactly 20 s
        Assert.Equal(TimeSpan.FromSeconds(20), f.Path.IdleInterval);
        f.Time.Advance(TimeSpan.FromSeconds(5));
        var idle = f.Tick();
        Assert.False(idle.Ping);
        Assert.False(f.Policy.IsFast);
        Assert.Equal(TimeSpan.FromSeconds(15), idle.NextTick);   // sleeps until the keepalive is due

        f.Time.Advance(TimeSpan.FromSeconds(15));
        var keepalive = f.Tick();
        Assert.True(keepalive.Ping);
        Assert.True(f.Policy.IsFast);
        Assert.True(f.Path.AwaitingAnswer);

        // The PONG comes back: the path is heard, the connection turns idle again at the next tick.
        f.Time.Advance(TimeSpan.FromMilliseconds(10));
        f.Path.LastReceived = f.Now;
        Assert.False(f.Path.AwaitingAnswer);
        var after = f.Tick();
        Assert.False(after.Ping);
        Assert.False(f.Policy.IsFast);
    }

    [Fact]
    public void An_unanswered_idle_keepalive_kills_the_path_after_the_dead_path_timeout()
    {
        var f = new Fixture(isClient: true, random: 0.5);
        f.Time.Advance(TimeSpan.FromSeconds(20));
        Assert.True(f.Tick().Ping);
        f.Time.Advance(TimeSpan.FromMilliseconds(2001));
        Assert.True(f.Tick().PathDead);
    }

    [Fact]
    public void An_idle_server_never_pings_and_drops_a_path_silent_for_twice_the_idle_interval_plus_the_dead_path_timeout()
    {
        var f = new Fixture(isClient: false);
        var limit = (Options.IdleKeepAliveInterval * 2) + Options.DeadPathTimeout;   // 42 s
        f.Time.Advance(TimeSpan.FromSeconds(10));
        var waiting = f.Tick();
        Assert.False(waiting.Ping);
        Assert.False(waiting.PathDead);
        Assert.Equal(limit - TimeSpan.FromSeconds(10) + f.Policy.FastTick, waiting.NextTick);
        f.Time.Advance(limit - TimeSpan.FromSeconds(10));
        Assert.False(f.Tick().PathDead);
        f.Time.Advance(TimeSpan.FromMilliseconds(1));
        var dead = f.Tick();
        Assert.True(dead.PathDead);
        Assert.False(dead.SilentDeath);
        Assert.Equal(limit, dead.DeadFor);
    }

    [Fact]
    public void Data_after_idling_turns_the_connection_active_once_and_restarts_the_probe_clock()
    {
        var f = new Fixture(isClient: true);
        f.Time.Advance(TimeSpan.FromSeconds(5));
        f.Tick();
        Assert.False(f.Policy.IsFast);
        f.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(f.Policy.OnDataMoved(f.Path, f.Now));
        Assert.Equal(f.Now, f.Path.ProbeSince);
        Assert.False(f.Policy.OnDataMoved(f.Path, f.Now));   // already active: no second "tick soon"
        Assert.True(f.Policy.IsActive(f.Path, unacknowledged: false, f.Now));
        f.Time.Advance(Options.DeadPathTimeout * 2);
        f.Path.LastReceived = f.Now;
        Assert.False(f.Policy.IsActive(f.Path, unacknowledged: false, f.Now));
        Assert.True(f.Policy.IsActive(f.Path, unacknowledged: true, f.Now));
    }

    [Fact]
    public void Without_a_path_the_connection_fails_after_the_pathless_timeout()
    {
        var f = new Fixture(isClient: false);
        var lost = f.Now;
        f.Time.Advance(TimeSpan.FromSeconds(30));
        var waiting = f.Tick(pathLostAt: lost, withPath: false);
        Assert.False(waiting.NoPath);
        Assert.Equal(TimeSpan.FromSeconds(30) + f.Policy.FastTick, waiting.NextTick);   // the server sleeps until the deadline
        f.Time.Advance(TimeSpan.FromSeconds(30));
        Assert.False(f.Tick(pathLostAt: lost, withPath: false).NoPath);
        f.Time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(f.Tick(pathLostAt: lost, withPath: false).NoPath);
    }

    [Fact]
    public void A_client_without_a_path_ticks_fast_while_it_reconnects()
    {
        var f = new Fixture(isClient: true);
        var lost = f.Now;
        f.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(f.Policy.FastTick, f.Tick(pathLostAt: lost, withPath: false).NextTick);
    }

    [Theory]
    [InlineData(0.0, 15.0)]
    [InlineData(0.5, 20.0)]
    [InlineData(0.999, 24.99)]
    public void The_idle_interval_is_jittered_between_three_quarters_and_five_quarters(double random, double seconds)
    {
        var f = new Fixture(isClient: true, random);
        Assert.Equal(seconds, f.Policy.JitteredIdleInterval().TotalSeconds, precision: 2);
    }
}
