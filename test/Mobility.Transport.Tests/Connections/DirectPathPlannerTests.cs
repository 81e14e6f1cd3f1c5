using System.Net;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;

namespace Mobility.Transport.Tests.Connections;

public class DirectPathPlannerTests
{
    private static readonly DirectCandidate Reflexive = new(DirectCandidateKind.Reflexive, IPEndPoint.Parse("198.51.100.7:40000"));
    private static readonly DirectCandidate Local = new(DirectCandidateKind.Local, IPEndPoint.Parse("10.0.0.2:7000"));
    private static readonly DirectCandidate Mapped = new(DirectCandidateKind.Mapped, IPEndPoint.Parse("198.51.100.7:41000"));

    private static DirectPathPlanner Planner(FakeTimeProvider time, double random = 0.5)
        => new(time, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60), () => random);

    [Fact]
    public void Nothing_is_tried_before_the_peer_sends_candidates()
    {
        var planner = Planner(new FakeTimeProvider());

        Assert.Equal(DirectAttemptKind.None, planner.Next().Kind);
        Assert.Null(planner.DueIn());
    }

    [Fact]
    public void Dial_tries_mapped_then_reflexive_then_local_endpoints()
    {
        var time = new FakeTimeProvider();
        var planner = Planner(time);
        planner.OnPeerCandidates(punch: false, [Local, Reflexive, Mapped]);

        var attempt = planner.Next();

        Assert.Equal(DirectAttemptKind.Dial, attempt.Kind);
        Assert.Equal([Mapped.EndPoint, Reflexive.EndPoint, Local.EndPoint], attempt.Targets);
        Assert.Equal(time.GetTimestamp() + (3 * time.TimestampFrequency), attempt.Deadline);
    }

    [Fact]
    public void Both_ends_mapping_independently_punch_to_the_reflexive_endpoint()
    {
        var planner = Planner(new FakeTimeProvider());
        planner.SetLocalPunch(true);
        planner.OnPeerCandidates(punch: true, [Local, Reflexive]);

        var attempt = planner.Next();

        Assert.Equal(DirectAttemptKind.Punch, attempt.Kind);
        Assert.Equal([Reflexive.EndPoint], attempt.Targets);
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void One_end_mapping_per_destination_dials_instead_of_punching(bool local, bool peer)
    {
        var planner = Planner(new FakeTimeProvider());
        planner.SetLocalPunch(local);
        planner.OnPeerCandidates(peer, [Reflexive]);

        Assert.Equal(DirectAttemptKind.Dial, planner.Next().Kind);
    }

    [Fact]
    public void A_mapped_endpoint_is_dialled_even_when_both_could_punch()
    {
        var planner = Planner(new FakeTimeProvider());
        planner.SetLocalPunch(true);
        planner.OnPeerCandidates(punch: true, [Reflexive, Mapped]);

        Assert.Equal(DirectAttemptKind.Dial, planner.Next().Kind);
    }

    [Fact]
    public void One_attempt_at_a_time()
    {
        var planner = Planner(new FakeTimeProvider());
        planner.OnPeerCandidates(false, [Reflexive]);

        Assert.Equal(DirectAttemptKind.Dial, planner.Next().Kind);
        Assert.Equal(DirectAttemptKind.None, planner.Next().Kind);
        Assert.Null(planner.DueIn());
    }

    [Fact]
    public void Failures_back_off_exponentially_with_jitter_up_to_the_cap()
    {
        var time = new FakeTimeProvider();
        var planner = Planner(time, random: 0.5); // jitter factor 1.0
        planner.OnPeerCandidates(false, [Reflexive]);
        var waits = new List<TimeSpan>();
        for (var i = 0; i < 9; i++)
        {
            Assert.Equal(DirectAttemptKind.Dial, planner.Next().Kind);
            planner.OnAttemptFailed();
            var due = planner.DueIn()!.Value;
            waits.Add(due);
            time.Advance(due - TimeSpan.FromMilliseconds(1));
            Assert.Equal(DirectAttemptKind.None, planner.Next().Kind);
            time.Advance(TimeSpan.FromMilliseconds(1));
        }

        Assert.Equal([1, 2, 4, 8, 16, 32, 60, 60, 60], waits.Select(w => w.TotalSeconds));
        Assert.Equal(9, planner.Failures);
    }

    [Fact]
    public void Jitter_spreads_the_back_off()
    {
        var low = Planner(new FakeTimeProvider(), random: 0);
        var high = Planner(new FakeTimeProvider(), random: 0.999);
        foreach (var planner in new[] { low, high })
        {
            planner.OnPeerCandidates(false, [Reflexive]);
            planner.Next();
            planner.OnAttemptFailed();
        }

        Assert.Equal(TimeSpan.FromMilliseconds(500), low.DueIn());
        Assert.True(high.DueIn() > TimeSpan.FromMilliseconds(1490));
    }

    [Fact]
    public void New_candidates_start_over_at_once()
    {
        var planner = Planner(new FakeTimeProvider());
        planner.OnPeerCandidates(false, [Reflexive]);
        for (var i = 0; i < 4; i++)
        {
            planner.Next();
            planner.OnAttemptFailed();
        }

        planner.OnPeerCandidates(false, [Mapped]);

        Assert.Equal(0, planner.Failures);
        Assert.Equal(TimeSpan.Zero, planner.DueIn());
        Assert.Equal([Mapped.EndPoint], planner.Next().Targets);
    }

    [Fact]
    public void A_direct_path_stops_attempts_until_it_is_lost_then_retries_after_back_off()
    {
        var time = new FakeTimeProvider();
        var planner = Planner(time);
        planner.OnPeerCandidates(false, [Reflexive]);
        planner.Next();
        planner.OnDirectUp();

        time.Advance(TimeSpan.FromHours(1));
        Assert.True(planner.IsDirect);
        Assert.Equal(DirectAttemptKind.None, planner.Next().Kind);

        planner.OnDirectLost();
        Assert.False(planner.IsDirect);
        Assert.Equal(TimeSpan.FromSeconds(1), planner.DueIn());
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(DirectAttemptKind.Dial, planner.Next().Kind);
    }

    [Fact]
    public void Punch_gaps_are_random_within_20_to_120_ms()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(20), Planner(new FakeTimeProvider(), 0).NextPunchGap());
        Assert.Equal(TimeSpan.FromMilliseconds(70), Planner(new FakeTimeProvider(), 0.5).NextPunchGap());
        Assert.True(Planner(new FakeTimeProvider(), 0.999).NextPunchGap() < TimeSpan.FromMilliseconds(120));
    }

    [Fact]
    public void Learning_that_this_end_can_punch_starts_over_at_once_even_in_a_back_off()
    {
        var time = new FakeTimeProvider();
        var planner = Planner(time);
        planner.OnPeerCandidates(punch: true, [Reflexive]);
        Assert.Equal(DirectAttemptKind.Dial, planner.Next().Kind);
        planner.OnAttemptFailed();
        Assert.Equal(DirectAttemptKind.None, planner.Next().Kind);

        planner.SetLocalPunch(true);

        Assert.Equal(0, planner.Failures);
        Assert.Equal(DirectAttemptKind.Punch, planner.Next().Kind);
    }

    [Fact]
    public void Punch_gaps_are_uniform_from_20_to_120_ms()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(20), DirectPathPlanner.PunchGap(0));
        Assert.Equal(TimeSpan.FromMilliseconds(70), DirectPathPlanner.PunchGap(0.5));
        Assert.True(DirectPathPlanner.PunchGap(0.999999) < TimeSpan.FromMilliseconds(120));
    }
}
