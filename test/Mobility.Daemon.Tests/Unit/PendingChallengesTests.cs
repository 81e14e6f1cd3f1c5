using Mobility.Daemon.Challenges;
using Mobility.Protocol.Challenge;

namespace Mobility.Daemon.Tests.Unit;

public sealed class PendingChallengesTests
{
    private static readonly IPEndPoint Target = new(IPAddress.Parse("192.0.2.10"), 7390);

    private static PendingChallenges Create(int max = 16) => new(Options.Create(new MobilitydOptions { Challenge = { MaxOutstanding = max } }));

    [Fact]
    public void A_good_answer_completes_the_challenge_and_a_replay_of_it_is_not_outstanding()
    {
        using var me = HostKey.Generate();
        using var holder = HostKey.Generate();
        var pending = Create();
        var request = ChallengeRequest.Create(me.Guid, holder.Guid);
        using var challenge = pending.Register(request, Target)!;
        var response = ChallengeResponse.Create(holder, request, Target);

        Assert.Equal(ResponseDisposition.Accepted, pending.Complete(response, Target, out _));
        Assert.True(challenge.Response.IsCompletedSuccessfully);
        Assert.Equal(ResponseDisposition.NotOutstanding, pending.Complete(response, Target, out _));
        Assert.Equal(0, pending.Count);
    }

    [Theory]
    [InlineData("source")]
    [InlineData("guid")]
    [InlineData("reached-at")]
    [InlineData("challenger")]
    public void A_bad_answer_is_rejected_and_the_challenge_keeps_waiting(string flaw)
    {
        using var me = HostKey.Generate();
        using var holder = HostKey.Generate();
        using var other = HostKey.Generate();
        var pending = Create();
        var request = ChallengeRequest.Create(me.Guid, holder.Guid);
        using var challenge = pending.Register(request, Target)!;
        var elsewhere = new IPEndPoint(IPAddress.Parse("192.0.2.99"), 7390);
        var (response, source, outcome) = flaw switch
        {
            "source" => (ChallengeResponse.Create(holder, request, Target), elsewhere, ChallengeOutcome.AddressMismatch),
            "guid" => (ChallengeResponse.Create(other, request, Target), Target, ChallengeOutcome.GuidMismatch),
            "reached-at" => (ChallengeResponse.Create(holder, request, elsewhere), Target, ChallengeOutcome.AddressMismatch),
            _ => (ChallengeResponse.Create(holder, request with { Challenger = other.Guid }, Target), Target, ChallengeOutcome.BadSignature),
        };

        Assert.Equal(ResponseDisposition.Rejected, pending.Complete(response, source, out var why));
        Assert.False(challenge.Response.IsCompleted);
        Assert.Equal(outcome, challenge.LastRejection!.Value.Outcome);
        Assert.False(string.IsNullOrEmpty(why));
        Assert.Equal(1, pending.Count);
    }

    [Fact]
    public void The_table_is_bounded_and_disposal_frees_a_slot()
    {
        var pending = Create(max: 2);
        var a = pending.Register(ChallengeRequest.Create(HostGuid.Empty, HostGuid.Empty), Target)!;
        using var b = pending.Register(ChallengeRequest.Create(HostGuid.Empty, HostGuid.Empty), Target)!;

        Assert.Null(pending.Register(ChallengeRequest.Create(HostGuid.Empty, HostGuid.Empty), Target));
        a.Dispose();
        using var c = pending.Register(ChallengeRequest.Create(HostGuid.Empty, HostGuid.Empty), Target);
        Assert.NotNull(c);
    }
}
