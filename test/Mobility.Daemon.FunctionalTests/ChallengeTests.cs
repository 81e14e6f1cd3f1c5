using Mobility.Daemon.Challenges;
using Mobility.Protocol.Challenge;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>Functional tests of challenge(ip, guid) and verify_self between daemons on loopback addresses.</summary>
public sealed class ChallengeTests
{
    [Fact]
    public async Task Challenge_succeeds_for_the_real_holder()
    {
        var gns = new FakeGns();
        await using var holder = await DaemonInstance.StartAsync(gns.CreateClient());
        await using var challenger = await DaemonInstance.StartAsync(gns.CreateClient());

        var verdict = await challenger.Api.ChallengeAsync(new IPEndPoint(holder.Address, 7390), holder.Guid).WithTimeout();

        Assert.True(verdict.Verified, verdict.Detail);
        Assert.Equal("verified", verdict.Reason);
        Assert.False(verdict.Cached);
        // Once per request that reached it: a loaded machine may make the challenger send again before the answer is in.
        Assert.InRange(holder.Control.Answered, 1, challenger.Control.Sent);
    }

    [Fact]
    public async Task Second_challenge_is_answered_from_the_verdict_cache()
    {
        var gns = new FakeGns();
        await using var holder = await DaemonInstance.StartAsync(gns.CreateClient());
        await using var challenger = await DaemonInstance.StartAsync(gns.CreateClient());
        var target = new IPEndPoint(holder.Address, 7390);

        await challenger.Api.ChallengeAsync(target, holder.Guid).WithTimeout();
        var sent = challenger.Control.Sent;
        var second = await challenger.Api.ChallengeAsync(target, holder.Guid).WithTimeout();

        Assert.True(second.Verified);
        Assert.True(second.Cached);
        Assert.Equal(sent, challenger.Control.Sent);   // nothing sent for the second
        Assert.InRange(holder.Control.Answered, 1, sent);
    }

    [Fact]
    public async Task Challenge_fails_when_a_daemon_with_another_key_answers_at_the_address()
    {
        var gns = new FakeGns();
        using var victimKey = HostKey.Generate();
        await using var impostor = await DaemonInstance.StartAsync(gns.CreateClient());
        await using var challenger = await DaemonInstance.StartAsync(gns.CreateClient());

        var verdict = await challenger.Api.ChallengeAsync(new IPEndPoint(impostor.Address, 7390), victimKey.Guid).WithTimeout();

        Assert.False(verdict.Verified);
        Assert.Equal(ChallengeOutcome.Timeout, verdict.Outcome);
        Assert.Equal(0, impostor.Control.Answered);
    }

    [Fact]
    public async Task Challenge_fails_when_no_daemon_listens()
    {
        var gns = new FakeGns();
        using var key = HostKey.Generate();
        await using var challenger = await DaemonInstance.StartAsync(gns.CreateClient());

        var verdict = await challenger.Api.ChallengeAsync(new IPEndPoint(DaemonInstance.NewAddress(), 7390), key.Guid).WithTimeout();

        Assert.False(verdict.Verified);
        Assert.Equal(ChallengeOutcome.Timeout, verdict.Outcome);
    }

