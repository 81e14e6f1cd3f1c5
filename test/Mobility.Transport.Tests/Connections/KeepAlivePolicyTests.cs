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
        f.Path.PingSentAt = f.Now;   // its first PING is out (no RTT sample yet: the 2 s bound, probes every 500 ms)
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

    /// <summary>Gives <paramref name="path"/> one RTT sample of <paramref name="rtt"/> (a PING and its PONG).</summary>
    private static void Sample(Fixture f, TimeSpan rtt)
    {
        f.Path.PingId++;
        f.Path.PingSentAt = f.Now;
        f.Time.Advance(rtt);
        Assert.True(f.Path.OnPong(f.Path.PingId, f.Now, f.Time));
        f.Path.LastReceived = f.Now;
        f.Path.LastSent = f.Now;
    }

    [Fact]
    public void A_path_without_a_ping_yet_pings_on_its_first_active_tick_for_an_rtt_sample()
    {
        var f = new Fixture(isClient: false);
        f.Policy.OnDataMoved(f.Path, f.Now);
        f.Time.Advance(TimeSpan.FromMilliseconds(10));
        Assert.True(f.Tick().Ping);
    }

    [Theory]
    [InlineData(10, 1000)]     // a fast path: the 1 s floor
    [InlineData(250, 1000)]    // 4 RTT = 1 s
    [InlineData(400, 1600)]    // a slow path: 4 smoothed RTTs
    public void With_an_rtt_sample_an_active_path_is_dead_after_max_of_one_second_and_four_smoothed_rtts(int rttMs, int boundMs)
    {
        var f = new Fixture(isClient: true);
        Sample(f, TimeSpan.FromMilliseconds(rttMs));
        f.Policy.OnDataMoved(f.Path, f.Now);
        var bound = TimeSpan.FromMilliseconds(boundMs);
        Assert.Equal(bound, f.Policy.ActiveDeadTimeout(f.Path));
        Assert.Equal(bound / 4 < Options.KeepAliveInterval ? bound / 4 : Options.KeepAliveInterval, f.Policy.ProbeInterval(f.Path));

        // Silent from now on; the tick that finds it dead comes 1 ms after the bound, and every tick
        // before it is due at most half a probe interval later, and never past the deadline + 1 ms.
        var start = f.Now;
        var deadAt = TimeSpan.Zero;
        var pings = 0;
        for (var i = 0; i < 1000 && deadAt == TimeSpan.Zero; i++)
        {
            var verdict = f.Tick(unacknowledged: true);
            if (verdict.PathDead)
            {
                Assert.True(verdict.SilentDeath);
                Assert.Equal(bound, verdict.DeadFor);
                deadAt = f.Time.GetElapsedTime(start, f.Now);
                break;
            }

            if (verdict.Ping)
            {
                pings++;
                f.Path.LastSent = f.Now;
            }

            Assert.True(verdict.NextTick <= f.Policy.ProbeInterval(f.Path) / 2);
            f.Time.Advance(verdict.NextTick);
        }

        Assert.Equal(bound + TimeSpan.FromMilliseconds(1), deadAt);
        Assert.InRange(pings, 3, 5);   // probed every quarter of the bound
    }

    [Fact]
    public void The_smoothed_rtt_follows_samples_by_an_eighth_and_the_bound_with_it()
    {
        var f = new Fixture(isClient: true);
        Sample(f, TimeSpan.FromMilliseconds(800));
        Assert.Equal(TimeSpan.FromMilliseconds(3200), f.Policy.ActiveDeadTimeout(f.Path));
        Sample(f, TimeSpan.FromMilliseconds(0));
        Assert.Equal(TimeSpan.FromMilliseconds(700), f.Path.SmoothedRtt);   // 7/8 × 800 + 1/8 × 0
        Assert.Equal(TimeSpan.FromMilliseconds(2800), f.Policy.ActiveDeadTimeout(f.Path));
    }

    [Fact]
    public void Under_a_transfer_a_path_is_still_pinged_once_per_bound_for_fresh_rtt_samples()
    {
        var f = new Fixture(isClient: true);
        Sample(f, TimeSpan.FromMilliseconds(20));
        f.Policy.OnDataMoved(f.Path, f.Now);
        for (var t = 0; t < 900; t += 100)
        {
            f.Time.Advance(TimeSpan.FromMilliseconds(100));
            f.Path.LastSent = f.Now;         // data goes out all the time
            f.Path.LastReceived = f.Now;     // and ACKs come back
            Assert.False(f.Tick(unacknowledged: true).Ping);
        }

        f.Time.Advance(TimeSpan.FromMilliseconds(100));
        f.Path.LastSent = f.Now;
        Assert.True(f.Tick(unacknowledged: true).Ping);   // 1 s after the last PING
    }

    [Fact]
    public void A_promoted_standby_restarts_its_dead_path_clock_and_is_probed_at_once()
    {
        var f = new Fixture(isClient: true);
        Sample(f, TimeSpan.FromMilliseconds(10));
        f.Time.Advance(TimeSpan.FromSeconds(15));   // a standby is silent between idle keepalives
        f.Policy.OnPathPromoted(f.Path, f.Now);
        Assert.True(f.Path.Outbox.HasProbe);
        Assert.False(f.Tick(unacknowledged: true).PathDead);
        f.Time.Advance(TimeSpan.FromMilliseconds(1001));
        Assert.True(f.Tick(unacknowledged: true).PathDead);
    }

    [Fact]
    public void A_client_pings_its_standby_once_per_idle_interval_and_drops_it_when_the_ping_goes_unanswered()
    {
        var f = new Fixture(isClient: true, random: 0.5);   // idle interval exactly 20 s
        var (ping, dead, next) = f.Policy.OnStandbyTick(f.Path, f.Now);
        Assert.False(ping || dead);
        Assert.Equal(TimeSpan.FromSeconds(20), next);
        f.Time.Advance(TimeSpan.FromSeconds(20));
        (ping, dead, next) = f.Policy.OnStandbyTick(f.Path, f.Now);
        Assert.True(ping);
        Assert.False(dead);
        Assert.Equal(Options.DeadPathTimeout + TimeSpan.FromMilliseconds(1), next);
        f.Time.Advance(next);
        (ping, dead, _) = f.Policy.OnStandbyTick(f.Path, f.Now);
        Assert.False(ping);
        Assert.True(dead);
    }

    [Fact]
    public void A_standby_whose_ping_is_answered_stays_and_the_server_only_drops_one_silent_for_its_idle_limit()
    {
        var client = new Fixture(isClient: true, random: 0.5);
        client.Time.Advance(TimeSpan.FromSeconds(20));
        Assert.True(client.Policy.OnStandbyTick(client.Path, client.Now).Ping);
        client.Time.Advance(TimeSpan.FromMilliseconds(30));
        client.Path.LastReceived = client.Now;   // the PONG
        client.Time.Advance(TimeSpan.FromSeconds(5));
        var answered = client.Policy.OnStandbyTick(client.Path, client.Now);
        Assert.False(answered.Ping || answered.Dead);

        var server = new Fixture(isClient: false);
        var limit = (Options.IdleKeepAliveInterval * 2) + Options.DeadPathTimeout;
        server.Time.Advance(limit);
        var waiting = server.Policy.OnStandbyTick(server.Path, server.Now);
        Assert.False(waiting.Ping || waiting.Dead);
        server.Time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(server.Policy.OnStandbyTick(server.Path, server.Now).Dead);
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
