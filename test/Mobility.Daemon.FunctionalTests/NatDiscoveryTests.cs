using System.Net.Sockets;
using System.Text.Json;
using Mobility.Daemon.Nat;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>
/// NAT discovery against the real GNS on loopback, where there is no NAT: the probes, the verdict, and the API
/// (<c>POST /v1/netcheck</c>, the <c>nat</c> part of <c>GET /v1/status</c>). The NAT kinds are told apart in
/// network namespaces (test/Mobility.Netlab.FunctionalTests, NatDiscoveryTests).
/// </summary>
public sealed class NatDiscoveryTests
{
    private static readonly NatOptions Quick = new() { ProbeTimeout = TimeSpan.FromMilliseconds(300), Attempts = 3 };

    [Fact]
    public async Task Probes_of_a_gns_with_a_reflect_port_on_loopback_find_no_nat_and_no_filter()
    {
        await using var gns = await GnsServerInstance.StartAsync(reflect: "127.0.0.1:0");

        var probes = Assert.Single(await new NatProber(Quick, TimeProvider.System).ProbeAsync([gns.Udp], CancellationToken.None).WithTimeout());
        var report = NatClassifier.Classify(probes, DateTimeOffset.UtcNow);

        Assert.Equal(AddressFamily.InterNetwork, probes.Family);
        Assert.Equal(probes.Local, report.Reflexive); // the GNS saw the socket itself
        Assert.Equal(IPAddress.Loopback, report.Reflexive!.Address);
        Assert.NotNull(probes.OtherPort?.Observed);
        Assert.True(probes.FilterReceived);
        Assert.False(report.BehindNat);
        Assert.Equal(NatMapping.None, report.Mapping);
        Assert.Equal(NatFiltering.None, report.Filtering);
    }

    [Fact]
    public async Task A_second_gns_address_is_probed_from_the_same_socket()
    {
        await using var first = await GnsServerInstance.StartAsync();
        await using var second = await GnsServerInstance.StartAsync(address: "127.0.0.2");

        var probes = Assert.Single(await new NatProber(Quick, TimeProvider.System).ProbeAsync([first.Udp, second.Udp], CancellationToken.None).WithTimeout());

        Assert.Null(probes.OtherPort); // no reflect port: not tested, and no filtering test either
        Assert.Null(probes.FilterReceived);
        var other = Assert.Single(probes.OtherAddresses);
        Assert.Equal(second.Udp, other.Server);
        Assert.Equal(probes.First.Observed, other.Observed);
    }

    [Fact]
    public async Task A_silent_first_gns_is_passed_over_for_one_that_answers()
    {
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        await using var gns = await GnsServerInstance.StartAsync(reflect: "127.0.0.1:0");

        var options = new NatOptions { ProbeTimeout = TimeSpan.FromMilliseconds(100), Attempts = 1 };
        var probes = Assert.Single(await new NatProber(options, TimeProvider.System)
            .ProbeAsync([(IPEndPoint)silent.LocalEndPoint!, gns.Udp], CancellationToken.None).WithTimeout());
        var report = NatClassifier.Classify(probes, DateTimeOffset.UtcNow);

        Assert.Equal(gns.Udp, report.Server);
        Assert.Equal(probes.Local, report.Reflexive);
        Assert.Equal(NatFiltering.None, report.Filtering);
    }

    [Fact]
    public async Task A_gns_that_never_answers_gives_an_unknown_verdict_naming_it()
    {
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var server = (IPEndPoint)silent.LocalEndPoint!;

        var options = new NatOptions { ProbeTimeout = TimeSpan.FromMilliseconds(50), Attempts = 2 };
        var probes = Assert.Single(await new NatProber(options, TimeProvider.System).ProbeAsync([server], CancellationToken.None).WithTimeout());
        var report = NatClassifier.Classify(probes, DateTimeOffset.UtcNow);

        Assert.Null(report.Reflexive);
        Assert.Equal(NatMapping.Unknown, report.Mapping);
        Assert.Equal($"no answer from {server}", report.Detail);
        var buffer = new byte[64];
        for (var attempt = 0; attempt < options.Attempts; attempt++)
        {
            // Each attempt sent one padded reflect.
            Assert.Equal(Mobility.Protocol.Gns.GnsDatagram.ReflectPaddedSize, await silent.ReceiveAsync(buffer).WithTimeout());
        }
    }

