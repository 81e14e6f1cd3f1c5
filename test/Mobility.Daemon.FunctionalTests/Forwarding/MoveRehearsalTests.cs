namespace Mobility.Daemon.FunctionalTests.Forwarding;

/// <summary>
/// mobilityd rehearses one move over loopback at start (Forwarding:Transport:RehearseMove), so that its first real
/// move does not run cold code (docs/evaluation.md, "Cold code on the first move"); the rehearsal leaves nothing
/// behind among the daemon's own connections.
/// </summary>
public sealed class MoveRehearsalTests
{
    [Fact]
    public async Task At_start_the_daemon_rehearses_a_move_that_resumes_and_leaves_no_connection()
    {
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartForwardingAsync(gns.CreateClient(), "--Forwarding:Transport:RehearseMove", "true");

        await TestTimeout.Eventually(() => daemon.Logs.Entries.Any(e => e.Id.Id is 9310 or 9311), "the rehearsal's outcome logged");
        var outcome = Assert.Single(daemon.Logs.Entries, e => e.Id.Id is 9310 or 9311);
        Assert.Equal(9310, outcome.Id.Id);
        Assert.Contains("Rehearsed a move over 127.0.0.1", outcome.Message, StringComparison.Ordinal);
        Assert.Contains("standby switch rehearsed: True", outcome.Message, StringComparison.Ordinal);
        Assert.Contains("call back rehearsed: True", outcome.Message, StringComparison.Ordinal);
        Assert.Empty(daemon.Forwarder.IncomingConnections);
        Assert.Empty(daemon.Forwarder.OutgoingConnections);
    }

    [Fact]
    public async Task Turned_off_the_daemon_rehearses_nothing()
    {
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartForwardingAsync(gns.CreateClient(), "--Forwarding:Transport:RehearseMove", "false");
        await TestTimeout.Eventually(() => gns.Get(daemon.Guid) is not null, "registered");

        Assert.DoesNotContain(daemon.Logs.Entries, e => e.Id.Id is 9310 or 9311);
    }
}
