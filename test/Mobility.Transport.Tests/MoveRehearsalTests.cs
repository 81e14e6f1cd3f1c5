namespace Mobility.Transport.Tests;

/// <summary>
/// <see cref="MoveRehearsal"/> over real loopback sockets: the move it rehearses runs the steps of a real one (address
/// event, dead path, connect, Resume, answer) and resumes with every byte; its listener admits only the host's own
/// key and is gone when the rehearsal ends.
/// </summary>
public sealed class MoveRehearsalTests
{
    [Fact]
    public async Task A_rehearsal_runs_a_real_moves_steps_and_leaves_nothing_listening()
    {
        var key = HostKey.Generate();
        var listenerOptions = new MobileListenerOptions();
        var result = await MoveRehearsal.RunAsync(key, IPAddress.Loopback, listenerOptions, new MobileConnectionOptions(), TimeSpan.FromSeconds(20)).WithTimeout();

        var move = Assert.IsType<MoveRecord>(result.Move);
        var kinds = move.Events.Select(e => e.Kind).ToList();
        Assert.Equal(MoveEventKind.AddressEvent, kinds[0]);
        Assert.True(kinds.IndexOf(MoveEventKind.PathDead) > 0, string.Join(", ", kinds));
        Assert.True(kinds.IndexOf(MoveEventKind.ConnectStarted) > kinds.IndexOf(MoveEventKind.PathDead), string.Join(", ", kinds));
        Assert.True(kinds.IndexOf(MoveEventKind.ResumeSent) > kinds.IndexOf(MoveEventKind.ConnectStarted), string.Join(", ", kinds));
        Assert.True(kinds.IndexOf(MoveEventKind.ResumeAnswered) > kinds.IndexOf(MoveEventKind.ResumeSent), string.Join(", ", kinds));
        Assert.NotNull(move.ResumedAfter);
        Assert.True(result.StandbySwitched, "the rehearsal switches to a standby path from a second loopback address");
        Assert.True(result.CalledBack, "the rehearsal moves its server to a second loopback address and resumes on the server's call back");

        // Only the host's own GUID is admitted by the rehearsal's listener.
        var admit = Assert.IsType<Func<HostGuid, bool>>(listenerOptions.AuthorizeClient);
        Assert.True(admit(key.Guid));
        Assert.False(admit(HostKey.Generate().Guid));

        // Its listener is closed: a connect to where it listened is refused.
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var error = await Assert.ThrowsAsync<SocketException>(async () => await probe.ConnectAsync(result.ListenedOn).WithTimeout());
        Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);
    }
}
