using System.Globalization;
using System.Net;
using System.Text.Json;
using Mobility.Daemon.Client;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Systems.Mobility;
using Mobility.Netlab.Topology;
using GnsProcess = Mobility.Netlab.Systems.Mobility.GnsProcess;
using Xunit.Abstractions;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// NAT discovery with real processes behind the NAT kit's nftables NATs: a real <c>gns serve --udp-reflect</c> on a public
/// host, a real mobilityd per site, asked through its API (<c>POST /v1/netcheck</c>, <c>GET /v1/status</c>) and through
/// <c>mob netcheck</c>. Root only. The table in docs/nat.md ("NAT discovery") comes from these runs.
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class NatDiscoveryTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private sealed record Site(string Role, LabHost Host, IPAddress Public, DaemonProcess Daemon);

    private static async Task<(NatTopology Topology, GnsProcess Gns, string Root)> StartGnsAsync(params NatSiteOptions[] sites)
    {
        var topology = await NatTopology.CreateAsync(["gns", "pub"], sites).WithTimeout(NetlabTimeouts.Step);
        try
        {
            var root = topology.Lab.CreateTemporaryDirectory("natcheck");
            var gns = await GnsProcess.StartAsync(topology.Lab, topology.Public("gns"), Path.Combine(root, "gns"), CancellationToken.None)
                .WithTimeout(DaemonProcess.StartTimeout);
            return (topology, gns, root);
        }
        catch
        {
            await topology.DisposeAsync();
            throw;
        }
    }

    private static async Task<JsonElement> NetcheckAsync(DaemonProcess daemon)
    {
        using var client = new DaemonClient(daemon.ApiSocket, Patience);
        var reply = await client.NetcheckAsync(CancellationToken.None).WithTimeout(Patience);
        return Assert.Single(reply.GetProperty("families").EnumerateArray(), f => f.GetProperty("family").GetString() == "ipv4");
    }

    private void Report(string role, JsonElement family)
        => output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"MEASURED nat {role}: reflexive={family.GetProperty("reflexive").GetString()} local={family.GetProperty("local").GetString()} " +
            $"nat={family.GetProperty("nat").GetString()} mapping={family.GetProperty("mapping").GetString()} filtering={family.GetProperty("filtering").GetString()}"));

    [NatKitFact]
    public async Task Netcheck_tells_no_nat_masquerade_random_fully_and_double_nat_apart()
    {
        var (topology, gns, root) = await StartGnsAsync(
            new NatSiteOptions { Role = "home" },
            new NatSiteOptions { Role = "hotel", Kind = NatKind.Symmetric },
            new NatSiteOptions { Role = "phone", Kind = NatKind.Double });
        await using var _ = topology;
        var hosts = new[] { ("pub", topology.Public("pub"), topology.Public("pub").PrimaryAddress) }
            .Concat(new[] { "home", "hotel", "phone" }.Select(r => (r, topology.Site(r).Host, topology.Site(r).PublicAddress)))
            .ToArray();
        var daemons = await Task.WhenAll(hosts.Select(h => DaemonProcess.StartAsync(topology.Lab, h.Item2, Path.Combine(root, h.Item1), gns, socks: false, CancellationToken.None)))
            .WithTimeout(DaemonProcess.StartTimeout * 2);
        var sites = hosts.Zip(daemons, (h, d) => new Site(h.Item1, h.Item2, h.Item3, d)).ToDictionary(s => s.Role);

        // The check at start needs no request: the status shows it.
        using (var client = new DaemonClient(sites["home"].Daemon.ApiSocket, Patience))
        {
            await TestTimeout.Eventually(async () =>
            {
                var status = await client.GetStatusAsync(CancellationToken.None);
                return status.TryGetProperty("nat", out var nat) && nat.TryGetProperty("families", out var families) && families.GetArrayLength() > 0;
            }, "the check at start", Patience);
        }

        var results = new Dictionary<string, JsonElement>();
        foreach (var site in sites.Values)
        {
            results[site.Role] = await NetcheckAsync(site.Daemon);
            Report(site.Role, results[site.Role]);
            Assert.Equal(site.Public.ToString(), IPEndPoint.Parse(results[site.Role].GetProperty("reflexive").GetString()!).Address.ToString());
        }

        Assert.Equal(("no", "none", "none"), Verdict(results["pub"]));
        Assert.Equal(("yes", "endpoint-independent", "address-and-port-dependent"), Verdict(results["home"]));
        Assert.Equal(("yes", "address-and-port-dependent", "address-and-port-dependent"), Verdict(results["hotel"]));
        Assert.Equal(("yes", "endpoint-independent", "address-and-port-dependent"), Verdict(results["phone"]));

        // What a user types: mob netcheck (over the daemon's socket, from outside the namespace).
        var (mob, prefix) = MobilityExecutables.Mob();
        var text = await CommandRunner.RunAsync(mob, [.. prefix, "netcheck", "--socket", sites["hotel"].Daemon.ApiSocket], Patience, standardInput: "")
            .WithTimeout(Patience);
        Assert.True(text.Succeeded, text.StandardError);
        Assert.Matches(@"ipv4 mapping:?\s+address-and-port-dependent", text.StandardOutput);
        Assert.Matches(@"ipv4 nat:?\s+yes", text.StandardOutput);
        output.WriteLine(text.StandardOutput);
    }

    [NatKitFact]
    public async Task Netcheck_after_the_nat_forgets_its_mappings_checks_again_and_sees_the_new_port()
    {
        var (topology, gns, root) = await StartGnsAsync(new NatSiteOptions { Role = "home" });
        await using var _ = topology;
        var site = topology.Site("home");
        var daemon = await DaemonProcess.StartAsync(topology.Lab, site.Host, Path.Combine(root, "home"), gns, socks: false, CancellationToken.None)
            .WithTimeout(DaemonProcess.StartTimeout);
        var before = await NetcheckAsync(daemon);
        Assert.Equal(("yes", "endpoint-independent", "address-and-port-dependent"), Verdict(before));

        await site.FlushMappingsAsync().WithTimeout(NetlabTimeouts.Step);
        var flushed = await NetcheckAsync(daemon);
        Assert.Equal(Verdict(before), Verdict(flushed));
        Assert.True(flushed.GetProperty("checkedAt").GetDateTimeOffset() > before.GetProperty("checkedAt").GetDateTimeOffset());

        // Masquerade kept the source port so far; a new port range makes the NAT choose: the re-check sees it.
        await site.ChangePortRangeAsync(20000, 20999).WithTimeout(NetlabTimeouts.Step);
        var rebound = await NetcheckAsync(daemon);
        Report("home after a new port range", rebound);
        var reflexive = IPEndPoint.Parse(rebound.GetProperty("reflexive").GetString()!);
        Assert.Equal(site.PublicAddress, reflexive.Address);
        Assert.InRange(reflexive.Port, 20000, 20999);
        Assert.Equal(Verdict(before), Verdict(rebound));
    }

    private static (string Nat, string Mapping, string Filtering) Verdict(JsonElement family)
        => (family.GetProperty("nat").GetString()!, family.GetProperty("mapping").GetString()!, family.GetProperty("filtering").GetString()!);
}
