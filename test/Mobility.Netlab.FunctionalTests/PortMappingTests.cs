using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Mobility.Daemon.Client;
using Mobility.Net.Socks5;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Systems;
using Mobility.Netlab.Systems.Mobility;
using Mobility.Netlab.Topology;
using GnsProcess = Mobility.Netlab.Systems.Mobility.GnsProcess;
using Xunit.Abstractions;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// Port mapping through the home NAT with real processes: a NAT router of the kit running miniupnpd (NAT-PMP and PCP, or
/// UPnP IGD only; nftables backend) in front of a server's mobilityd with no port forward, a public client's mobilityd, a real gns.
/// Root only; skipped without miniupnpd. docs/nat.md ("Port mapping") reports these runs.
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class PortMappingTests(ITestOutputHelper output)
{
    private const int Port = 5001;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [PortMappingFact]
    public Task A_server_behind_a_nat_that_maps_ports_is_reached_directly_survives_a_client_move_and_its_mappings_are_deleted_on_stop() =>
        ReachedDirectlyAsync(upnpOnly: false);

    /// <summary>miniupnpd with NAT-PMP and PCP off: the daemon finds the IGD by SSDP and maps both ports over SOAP.</summary>
    [PortMappingFact]
    public Task A_server_behind_a_nat_that_maps_ports_only_over_upnp_is_reached_directly_survives_a_client_move_and_its_mappings_are_deleted_on_stop() =>
        ReachedDirectlyAsync(upnpOnly: true);

    private async Task ReachedDirectlyAsync(bool upnpOnly)
    {
        var topology = await NatTopology.CreateAsync(["gns", "client"],
            [new NatSiteOptions { Role = "server", PortMapping = true, UpnpOnly = upnpOnly }, new NatSiteOptions { Role = "plain" }]).WithTimeout(NetlabTimeouts.Step);
        await using var _ = topology;
        var lab = topology.Lab;
        var root = lab.CreateTemporaryDirectory("portmap");
        var gns = await GnsProcess.StartAsync(lab, topology.Public("gns"), Path.Combine(root, "gns"), CancellationToken.None).WithTimeout(DaemonProcess.StartTimeout);
        var site = topology.Site("server");
        var daemons = await Task.WhenAll(
                DaemonProcess.StartAsync(lab, site.Host, Path.Combine(root, "server"), gns, socks: false, CancellationToken.None),
                DaemonProcess.StartAsync(lab, topology.Site("plain").Host, Path.Combine(root, "plain"), gns, socks: false, CancellationToken.None),
                DaemonProcess.StartAsync(lab, topology.Public("client"), Path.Combine(root, "client"), gns, socks: true, CancellationToken.None))
            .WithTimeout(DaemonProcess.StartTimeout * 2);
        var (server, plain, client) = (daemons[0], daemons[1], daemons[2]);

        // The gateway granted both ports over PCP (UPnP when that is all it speaks) and installed a DNAT rule for each.
        using var serverApi = new DaemonClient(server.ApiSocket, Patience);
        var mappings = await EventuallyAsync(serverApi, m => Mappings(m).Count == 2, "two mappings at the gateway");
        output.WriteLine(mappings.ToString());
        var tcp = Assert.Single(Mappings(mappings), m => Text(m, "transport") == "tcp");
        var udp = Assert.Single(Mappings(mappings), m => Text(m, "transport") == "udp");
        Assert.Equal(upnpOnly ? "upnp" : "pcp", tcp.GetProperty("protocol").GetString());
        Assert.Equal(upnpOnly ? "upnp" : "pcp", udp.GetProperty("protocol").GetString());
        Assert.Equal(7391, tcp.GetProperty("internalPort").GetInt32());
        Assert.Equal(7390, udp.GetProperty("internalPort").GetInt32());
        var external = IPEndPoint.Parse(tcp.GetProperty("external").GetString()!);
        Assert.Equal(site.PublicAddress, external.Address);
        Assert.True(tcp.GetProperty("lifetimeSeconds").GetInt64() > 0);
        var rules = await site.PortMappingRulesAsync().WithTimeout(NetlabTimeouts.Step);
        output.WriteLine(rules);
        Assert.Contains($"dnat ip to {site.Host.PrimaryAddress}:7391", rules, StringComparison.Ordinal);
        Assert.Contains($"dnat ip to {site.Host.PrimaryAddress}:7390", rules, StringComparison.Ordinal);

        // The NAT in front of "plain" runs no gateway: nothing is mapped, and the status says why.
        using (var plainApi = new DaemonClient(plain.ApiSocket, Patience))
        {
            var none = await EventuallyAsync(plainApi, m => Text(m, "error").Contains("no PCP, NAT-PMP or UPnP answer", StringComparison.Ordinal),
                "plain's failed mapping");
            Assert.Empty(Mappings(none));
        }

        // The client sees the mapped endpoint in the server's record and connects straight to it (no relay is configured).
        using var clientApi = new DaemonClient(client.ApiSocket, Patience);
        await TestTimeout.Eventually(async () => (await clientApi.GetIpAddressesAsync(server.Guid, CancellationToken.None)).Contains(site.PublicAddress.ToString()),
            "the server's record with its mapped address", Patience);
        using var listener = LabSockets.Create(site.Host.Namespace, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, Port));
        listener.Listen(4);
        await MobilitySystem.ExposeAsync(server, Port, CancellationToken.None).WithTimeout(Patience);
        var clientHost = topology.Public("client");
        using var socket = await Socks5Client.OpenAsync(client.Socks!, server.Guid + ".guid", Port, CancellationToken.None,
            _ => LabSockets.Create(clientHost.Namespace, ProtocolType.Tcp)).WithTimeout(Patience);
        using var accepted = await listener.AcceptAsync().WithTimeout(Patience);
        await using var clientStream = new NetworkStream(socket, ownsSocket: false);
        await using var serverStream = new NetworkStream(accepted, ownsSocket: false);
        await ExchangeAsync(clientStream, serverStream, 1);
        var connection = Assert.Single((await clientApi.GetStatusAsync(CancellationToken.None).WithTimeout(Patience)).GetProperty("connections").EnumerateArray(),
            c => c.GetProperty("peer").GetString() == server.Guid);
        Assert.Equal(external, IPEndPoint.Parse(connection.GetProperty("remote").GetString()!));

        // The client moves (a new address, the old one deleted): the connection resumes to the mapped endpoint. IPv4
        // deletes the secondary addresses of a prefix with its primary one unless told to promote them.
        var promote = await Ip.ExecAsync(clientHost.Namespace, "sysctl", ["-qw", "net.ipv4.conf.e1.promote_secondaries=1"]).WithTimeout(NetlabTimeouts.Step);
        Assert.True(promote.Succeeded, promote.StandardError);
        var (moved, _) = await clientHost.RotateAsync(clientHost.Interfaces[0], IPAddress.Parse("198.18.2.3")).WithTimeout(NetlabTimeouts.Step);
        await clientHost.RetireAsync(clientHost.Interfaces[0]).WithTimeout(NetlabTimeouts.Step);
        try
        {
            await ExchangeAsync(clientStream, serverStream, 2);
        }
        catch (TimeoutException)
        {
            output.WriteLine("client log:\n" + client.Process.StandardError + "\nserver log:\n" + server.Process.StandardError);
            throw;
        }

        await TestTimeout.Eventually(async () => (await clientApi.GetStatusAsync(CancellationToken.None)).GetProperty("connections").EnumerateArray()
                .Any(c => c.GetProperty("peer").GetString() == server.Guid && c.GetProperty("local").GetString()!.StartsWith(moved.Address + ":", StringComparison.Ordinal)),
            "the connection on the client's new address", Patience);

        // Without a gateway that maps, a server behind a NAT stays unreachable (as before port mapping).
        await MobilitySystem.ExposeAsync(plain, Port, CancellationToken.None).WithTimeout(Patience);
        await Assert.ThrowsAsync<Socks5ReplyException>(() => Socks5Client.OpenAsync(client.Socks!, plain.Guid + ".guid", Port, CancellationToken.None,
            _ => LabSockets.Create(clientHost.Namespace, ProtocolType.Tcp)).WithTimeout(Patience * 2));

        // A daemon that stops deletes its mappings: the gateway removes the DNAT rules.
        await server.Process.DisposeAsync();
        await TestTimeout.Eventually(async () => !(await site.PortMappingRulesAsync()).Contains("dnat", StringComparison.Ordinal), "the mappings deleted", Patience);
    }

    private static async Task<JsonElement> EventuallyAsync(DaemonClient api, Func<JsonElement, bool> done, string what)
    {
        JsonElement mapping = default;
        await TestTimeout.Eventually(async () =>
        {
            var status = await api.GetStatusAsync(CancellationToken.None);
            mapping = status.GetProperty("nat").TryGetProperty("portMapping", out var m) ? m : default;
            return mapping.ValueKind == JsonValueKind.Object && done(mapping);
        }, what, Patience);
        return mapping;
    }

    // The JSON of the API leaves out empty fields.
    private static List<JsonElement> Mappings(JsonElement portMapping) =>
        portMapping.TryGetProperty("mappings", out var list) ? [.. list.EnumerateArray()] : [];

    private static string Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? value.GetString() ?? "" : "";

    /// <summary>A marked block each way, read back exactly.</summary>
    private static async Task ExchangeAsync(Stream client, Stream server, byte mark)
    {
        var block = Enumerable.Range(0, 64 * 1024).Select(i => (byte)(i * 31 + mark)).ToArray();
        await client.WriteAsync(block).AsTask().WithTimeout(Patience);
        var read = new byte[block.Length];
        await server.ReadExactlyAsync(read).AsTask().WithTimeout(Patience);
        Assert.Equal(block, read);
        await server.WriteAsync(block).AsTask().WithTimeout(Patience);
        await client.ReadExactlyAsync(read).AsTask().WithTimeout(Patience);
        Assert.Equal(block, read);
    }
}
