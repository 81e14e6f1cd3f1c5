using System.Net;
using System.Net.Sockets;
using Mobility.Daemon.FunctionalTests.Infrastructure;
using Mobility.Daemon.GnsServers;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>The probe of --gns candidates against the real GNS server, and a daemon given several.</summary>
public sealed class GnsServerSelectionTests
{
    [Fact]
    public async Task A_real_gns_answers_the_probe_and_a_silent_port_does_not()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        using var silent = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var selector = new GnsServerSelector { Stagger = TimeSpan.FromMilliseconds(50) };

        var chosen = await selector.SelectAsync([(IPEndPoint)silent.Client.LocalEndPoint!, gns.Udp], CancellationToken.None).WithTimeout();

        Assert.Equal(gns.Udp, chosen);
    }

    [Fact]
    public async Task A_daemon_given_a_silent_endpoint_first_publishes_through_the_one_that_answers()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        using var silent = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var dir = DaemonInstance.NewFolder();

        await using var daemon = await MobilitydProcess.StartReadyAsync(
            ["--state-dir", dir, "--gns", $"{silent.Client.LocalEndPoint},{gns.Udp}", "--address", DaemonInstance.NewAddress().ToString(),
             "--http", "off", "--grpc", "off", "--socks", "off", "--control", "127.0.0.1:0", "--transport", "127.0.0.1:0", "--socket", Path.Combine(dir, "d.sock")]).WithTimeout();

        Assert.NotNull(await DualStackTests.PublishedAsync(gns, Mobility.Protocol.Identity.HostGuid.Parse(daemon.Field("guid"))));
    }
}
