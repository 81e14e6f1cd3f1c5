using System.Net;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Topology;
using DaemonApi = Mobility.Daemon.Client.DaemonClient;
using KeyFile = Mobility.Protocol.Identity.HostKeyFile;

namespace Mobility.Netlab.FunctionalTests;

/// <summary><c>--gns</c> given as a DNS name (issue 15), followed by a daemon while the GNS moves, in namespaces of the test's own.</summary>
[Collection(NetlabCollection.Name)]
public sealed class GnsNameMoveTests
{
    private static readonly string[] GnsBefore = ["10.41.0.2", "fd00:41::2"];
    private static readonly string[] GnsAfter = ["10.41.0.3", "fd00:41::3"];
    private const string DnsAddress = "fd00:42::2";
    private const string Zone = "gns.test";

    /// <summary>
    /// A mobilityd in <c>cli</c> whose GNS is <c>home.gns.test</c>, resolved (<c>--gns-resolver</c>) by the DNS front end
    /// of a second gns process in <c>dns</c>, where the record named "home" carries the GNS's addresses. The GNS
    /// (<c>gns</c>, serving both families on [::]) then moves to new IPv4 and IPv6 addresses on its link, its old ones
    /// deleted, and the name's record is updated: the daemon must resolve the name again and go on publishing and
    /// looking up at the new addresses.
    /// </summary>
    /// <param name="trigger">
    /// "address": the name's TTL is an hour and the daemon's host gains an address (the re-resolution of an address
    /// change; the new address must then be published at the GNS's new address); "ttl": a one-second TTL (the daemon
    /// asks again after its 10 s floor) and nothing changes on the daemon's host.
    /// </param>
    [NetlabTheory]
    [InlineData("address")]
    [InlineData("ttl")]
    public async Task A_daemon_resolves_its_gns_name_again_after_the_gns_moved_and_keeps_publishing_and_looking_up(string trigger)
    {
        await using var lab = Lab.Create();
        var (cli, gnsNs, dnsNs) = await TopologyAsync(lab);
        var ttl = trigger == "ttl" ? 1u : 3600u;

        await StartGnsAsync(lab, gnsNs, "gns", ["--udp", "[::]:7353"]);
        await StartGnsAsync(lab, dnsNs, "dns", ["--udp", $"[{DnsAddress}]:7353", "--dns", $"[{DnsAddress}]:53", "--zone", Zone]);
        var homeKey = SaveKey(lab, "home");
        await MobAsync(dnsNs, ["gns", "register", "--gns", $"[{DnsAddress}]:7353", "--key", homeKey, .. Addrs(GnsBefore), "--name", "home", "--ttl", ttl.ToString(System.Globalization.CultureInfo.InvariantCulture)]);

        var daemon = await DualStackTests.StartDaemonAsync(lab, cli, "client", ["--gns", $"home.{Zone}", "--gns-resolver", $"[{DnsAddress}]:53", "--socks", "off"]);
        var guid = daemon.Ready["guid"] ?? throw new InvalidOperationException("no guid in the ready line");
        await TestTimeout.Eventually(async () => (await MobAsync(gnsNs, ["gns", "lookup", "--gns", $"[{GnsBefore[1]}]:7353", guid], check: false)).Succeeded,
            "the daemon's record reaches the GNS at its first addresses", NetlabTimeouts.Step);

        // The GNS moves: new addresses on its link, the old ones deleted; the name now answers the new ones.
        await Ip.BatchAsync(gnsNs, [$"addr add {GnsAfter[0]}/24 dev eth0", $"addr add {GnsAfter[1]}/64 dev eth0 nodad", $"addr del {GnsBefore[0]}/24 dev eth0", $"addr del {GnsBefore[1]}/64 dev eth0"])
            .WithTimeout(NetlabTimeouts.Step);
        await MobAsync(dnsNs, ["gns", "register", "--gns", $"[{DnsAddress}]:7353", "--key", homeKey, .. Addrs(GnsAfter), "--name", "home", "--ttl", ttl.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        if (trigger == "address")
        {
            await Ip.BatchAsync(cli, ["addr add 10.41.0.11/24 dev gns0", "addr add fd00:41::11/64 dev gns0 nodad"]).WithTimeout(NetlabTimeouts.Step);
        }

        // Event 1883, naming both new addresses (the order is the resolver's).
        await TestTimeout.Eventually(
            () => daemon.Process.StandardError.Split('\n').Any(l => l.Contains("The GNS's addresses are now", StringComparison.Ordinal)
                && l.Contains($"[{GnsAfter[1]}]:7353", StringComparison.Ordinal) && l.Contains($"{GnsAfter[0]}:7353", StringComparison.Ordinal)),
            "the daemon logs the name's new answer (event 1883)", NetlabTimeouts.Step);

        if (trigger == "address")
        {
            // The record with the new address goes to the GNS where it is now.
            await TestTimeout.Eventually(async () => (await MobAsync(gnsNs, ["gns", "reverse", "--gns", $"[{GnsAfter[1]}]:7353", "fd00:41::11"], check: false)).StandardOutput.Contains(guid, StringComparison.Ordinal),
                "the daemon's new address is published at the GNS's new address", NetlabTimeouts.Step);
        }

        // A record registered only now, at the GNS's new address, is found through the daemon.
        var peerKey = SaveKey(lab, "peer");
        var registered = await MobAsync(gnsNs, ["--json", "gns", "register", "--gns", $"[{GnsAfter[1]}]:7353", "--key", peerKey, "--addr", "10.99.0.7:7391"]);
        var peer = System.Text.Json.JsonDocument.Parse(registered.StandardOutput).RootElement.GetProperty("guid").GetString()!;
        using var api = new DaemonApi(daemon.Socket);
        await TestTimeout.Eventually(async () => (await api.GetIpAddressesAsync(peer, CancellationToken.None)).Contains("10.99.0.7"),
            "the daemon looks up a record the moved GNS holds", NetlabTimeouts.Step);
        Assert.False(daemon.Process.HasExited);
    }

    /// <summary><c>cli</c> with a link to <c>gns</c> (10.41.0.0/24, fd00:41::/64: .1 and ::1 on cli, .2 and ::2 on gns) and one to <c>dns</c> (fd00:42::/64).</summary>
    private static async Task<(string Cli, string Gns, string Dns)> TopologyAsync(Lab lab)
    {
        var cli = await lab.AddNamespaceAsync("cli", ipv6: true).WithTimeout(NetlabTimeouts.Step);
        var gns = await lab.AddNamespaceAsync("gns", ipv6: true).WithTimeout(NetlabTimeouts.Step);
        var dns = await lab.AddNamespaceAsync("dns", ipv6: true).WithTimeout(NetlabTimeouts.Step);
        await Lab.AddVethAsync(cli, "gns0", gns, "eth0").WithTimeout(NetlabTimeouts.Step);
        await Lab.AddVethAsync(cli, "dns0", dns, "eth0").WithTimeout(NetlabTimeouts.Step);
        await Ip.BatchAsync(cli, ["link set gns0 up", "addr add 10.41.0.1/24 dev gns0", "addr add fd00:41::1/64 dev gns0 nodad",
            "link set dns0 up", "addr add fd00:42::1/64 dev dns0 nodad"]).WithTimeout(NetlabTimeouts.Step);
        await Ip.BatchAsync(gns, ["link set eth0 up", $"addr add {GnsBefore[0]}/24 dev eth0", $"addr add {GnsBefore[1]}/64 dev eth0 nodad"]).WithTimeout(NetlabTimeouts.Step);
        await Ip.BatchAsync(dns, ["link set eth0 up", $"addr add {DnsAddress}/64 dev eth0 nodad"]).WithTimeout(NetlabTimeouts.Step);
        return (cli, gns, dns);
    }

    private static async Task<NamespaceProcess> StartGnsAsync(Lab lab, string ns, string role, string[] endpoints)
    {
        var dir = lab.CreateTemporaryDirectory(role);
        var (file, prefix) = MobilityExecutables.Gns();
        var process = lab.StartProcess(ns, file, [.. prefix, "serve", "--memory", .. endpoints, "--http", "127.0.0.1:7380", "--grpc", "127.0.0.1:7381"],
            readyLine: "gns listening ", workingDirectory: dir);
        await process.WaitReadyAsync(TimeSpan.FromSeconds(60)).WithTimeout(NetlabTimeouts.Step);
        return process;
    }

    private static string SaveKey(Lab lab, string role)
    {
        var path = Path.Combine(lab.CreateTemporaryDirectory(role), "host.key");
        using var key = Mobility.Protocol.Identity.HostKey.Generate();
        KeyFile.Save(key, path);
        return path;
    }

    private static IEnumerable<string> Addrs(string[] addresses) => addresses.SelectMany(a => new[] { "--addr", new IPEndPoint(IPAddress.Parse(a), 7353).ToString() });

    /// <summary>Runs <c>mob</c> inside <paramref name="ns"/>; throws with its output when it fails and <paramref name="check"/>.</summary>
    private static async Task<CommandResult> MobAsync(string ns, string[] arguments, bool check = true)
    {
        var (mob, prefix) = MobilityExecutables.Mob();
        var run = await CommandRunner.RunAsync("ip", ["netns", "exec", ns, mob, .. prefix, .. arguments], standardInput: "").WithTimeout(NetlabTimeouts.Step);
        if (check && !run.Succeeded)
        {
            throw new InvalidOperationException($"mob {string.Join(' ', arguments)}: exit {run.ExitCode}: {run.StandardError}");
        }

        return run;
    }
}