    [Fact]
    public async Task A_lying_responder_that_signs_with_its_own_key_is_refused()
    {
        var gns = new FakeGns();
        using var victim = HostKey.Generate();
        using var liarKey = HostKey.Generate();
        await using var challenger = await DaemonInstance.StartAsync(gns.CreateClient());
        var liarAddress = DaemonInstance.NewAddress();
        using var liar = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        liar.Bind(new IPEndPoint(liarAddress, 7390));
        var answering = Task.Run(async () =>
        {
            var buffer = new byte[1024];
            var received = await liar.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0));
            var request = ChallengeDatagram.ParseRequest(buffer.AsSpan(0, received.ReceivedBytes));
            var reply = ChallengeDatagram.WriteResponse(ChallengeResponse.Create(liarKey, request, new IPEndPoint(liarAddress, 7390)));
            await liar.SendToAsync(reply, received.RemoteEndPoint);
        });

        var verdict = await challenger.Api.ChallengeAsync(new IPEndPoint(liarAddress, 7390), victim.Guid).WithTimeout();
        await answering.WithTimeout();

        Assert.False(verdict.Verified);
        Assert.Equal(ChallengeOutcome.GuidMismatch, verdict.Outcome);
    }

    [Fact]
    public async Task A_relayed_answer_of_the_real_holder_is_refused()
    {
        // The impostor forwards the challenge to the real holder and relays the holder's signed answer:
        // the holder signed where the challenge reached it, which is not the impostor's address.
        var gns = new FakeGns();
        await using var holder = await DaemonInstance.StartAsync(gns.CreateClient());
        await using var challenger = await DaemonInstance.StartAsync(gns.CreateClient());
        var relayAddress = DaemonInstance.NewAddress();
        using var relay = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        relay.Bind(new IPEndPoint(relayAddress, 7390));
        using var stop = new CancellationTokenSource();
        var holderControl = new IPEndPoint(holder.Address, 7390);
        var relaying = Task.Run(async () =>
        {
            // Forward every request to the holder and every answer back, retransmissions included.
            var buffer = new byte[1024];
            EndPoint? challengerEndPoint = null;
            try
            {
                while (true)
                {
                    var received = await relay.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), stop.Token);
                    var target = received.RemoteEndPoint.Equals(holderControl) ? challengerEndPoint : holderControl;
                    challengerEndPoint = received.RemoteEndPoint.Equals(holderControl) ? challengerEndPoint : received.RemoteEndPoint;
                    if (target is not null)
                    {
                        await relay.SendToAsync(buffer.AsMemory(0, received.ReceivedBytes), target);
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        var verdict = await challenger.Api.ChallengeAsync(new IPEndPoint(relayAddress, 7390), holder.Guid).WithTimeout();
        await stop.CancelAsync();
        await relaying.WithTimeout();

        Assert.False(verdict.Verified);
        Assert.True(holder.Control.Answered >= 1, "the holder did answer the relayed challenge");
        Assert.Equal(ChallengeOutcome.AddressMismatch, verdict.Outcome);
        Assert.Contains("relayed", verdict.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_lost_request_is_retried()
    {
        var gns = new FakeGns();
        await using var holder = await DaemonInstance.StartAsync(gns.CreateClient());
        // A lossy path: a relay that drops the first request and forwards later ones both ways.
        // (The reached-at check is off here since the relay is not the holder's address.)
        await using var lossy = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--Challenge:RequireReachedAtMatch", "false"]);
        var relayAddress = DaemonInstance.NewAddress();
        using var relay = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        relay.Bind(new IPEndPoint(relayAddress, 7390));
        var relaying = Task.Run(async () =>
        {
            var buffer = new byte[1024];
            await relay.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0)); // dropped
            var second = await relay.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0));
            using var toHolder = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            await toHolder.SendToAsync(buffer.AsMemory(0, second.ReceivedBytes), new IPEndPoint(holder.Address, 7390));
            var answer = await toHolder.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0));
            await relay.SendToAsync(buffer.AsMemory(0, answer.ReceivedBytes), second.RemoteEndPoint);
        });

        var verdict = await lossy.Api.ChallengeAsync(new IPEndPoint(relayAddress, 7390), holder.Guid).WithTimeout();
        await relaying.WithTimeout();

        Assert.True(verdict.Verified, verdict.Detail);
        Assert.True(verdict.RoundTrip >= TimeSpan.FromMilliseconds(100), "the answer came after a retransmission");
    }

    [Fact]
    public async Task Concurrent_challenges_of_one_pair_share_one_exchange()
    {
        var gns = new FakeGns();
        await using var holder = await DaemonInstance.StartAsync(gns.CreateClient());
        // No retransmission on a slow machine: a re-sent request is answered again, and this test counts exchanges.
        await using var challenger = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--Challenge:AttemptTimeout", "00:00:10"]);
        var target = new IPEndPoint(holder.Address, 7390);

        var verdicts = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => challenger.Api.ChallengeAsync(target, holder.Guid))).WithTimeout();

        Assert.All(verdicts, v => Assert.True(v.Verified));
        Assert.Equal(1, holder.Control.Answered);
    }
}
