using Mobility.Daemon.Service;

namespace Mobility.Daemon.FunctionalTests.Forwarding;

/// <summary>
/// mobilityd with home relays (<c>--relay</c>, the real mobility-relay executable): a host whose published
/// address nobody can reach (192.0.2.1, TEST-NET-1) is reached through its relay, and moves to its next relay
/// when the first dies.
/// </summary>
public sealed class RelayForwardingTests
{
    /// <summary>Daemon B: its record's Host locator is unreachable; its transport listens on loopback; it registers at <paramref name="relays"/>.</summary>
    private static Task<DaemonInstance> StartUnreachableAsync(FakeGns gns, params RelayProcess[] relays)
    {
        var local = DaemonInstance.NewAddress();
        return DaemonInstance.StartAsync(gns.CreateClient(), IPAddress.Parse("192.0.2.1"), extraArgs:
        [
            "--transport", $"{local}:0", "--control", $"{local}:0", "--socks", "127.0.0.1:0",
            "--relay", string.Join(',', relays.Select(r => r.Tcp.ToString())),
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
        await using var b = await StartUnreachableAsync(gns, relay);
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
    public async Task When_its_relay_dies_the_host_registers_at_the_next_and_is_reached_there()
    {
        await using var first = await RelayProcess.StartAsync();
        await using var second = await RelayProcess.StartAsync();
        var gns = new FakeGns();
        await using var echo = new EchoServer();
        await using var b = await StartUnreachableAsync(gns, first, second);
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