    [Fact]
    public async Task Netcheck_over_the_api_answers_now_and_status_shows_the_result()
    {
        await using var gns = await GnsServerInstance.StartAsync(reflect: "127.0.0.1:0");
        await using var host = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--gns", gns.Udp.ToString(), "--Nat:ProbeTimeout", "00:00:00.300"]);
        using var client = DaemonInstance.UnixClient(host.SocketPath);

        using var response = await client.PostAsJsonAsync("v1/netcheck", new { }).WithTimeout();
        response.EnsureSuccessStatusCode();
        using var netcheck = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var family = Assert.Single(netcheck.RootElement.GetProperty("families").EnumerateArray());
        Assert.Equal("ipv4", family.GetProperty("family").GetString());
        Assert.Equal("no", family.GetProperty("nat").GetString());
        Assert.Equal("none", family.GetProperty("mapping").GetString());
        Assert.Equal("none", family.GetProperty("filtering").GetString());
        Assert.Equal(family.GetProperty("local").GetString(), family.GetProperty("reflexive").GetString());
        Assert.Equal(gns.Udp.ToString(), family.GetProperty("server").GetString());
        var checkedAt = netcheck.RootElement.GetProperty("checkedAt").GetString();

        using var status = JsonDocument.Parse(await client.GetStringAsync("v1/status").WithTimeout());
        var nat = status.RootElement.GetProperty("nat");
        Assert.Equal(checkedAt, nat.GetProperty("checkedAt").GetString());
        Assert.Equal("none", Assert.Single(nat.GetProperty("families").EnumerateArray()).GetProperty("mapping").GetString());
    }

    [Fact]
    public async Task An_address_change_checks_again_without_being_asked()
    {
        await using var gns = await GnsServerInstance.StartAsync(reflect: "127.0.0.1:0");
        await using var host = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--gns", gns.Udp.ToString(), "--Nat:ProbeTimeout", "00:00:00.300"]);
        using var client = DaemonInstance.UnixClient(host.SocketPath);
        using var first = JsonDocument.Parse(await (await client.PostAsJsonAsync("v1/netcheck", new { }).WithTimeout()).Content.ReadAsStringAsync());
        var checkedAt = first.RootElement.GetProperty("checkedAt").GetDateTimeOffset();

        (await client.PutAsJsonAsync("v1/addresses", new { addresses = new[] { DaemonInstance.NewAddress().ToString() } }).WithTimeout()).EnsureSuccessStatusCode();

        // Nat:RecheckInterval is 5 minutes: only the address event can have started this check.
        await TestTimeout.Eventually(async () =>
        {
            using var status = JsonDocument.Parse(await client.GetStringAsync("v1/status"));
            return status.RootElement.GetProperty("nat").TryGetProperty("checkedAt", out var at) && at.GetDateTimeOffset() > checkedAt;
        }, "a check after the address change");
    }

    [Fact]
    public async Task With_discovery_off_netcheck_sends_nothing_and_says_why()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var host = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--Nat:Enabled", "false"]);
        using var client = DaemonInstance.UnixClient(host.SocketPath);

        using var response = await client.PostAsJsonAsync("v1/netcheck", new { }).WithTimeout();
        using var netcheck = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.False(netcheck.RootElement.TryGetProperty("families", out var families) && families.GetArrayLength() > 0);
        Assert.Contains("Nat:Enabled", netcheck.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }
}
