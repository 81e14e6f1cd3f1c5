using Microsoft.Extensions.Logging;
using Mobility.Protocol.Challenge;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>Whatever a peer sends to the control port, the daemon drops it, logs at Debug only, and keeps answering.</summary>
public sealed class HostileControlTests
{
    [Fact]
    public async Task Hostile_datagrams_are_dropped_without_harm()
    {
        var gns = new FakeGns();
        await using var target = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--ControlLimits:RequestsPerSecond", "1000", "--ControlLimits:Burst", "1000"]);
        await using var challenger = await DaemonInstance.StartAsync(gns.CreateClient());
        var control = new IPEndPoint(target.Address, 7390);
        using var attacker = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        attacker.Bind(new IPEndPoint(DaemonInstance.NewAddress(), 0));
        var random = new Random(7);
        var sent = 0;

        async Task Send(byte[] datagram)
        {
            await attacker.SendToAsync(datagram, control);
            sent++;
        }

        // Random bytes, of every size up to far beyond the limit.
        foreach (var size in new[] { 0, 1, 3, 4, 50, 127, 128, 129, 511, 512, 513, 4000, 9000, 60000 })
        {
            var bytes = new byte[size];
            random.NextBytes(bytes);
            await Send(bytes);
        }

        using var someone = HostKey.Generate();
        var goodRequest = ChallengeDatagram.WriteRequest(ChallengeRequest.Create(someone.Guid, target.Guid));
        // Truncations of a real request (a short request would allow amplification: refused).
        for (var length = 0; length < goodRequest.Length; length += 7)
        {
            await Send(goodRequest[..length]);
        }

        // An oversized request: valid start, padded far beyond the limit.
        var oversized = new byte[ChallengeDatagram.MaxDatagramSize + 1];
        goodRequest.CopyTo(oversized, 0);
        await Send(oversized);

        // A request for another GUID, and a request with garbage in the padding.
        await Send(ChallengeDatagram.WriteRequest(ChallengeRequest.Create(someone.Guid, someone.Guid)));
        var dirty = (byte[])goodRequest.Clone();
        dirty[^1] = 0xFF;
        await Send(dirty);

        // Responses to challenges never sent, and a replay of a genuine response.
        var unsolicited = ChallengeDatagram.WriteResponse(ChallengeResponse.Create(someone,
            ChallengeRequest.Create(target.Guid, someone.Guid), new IPEndPoint(((IPEndPoint)attacker.LocalEndPoint!).Address, 1)));
        await Send(unsolicited);
        var buffer = new byte[1024];
        await attacker.SendToAsync(goodRequest, control);
        var genuine = await attacker.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0)).WithTimeout();
        await Send(buffer[..genuine.ReceivedBytes]); // a response sent back to the responder: nobody asked
        await Send(buffer[..genuine.ReceivedBytes]); // and again (replay)

        await TestTimeout.Eventually(() => target.Control.Dropped >= sent, $"all {sent} hostile datagrams were dropped");

        // No reply went out to any of them (only the one genuine request was answered)...
        Assert.Equal(1, target.Control.Answered);
        Assert.Equal(0, attacker.Available);
        // ...the daemon still answers real challenges...
        var verdict = await challenger.Api.ChallengeAsync(control, target.Guid).WithTimeout();
        Assert.True(verdict.Verified, verdict.Detail);
        // ...and nothing a peer caused was logged above Debug.
        Assert.DoesNotContain(target.Logs.AtLeast(LogLevel.Information), e => e.Category.Contains("Control", StringComparison.Ordinal) && e.Id.Id != 2001);
        Assert.Empty(target.Logs.AtLeast(LogLevel.Warning));
    }

    [Fact]
    public async Task Replayed_responses_are_not_accepted_by_a_challenger()
    {
        var gns = new FakeGns();
        await using var holder = await DaemonInstance.StartAsync(gns.CreateClient());
        await using var challenger = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--Challenge:PositiveCacheTime", "00:00:00"]);
        using var sniffer = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        sniffer.Bind(new IPEndPoint(DaemonInstance.NewAddress(), 0));
        // Obtain a genuine response of the holder (to a challenge of the sniffer).
        var request = ChallengeRequest.Create(challenger.Guid, holder.Guid);
        await sniffer.SendToAsync(ChallengeDatagram.WriteRequest(request), new IPEndPoint(holder.Address, 7390));
        var buffer = new byte[1024];
        var received = await sniffer.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0)).WithTimeout();
        var recorded = buffer[..received.ReceivedBytes];
        var droppedBefore = challenger.Control.Dropped;

        // Replaying it at the challenger does nothing: its nonce was never outstanding there.
        using var spoof = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        await spoof.SendToAsync(recorded, new IPEndPoint(challenger.Address, 7390));
        await TestTimeout.Eventually(() => challenger.Control.Dropped > droppedBefore, "the replay was dropped");

        var verdict = await challenger.Api.ChallengeAsync(new IPEndPoint(holder.Address, 7390), holder.Guid).WithTimeout();
        Assert.True(verdict.Verified);
        Assert.Empty(challenger.Logs.AtLeast(LogLevel.Warning));
    }

    [Fact]
    public async Task A_flooding_source_is_rate_limited_and_others_are_still_answered()
    {
        var gns = new FakeGns();
        await using var target = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--ControlLimits:RequestsPerSecond", "1", "--ControlLimits:Burst", "5"]);
        await using var challenger = await DaemonInstance.StartAsync(gns.CreateClient());
        using var flooder = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        flooder.Bind(new IPEndPoint(DaemonInstance.NewAddress(), 0));
        using var key = HostKey.Generate();
        var control = new IPEndPoint(target.Address, 7390);

        for (var i = 0; i < 50; i++)
        {
            await flooder.SendToAsync(ChallengeDatagram.WriteRequest(ChallengeRequest.Create(key.Guid, target.Guid)), control);
        }

        await TestTimeout.Eventually(() => target.Control.Answered + target.Control.Dropped >= 50, "the flood was processed");
        Assert.InRange(target.Control.Answered, 5, 7);

        var verdict = await challenger.Api.ChallengeAsync(control, target.Guid).WithTimeout();
        Assert.True(verdict.Verified, verdict.Detail);
    }
}
