using System.Globalization;
using System.Net;
using Mobility.Netlab.Emulation;
using Mobility.Netlab.Processes;

namespace Mobility.Netlab.Topology;

/// <summary>What to build.</summary>
public sealed record TopologyOptions
{
    /// <summary>The emulated link between the edge router and the rest; null builds the topology without starting the emulator.</summary>
    public LinkEmulatorOptions? Link { get; init; } = LinkEmulatorOptions.ForRtt(TimeSpan.FromMilliseconds(50));

    /// <summary>Attach the client's second interface at start (multihomed client).</summary>
    public bool MultihomedClient { get; init; }

    /// <summary>The address families of the hosts (IPv4 only by default: IPv6 off in every namespace).</summary>
    public LabNetwork Network { get; init; } = LabNetwork.Ipv4;

    /// <summary>How long the emulator process may take to start on a loaded machine.</summary>
    public TimeSpan LinkStartTimeout { get; init; } = TimeSpan.FromSeconds(90);
}

/// <summary>Which address families the evaluation topology's hosts use.</summary>
public enum LabNetwork
{
    /// <summary>IPv4 only; IPv6 is off in every namespace.</summary>
    Ipv4,

    /// <summary>
    /// IPv6-only hosts: the same subnets as fd00:231:N::/64 (10.231.N.x is fd00:231:N::x), the routers dual-stack,
    /// the emulated link carrying IPv6.
    /// </summary>
    Ipv6,

    /// <summary>
    /// Server and gns dual-stack (both families on e1); the client's e1 is IPv4-only (10.231.1.2) and its e2
    /// IPv6-only (fd00:231:2::2), so a move e1 → e2 leaves IPv4 for an IPv6-only network and back.
    /// </summary>
    CrossFamily,
}

/// <summary>
/// The evaluation topology (IPv4 by default; <see cref="LabNetwork"/> adds IPv6, private range 10.231.0.0/16, only inside namespaces):
/// <code>
///   client ─e1── 10.231.1.0/24 ──a1─┐                                     ┌─b1── 10.231.9.0/24 ──e1─ server
///          ─e2── 10.231.2.0/24 ──a2─┤ edge router ─tr0── 10.231.254.0/30 ─tr0─┤ core router ─b2── 10.231.10.0/24 ─e2─
///                                   │ (tedge ⇄ emulator ⇄ tcore)             └─g1── 10.231.100.0/24 ─e1─ gns
/// </code>
/// Everything entering the edge router from the client's subnets is policy-routed into TUN <c>tedge</c>; the
/// emulator delays it and writes it to TUN <c>tcore</c>, from where the kernel forwards it to the core router.
/// Traffic from the core router to the client's subnets is routed into <c>tcore</c> and comes out of <c>tedge</c>.
/// So every client⇄server and client⇄gns packet crosses the emulated link once per direction; server⇄gns does not.
/// </summary>
public sealed class EvaluationTopology : IAsyncDisposable
{
    public const string EdgeTun = "tedge";
    public const string CoreTun = "tcore";

    private readonly TopologyOptions _options;

    private EvaluationTopology(Lab lab, TopologyOptions options)
    {
        Lab = lab;
        _options = options;
    }

    public Lab Lab { get; }

    /// <summary>The mobile host behind the emulated link (interfaces e1 on 10.231.1.0/24, e2 on 10.231.2.0/24).</summary>
    public required LabHost Client { get; init; }

    /// <summary>The peer (interfaces e1 on 10.231.9.0/24, e2 on 10.231.10.0/24).</summary>
    public required LabHost Server { get; init; }

    /// <summary>Where the Global Name Service runs (10.231.100.2).</summary>
    public required LabHost Gns { get; init; }

    public required string EdgeRouter { get; init; }

    public required string CoreRouter { get; init; }

    /// <summary>The running emulator, or null when the topology was built without one.</summary>
    public NamespaceProcess? LinkProcess { get; private set; }

    public LinkEmulatorOptions? LinkOptions { get; private set; }

