using System.Net;
using System.Net.Sockets;
using Mobility.Daemon.FunctionalTests.Infrastructure;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>
/// The record publishes only locators of families the transport listener serves, and [::] serves both
/// (a real mobilityd, fixed addresses of both families, the real GNS in-process).
/// </summary>
public sealed class DualStackTests
{
    private static readonly IPAddress V6 = IPAddress.Parse("2001:db8::7");

    [Theory]
    [InlineData("0.0.0.0:0", false)]
    [InlineData("[::]:0", true)]
    public async Task The_record_carries_only_the_families_the_transport_serves(string transport, bool v6Published)
    {
        await using var gns = await GnsServerInstance.StartAsync();
        var v4 = DaemonInstance.NewAddress();
        var dir = DaemonInstance.NewFolder();

        await using var daemon = await MobilitydProcess.StartReadyAsync(
            ["--state-dir", dir, "--gns", gns.Udp.ToString(), "--address", v4.ToString(), "--address", V6.ToString(),
             "--http", "off", "--grpc", "off", "--socks", "off", "--control", "127.0.0.1:0", "--transport", transport, "--socket", Path.Combine(dir, "d.sock")]).WithTimeout();
        var record = await PublishedAsync(gns, HostGuid.Parse(daemon.Field("guid")));

        var addresses = record.Locators.Where(l => l.Kind == LocatorKind.Host).Select(l => l.Address).ToArray();
        Assert.Contains(v4, addresses);
        Assert.Equal(v6Published, addresses.Contains(V6));
    }

    [Fact]
    public async Task A_transport_on_the_IPv6_wildcard_takes_IPv4_connections()
    {
        Assert.True(Socket.OSSupportsIPv6, "this test needs IPv6 on the host");
        await using var gns = await GnsServerInstance.StartAsync();
        var dir = DaemonInstance.NewFolder();

        await using var daemon = await MobilitydProcess.StartReadyAsync(
            ["--state-dir", dir, "--gns", gns.Udp.ToString(), "--address", DaemonInstance.NewAddress().ToString(),
             "--http", "off", "--grpc", "off", "--socks", "off", "--control", "127.0.0.1:0", "--transport", "[::]:0", "--socket", Path.Combine(dir, "d.sock")]).WithTimeout();
        var transport = daemon.EndPoint("transport");

        Assert.Equal(IPAddress.IPv6Any, transport.Address);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, transport.Port)).WithTimeout();
    }

    /// <summary>The daemon's record once the GNS has it.</summary>
    internal static async Task<GnsRecord> PublishedAsync(GnsServerInstance gns, HostGuid guid)
    {
        await using var client = new GnsClient(new GnsClientOptions { Server = gns.Udp, CacheEnabled = false });
        for (var i = 0; i < 200; i++)
        {
            if (await client.LookupAsync(guid).WithTimeout() is { } record)
            {
                return record;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"no record of {guid} in the GNS");
    }
}
