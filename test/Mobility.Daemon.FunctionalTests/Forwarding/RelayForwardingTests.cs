using Mobility.Daemon.Service;

namespace Mobility.Daemon.FunctionalTests.Forwarding;

/// <summary>
/// mobilityd with home relays (<c>--relay</c>, the real mobility-relay executable): a host whose published
/// address nobody can reach (192.0.2.1, TEST-NET-1) is reached through its relay, and moves to its next relay
/// when the first dies.
/// </summary>
public sealed class RelayForwardingTests
{
    /// <summary>
    /// Daemon B: its record's Host locator is unreachable; its transport listens on loopback; it registers at <paramref name="relays"/>.
    /// Without <paramref name="reversal"/> it does not dial its clients (connection reversal off), so a stream stays on the relay.
    /// </summary>
    private static Task<DaemonInstance> StartUnreachableAsync(FakeGns gns, bool reversal, params RelayProcess[] relays)
    {
        var local = DaemonInstance.NewAddress();
        return DaemonInstance.StartAsync(gns.CreateClient(), IPAddress.Parse("192.0.2.1"), extraArgs:
        [
            "--transport", $"{local}:0", "--control", $"{local}:0", "--socks", "127.0.0.1:0",
            "--relay", string.Join(',', relays.Select(r => r.Tcp.ToString())),
            "--Forwarding:Transport:ConnectionReversal", reversal ? "true" : "false",
        ]);
    }

    private static bool PublishesRelay(FakeGns gns, HostGuid guid, IPEndPoint relay)
        => gns.Get(guid)?.Locators.Any(l => l.Kind == LocatorKind.Relay && l.Address.Equals(relay.Address) && l.Port == relay.Port) == true;

    [Fact]
    public async Task A_host_reachable_only_through_its_relay_publishes_it_and_is_reached_through_it()
    {
        await using var relay = await RelayProcess.StartAsync();
        var gns = new FakeGns();
        await using var echo = new EchoServer();
        // Reversal off: A's listener is reachable on loopback, and B would dial it (the next test).
        await using var b = await StartUnreachableAsync(gns, reversal: false, relay);
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await TestTimeout.Eventually(() => PublishesRelay(gns, b.Guid, relay.Tcp), "B publishes its relay");
        Assert.Equal(relay.Tcp, b.Forwarder.CurrentRelay);
        b.Api.Expose(echo.Port);

        using var client = await SocksTestClient.ConnectAsync(a.Socks, $"{b.Guid}.guid", echo.Port, expect: Socks5Reply.Succeeded);
        await SocksTestClient.AssertEchoesAsync(client, 300_000);

        Assert.True(await relay.MetricAsync("relay_splices_total") >= 1);
        Assert.True(await relay.MetricAsync("relay_bytes_total") >= 600_000);
    }

    [Fact]
    public async Task A_host_reachable_only_through_its_relay_dials_its_reachable_client_and_the_connection_goes_direct()
    {
        // Connection reversal through the daemons: B's incoming connection arrives through the relay; A publishes its
        // transport listener (on loopback, reachable), so B dials it and A moves the connection to that flow.
        await using var relay = await RelayProcess.StartAsync();
        var gns = new FakeGns();
        await using var echo = new EchoServer();
        await using var b = await StartUnreachableAsync(gns, reversal: true, relay);
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await TestTimeout.Eventually(() => PublishesRelay(gns, b.Guid, relay.Tcp), "B publishes its relay");
        b.Api.Expose(echo.Port);

        // Bytes through the relay first (the stream stays open: the echo's check at the end half-closes it).
        using var client = await SocksTestClient.ConnectAsync(a.Socks, $"{b.Guid}.guid", echo.Port, expect: Socks5Reply.Succeeded);
        var first = RandomNumberGenerator.GetBytes(10_000);
        await client.SendAsync(first).WithTimeout();
        Assert.Equal(first, await SocksTestClient.ReadExactlyAsync(client, first.Length));
        await TestTimeout.Eventually(() => a.Forwarder.OutgoingConnections.Any(c => c.PathKind == "direct" && c.Statistics.DirectUpgrades >= 1), "A's connection goes direct");
        var outgoing = a.Forwarder.OutgoingConnections.Single(c => c.PathKind == "direct");
        Assert.StartsWith("relay ", outgoing.StandbyRelay);
        // Dialled from an ephemeral port, not B's transport port (a reversal from there could hold a punch's 4-tuple).
        Assert.NotEqual(b.Forwarder.LocalEndPoint.Port, outgoing.RemoteEndPoint!.Port);
        Assert.True(await relay.MetricAsync("relay_splices_total") >= 1);

        // The stream goes on over the direct path, every byte once.
        await SocksTestClient.AssertEchoesAsync(client, 300_000);
    }

    [Fact]
    public async Task When_its_relay_dies_the_host_registers_at_the_next_and_is_reached_there()
    {
        await using var first = await RelayProcess.StartAsync();
        await using var second = await RelayProcess.StartAsync();
        var gns = new FakeGns();
        await using var echo = new EchoServer();
        await using var b = await StartUnreachableAsync(gns, reversal: false, first, second);
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await TestTimeout.Eventually(() => PublishesRelay(gns, b.Guid, first.Tcp), "B publishes its first relay");
        b.Api.Expose(echo.Port);

        first.Process.Signal(9);
        await first.Process.WaitForExitAsync();
        await TestTimeout.Eventually(() => PublishesRelay(gns, b.Guid, second.Tcp), "B moves to its second relay");

        using var client = await SocksTestClient.ConnectAsync(a.Socks, $"{b.Guid}.guid", echo.Port, expect: Socks5Reply.Succeeded);
        await SocksTestClient.AssertEchoesAsync(client, 100_000);
        Assert.True(await second.MetricAsync("relay_splices_total") >= 1);
    }
}