    /// <summary>The address families of the hosts.</summary>
    public LabNetwork Network => _options.Network;

    public static async Task<EvaluationTopology> CreateAsync(TopologyOptions? options = null, TextWriter? log = null)
    {
        options ??= new TopologyOptions();
        var lab = Lab.Create(log);
        try
        {
            var ipv6 = options.Network != LabNetwork.Ipv4;
            var client = await AddHostNamespaceAsync(lab, "client", ipv6).ConfigureAwait(false);
            var server = await AddHostNamespaceAsync(lab, "server", ipv6).ConfigureAwait(false);
            var gns = await AddHostNamespaceAsync(lab, "gns", ipv6).ConfigureAwait(false);
            var edge = await lab.AddNamespaceAsync("redge", router: true, ipv6).ConfigureAwait(false);
            var core = await lab.AddNamespaceAsync("rcore", router: true, ipv6).ConfigureAwait(false);
            foreach (var router in ipv6 ? [edge, core] : Array.Empty<string>())
            {
                // Forwarding, and no duplicate address detection: a router link whose carrier comes up with a host's move
                // would otherwise hold its link-local address tentative for a second while the host is already sending.
                foreach (var (key, value) in new[] { ("net.ipv6.conf.all.forwarding", "1"), ("net.ipv6.conf.all.accept_dad", "0"), ("net.ipv6.conf.default.accept_dad", "0") })
                {
                    await Ip.SysctlAsync(router, key, value).ConfigureAwait(false);
                }
            }

            await Lab.AddVethAsync(client, "e1", edge, "a1").ConfigureAwait(false);
            await Lab.AddVethAsync(client, "e2", edge, "a2").ConfigureAwait(false);
            await Lab.AddVethAsync(edge, "tr0", core, "tr0").ConfigureAwait(false);
            await Lab.AddVethAsync(server, "e1", core, "b1").ConfigureAwait(false);
            await Lab.AddVethAsync(server, "e2", core, "b2").ConfigureAwait(false);
            await Lab.AddVethAsync(gns, "e1", core, "g1").ConfigureAwait(false);

            await RouterInterfaceAsync(edge, "a1", "10.231.1.1/24", ipv6).ConfigureAwait(false);
            await RouterInterfaceAsync(edge, "a2", "10.231.2.1/24", ipv6).ConfigureAwait(false);
            await RouterInterfaceAsync(edge, "tr0", "10.231.254.1/30", ipv6).ConfigureAwait(false);
            await RouterInterfaceAsync(core, "tr0", "10.231.254.2/30", ipv6).ConfigureAwait(false);
            await RouterInterfaceAsync(core, "b1", "10.231.9.1/24", ipv6).ConfigureAwait(false);
            await RouterInterfaceAsync(core, "b2", "10.231.10.1/24", ipv6).ConfigureAwait(false);
            await RouterInterfaceAsync(core, "g1", "10.231.100.1/24", ipv6).ConfigureAwait(false);

            // The emulated link: persistent TUN devices, so routes exist before and after the emulator process.
            foreach (var tun in new[] { EdgeTun, CoreTun })
            {
                await Ip.InAsync(edge, "tuntap", "add", "dev", tun, "mode", "tun").ConfigureAwait(false);
                await Ip.InAsync(edge, "link", "set", tun, "mtu", "1500", "up").ConfigureAwait(false);
            }

            await Ip.InAsync(edge, "route", "add", "default", "dev", EdgeTun, "table", "100").ConfigureAwait(false);
            await Ip.InAsync(edge, "rule", "add", "iif", "a1", "lookup", "100", "priority", "100").ConfigureAwait(false);
            await Ip.InAsync(edge, "rule", "add", "iif", "a2", "lookup", "100", "priority", "100").ConfigureAwait(false);
            await Ip.InAsync(edge, "route", "add", "10.231.1.0/24", "dev", CoreTun, "table", "101").ConfigureAwait(false);
            await Ip.InAsync(edge, "route", "add", "10.231.2.0/24", "dev", CoreTun, "table", "101").ConfigureAwait(false);
            await Ip.InAsync(edge, "rule", "add", "iif", "tr0", "lookup", "101", "priority", "101").ConfigureAwait(false);
            await Ip.InAsync(edge, "route", "add", "default", "via", "10.231.254.2").ConfigureAwait(false);
            await Ip.InAsync(core, "route", "add", "10.231.1.0/24", "via", "10.231.254.1").ConfigureAwait(false);
            await Ip.InAsync(core, "route", "add", "10.231.2.0/24", "via", "10.231.254.1").ConfigureAwait(false);
            if (ipv6)
            {
                // The same policy routing for IPv6: the client's prefixes cross the emulated link both ways.
                await Ip.BatchAsync(edge,
                [
                    $"route add default dev {EdgeTun} table 100", "rule add iif a1 lookup 100 priority 100", "rule add iif a2 lookup 100 priority 100",
                    $"route add {V6(1, 0)}/64 dev {CoreTun} table 101", $"route add {V6(2, 0)}/64 dev {CoreTun} table 101", "rule add iif tr0 lookup 101 priority 101",
                    $"route add default via {V6(254, 2)}",
                ], ipv6: true).ConfigureAwait(false);
                await Ip.BatchAsync(core, [$"route add {V6(1, 0)}/64 via {V6(254, 1)}", $"route add {V6(2, 0)}/64 via {V6(254, 1)}"], ipv6: true).ConfigureAwait(false);
            }

            var (clientE1, clientE2) = options.Network switch
            {
                LabNetwork.Ipv6 => (Interface6("e1", 1, 201), Interface6("e2", 2, 202)),
                LabNetwork.CrossFamily => (Interface4("e1", 1, 201), Interface6("e2", 2, 202)),
                _ => (Interface4("e1", 1, 201), Interface4("e2", 2, 202)),
            };
            var clientHost = new LabHost("client", client, [clientE1, clientE2]);
            var serverHost = new LabHost("server", server, options.Network switch
            {
                LabNetwork.Ipv6 => [Interface6("e1", 9, 201), Interface6("e2", 10, 202)],
                LabNetwork.CrossFamily => [Interface4("e1", 9, 201), Interface4("e2", 10, 202), Interface6("e1", 9, 201), Interface6("e2", 10, 202)],
                _ => [Interface4("e1", 9, 201), Interface4("e2", 10, 202)],
            });
            var gnsHost = new LabHost("gns", gns, options.Network switch
            {
                LabNetwork.Ipv6 => [Interface6("e1", 100, 201)],
                LabNetwork.CrossFamily => [Interface4("e1", 100, 201), Interface6("e1", 100, 201)],
                _ => [Interface4("e1", 100, 201)],
            });

            await clientHost.AttachAsync(clientHost.Interfaces[0]).ConfigureAwait(false);
            if (options.MultihomedClient)
            {
                await clientHost.AttachAsync(clientHost.Interfaces[1], makeDefault: false).ConfigureAwait(false);
            }

            // Dual-stack hosts attach the IPv4 and the IPv6 side of e1 (the same device).
            foreach (var host in new[] { serverHost, gnsHost })
            {
                foreach (var iface in host.Interfaces.Where(i => i.Name == "e1"))
                {
                    await host.AttachAsync(iface).ConfigureAwait(false);
                }
            }

            var topology = new EvaluationTopology(lab, options) { Client = clientHost, Server = serverHost, Gns = gnsHost, EdgeRouter = edge, CoreRouter = core };
            if (options.Link is { } link)
            {
                await topology.StartLinkAsync(link).ConfigureAwait(false);
            }

            return topology;
        }
        catch
        {
            await lab.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Starts (or restarts with new characteristics) the emulator process in the edge router.</summary>
    public async Task StartLinkAsync(LinkEmulatorOptions link)
    {
        ArgumentNullException.ThrowIfNull(link);
        link.Validate();
        if (LinkProcess is { } running)
        {
            await running.DisposeAsync().ConfigureAwait(false);
            LinkProcess = null;
        }

        var (fileName, prefix) = NetlabTool.Command();
        var process = Lab.StartProcess(EdgeRouter, fileName, [.. prefix, "link", "--tun-a", EdgeTun, "--tun-b", CoreTun, .. link.ToArguments()], readyLine: "ready");
        await process.WaitReadyAsync(_options.LinkStartTimeout).ConfigureAwait(false);
        LinkProcess = process;
        LinkOptions = link;
    }

    /// <summary>
    /// A silent upstream failure: the edge router drops every packet it would forward from or to
    /// <paramref name="routerInterface"/> (an nftables table <c>inet netlab_fail</c> on the forward hook). The host on
    /// that link keeps its address, its link and its routes, and still reaches the router itself: no event tells it.
    /// </summary>
    public async Task<MoveRecord> FailUpstreamAsync(string routerInterface)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(routerInterface);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var rules = $"table inet netlab_fail {{\n chain forward {{\n  type filter hook forward priority 0; policy accept;\n  iifname \"{routerInterface}\" drop\n  oifname \"{routerInterface}\" drop\n }}\n}}\n";
        await CommandRunner.RunCheckedAsync("ip", ["netns", "exec", EdgeRouter, "nft", "-f", "-"], standardInput: rules).ConfigureAwait(false);
        var done = System.Diagnostics.Stopwatch.GetTimestamp();
        return new MoveRecord(Client.Role, null, null, started, done, done);
    }

    /// <summary>The IPv6 twin of 10.231.<paramref name="subnet"/>.<paramref name="host"/>: fd00:231:<paramref name="subnet"/>::<paramref name="host"/> (the digits read as hex).</summary>
    public static IPAddress V6(int subnet, int host) =>
        IPAddress.Parse(string.Create(CultureInfo.InvariantCulture, $"fd00:231:{subnet}::{(host == 0 ? "" : host.ToString(CultureInfo.InvariantCulture))}"));

    private static HostInterface Interface4(string name, int subnet, int table) =>
        new(name, IPAddress.Parse(string.Create(CultureInfo.InvariantCulture, $"10.231.{subnet}.2")), 24, IPAddress.Parse(string.Create(CultureInfo.InvariantCulture, $"10.231.{subnet}.1")), table);

    private static HostInterface Interface6(string name, int subnet, int table) => new(name, V6(subnet, 2), 64, V6(subnet, 1), table);

    /// <summary>
    /// A host namespace; with IPv6 its addresses skip duplicate address detection (usable at once) and survive the
    /// link going down until they are deleted, as the IPv4 ones.
    /// </summary>
    private static async Task<string> AddHostNamespaceAsync(Lab lab, string role, bool ipv6)
    {
        var ns = await lab.AddNamespaceAsync(role, router: false, ipv6).ConfigureAwait(false);
        if (ipv6)
        {
            // As IPv4: an address stays until it is deleted (a move takes the link down, then deletes the address).
            foreach (var key in (string[])["net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"])
            {
                await Ip.SysctlAsync(ns, key, "0").ConfigureAwait(false);
            }

            foreach (var key in (string[])["net.ipv6.conf.all.keep_addr_on_down", "net.ipv6.conf.default.keep_addr_on_down"])
            {
                await Ip.SysctlAsync(ns, key, "1").ConfigureAwait(false);
            }
        }

        return ns;
    }

    /// <summary>A router's address on <paramref name="name"/>; with IPv6 also the twin address (/64 for every subnet, <c>nodad</c>).</summary>
    private static async Task RouterInterfaceAsync(string ns, string name, string cidr, bool ipv6)
    {
        var commands = new List<string> { $"addr add {cidr} dev {name}" };
        if (ipv6)
        {
            var parts = cidr.Split('/')[0].Split('.');
            commands.Add($"addr add {V6(int.Parse(parts[2], CultureInfo.InvariantCulture), int.Parse(parts[3], CultureInfo.InvariantCulture))}/64 dev {name} nodad");
        }

        commands.Add($"link set {name} up");
        await Ip.BatchAsync(ns, commands).ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => Lab.DisposeAsync();
}
