using System.Globalization;
using System.Net;
using Mobility.Netlab.Emulation;
using Mobility.Netlab.Processes;

namespace Mobility.Netlab.Topology;

/// <summary>The NATs Linux can build with nftables (docs/nat.md, "The NAT kit").</summary>
public enum NatKind
{
    /// <summary>
    /// <c>masquerade</c>: endpoint-independent mapping (the source port is kept when it is free, and one inside
    /// endpoint keeps one outside endpoint whatever the destination) with address-and-port-dependent filtering: only
    /// the peer a mapping was made for gets in. The default of home routers built on Linux.
    /// </summary>
    EndpointIndependent,

    /// <summary><c>masquerade fully-random</c> (iptables' <c>--random-fully</c>): destination-dependent mapping, a fresh random port per destination (a "symmetric" NAT).</summary>
    Symmetric,

    /// <summary>Carrier-grade NAT (<c>masquerade</c>, inside 100.64.0.0/10) in front of a home router (<c>masquerade</c>): two translations.</summary>
    Double,

    /// <summary><c>masquerade</c> plus a firewall that lets only new TCP connections to port 443 out (hotel and corporate networks).</summary>
    HttpsOnly,

    /// <summary>
    /// No NAT: the host's interface sits on the internet router's link 198.18.(100+j).0/24 with the public address
    /// 198.18.(100+j).2 (a site to move to from behind a NAT and back).
    /// </summary>
    None,
}

/// <summary>A port of the host behind a NAT that the NAT forwards (DNAT of the NAT's outside address, same port).</summary>
public sealed record PortForward(string Protocol, int Port)
{
    public static PortForward Tcp(int port) => new("tcp", port);

    public static PortForward Udp(int port) => new("udp", port);
}

/// <summary>One host behind one NAT.</summary>
public sealed record NatSiteOptions
{
    /// <summary>The site's role (its host's namespace is <c>PREFIX+Role</c> unless <see cref="HostRole"/> names another, its NAT router's <c>PREFIX+Role-nat</c>).</summary>
    public required string Role { get; init; }

    /// <summary>
    /// The host behind this NAT; null: a host of its own named <see cref="Role"/>. Sites that name the same host share
    /// it, as networks a laptop moves between: its first site's interface (<c>e1</c>) is attached at start, each
    /// further site's (<c>e2</c>, <c>e3</c>, ...) waits detached until the host moves there (<see cref="NatSite.Interface"/>).
    /// </summary>
    public string? HostRole { get; init; }

    public NatKind Kind { get; init; } = NatKind.EndpointIndependent;

    /// <summary>Ports forwarded to the host (DNAT on the outermost NAT; a double NAT forwards through both).</summary>
    public IReadOnlyList<PortForward> Forwards { get; init; } = [];

    /// <summary>With <see cref="NatKind.HttpsOnly"/>: what may go out besides TCP 443 (e.g. the GNS's UDP port, for a test that is about TLS to relays, not about reaching the GNS).</summary>
    public IReadOnlyList<PortForward> AlsoOutbound { get; init; } = [];

    /// <summary>Whether the forwarded ports can also be reached from inside through the NAT's outside address (hairpinning).</summary>
    public bool Hairpin { get; init; }

    /// <summary>
    /// Unsolicited packets to the NAT's outside address are dropped silently. Off (the Linux default): the NAT router
    /// answers them like any host with nothing listening, a TCP RST or an ICMP port unreachable.
    /// </summary>
    public bool DropUnsolicited { get; init; }

    /// <summary>
    /// The NAT router runs miniupnpd (Debian's <c>miniupnpd-nftables</c>: NAT-PMP and PCP on port 5351 of its LAN side,
    /// UPnP off) that installs the mappings its LAN hosts ask for as nftables DNAT rules. miniupnpd refuses to map behind
    /// a reserved outside address, so such a site's outside link is 9.9.(100+j).0/24 instead of 198.18.(100+j).0/24
    /// (inside the lab's namespaces only, like every address of the kit). Not with <see cref="NatKind.Double"/>.
    /// </summary>
    public bool PortMapping { get; init; }

    /// <summary>
    /// The role of an earlier site whose NAT this site shares: no router of its own, its LAN 192.168.j.0/24 is another
    /// LAN port (<c>lanJ</c>) of that site's (innermost) NAT router, so the hosts of both sites are behind the same NAT
    /// and its outside address. LAN to LAN is routed without translation; <see cref="Kind"/> and the other NAT options
    /// are the other site's. No Linux NAT hairpins dynamic mappings: the hosts reach each other by their private
    /// addresses or from outside (a relay), not through the NAT's outside address.
    /// </summary>
    public string? SameNatAs { get; init; }

    /// <summary>
    /// With <see cref="PortMapping"/>: miniupnpd speaks UPnP IGD only (SSDP on UDP 1900 and HTTP/SOAP of the LAN side),
    /// NAT-PMP and PCP off, so its LAN hosts get no answer on port 5351.
    /// </summary>
    public bool UpnpOnly { get; init; }
}

/// <summary>A host behind its NAT(s), and what can be done to the NAT while it runs.</summary>
public sealed class NatSite(NatSiteOptions options, LabHost host, HostInterface iface, IReadOnlyList<string> routers, IPAddress publicAddress, NatSiteOptions outer, string outerLan)
{
    public NatSiteOptions Options { get; } = options;

    public LabHost Host { get; } = host;

    /// <summary>The host's interface into this site's LAN (attached at start only for the host's first site).</summary>
    public HostInterface Interface { get; } = iface;

    /// <summary>The NAT router namespaces, outermost first (one, or the carrier-grade NAT and then the home router).</summary>
    public IReadOnlyList<string> Routers { get; } = routers;

    /// <summary>The outermost NAT's outside address: what servers on the internet see.</summary>
    public IPAddress PublicAddress { get; } = publicAddress;

    /// <summary>The internet router's interface toward this site's outermost NAT (<c>nJ</c>; empty for a <see cref="NatSiteOptions.SameNatAs"/> site).</summary>
    public string InternetSide { get; internal init; } = "";

    /// <summary>miniupnpd in the NAT router (<see cref="NatSiteOptions.PortMapping"/>), or null.</summary>
    public NamespaceProcess? PortMappingDaemon { get; internal set; }

    /// <summary>The DNAT rules miniupnpd installed in the NAT router (<c>nft list chain inet miniupnpd prerouting_miniupnpd</c>).</summary>
    public async Task<string> PortMappingRulesAsync(CancellationToken cancellationToken = default)
    {
        var result = await Ip.ExecAsync(Routers[0], "nft", ["list", "chain", "inet", "miniupnpd", "prerouting_miniupnpd"], cancellationToken: cancellationToken).ConfigureAwait(false);
        return result.Succeeded ? result.StandardOutput : throw new CommandFailedException($"nft list chain in {Routers[0]}: {result.StandardError.Trim()}");
    }

    /// <summary>The NAT forgets every mapping (<c>conntrack -F</c> in each NAT router): the next packet out gets a new one.</summary>
    public async Task FlushMappingsAsync(CancellationToken cancellationToken = default)
    {
        foreach (var router in Routers)
        {
            var result = await Ip.ExecAsync(router, "conntrack", ["-F"], cancellationToken: cancellationToken).ConfigureAwait(false);
            if (!result.Succeeded)
            {
                throw new CommandFailedException($"conntrack -F in {router}: {result.StandardError.Trim()}");
            }
        }
    }

    /// <summary>
    /// The outermost NAT maps to outside ports <paramref name="low"/>..<paramref name="high"/> from now on and forgets
    /// its mappings, so every flow gets a new outside port (NAT rebinding with a changed port).
    /// </summary>
    public async Task ChangePortRangeAsync(int low, int high, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(low, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(high, 65535);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(low, high);
        if (Routers.Count == 0)
        {
            throw new InvalidOperationException($"site {Options.Role} has no NAT");
        }

        var rule = NatRules.Masquerade(outer.Kind, (low, high));
        var hairpin = NatRules.HairpinRule(outer, outerLan).Trim();
        // A port range needs a transport protocol match; other protocols (ICMP) keep plain masquerade.
        await NatRules.ApplyAsync(Routers[0], $"flush chain ip nat postrouting\nadd rule ip nat postrouting oifname \"wan\" meta l4proto {{ tcp, udp }} {rule}\n"
            + $"add rule ip nat postrouting oifname \"wan\" {NatRules.Masquerade(outer.Kind, null)}\n"
            + (hairpin.Length > 0 ? $"add rule ip nat postrouting {hairpin}\n" : "")).ConfigureAwait(false);
        await FlushMappingsAsync(cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>
/// The NAT kit (all IPv4, only inside namespaces; 198.18.0.0/15 plays the internet):
/// <code>
///   public host k ─e1── 198.18.k.0/24 ──pk─┐
///                                          │ inet (router)
///   site j:  host ─e1── 192.168.j.0/24 ──lan─ NAT ─wan── 198.18.(100+j).0/24 ──nj─┘
///   double:  host ─e1── 192.168.j.0/24 ──lan─ home NAT ─wan── 100.64.j.0/24 ──lan─ CGN ─wan── 198.18.(100+j).0/24 ──nj─┘
///   roaming: host ─e1── site j's LAN, ─e2── site k's LAN (NatSiteOptions.HostRole): it moves between them
/// </code>
/// Public hosts (GNS, outside servers, a public peer) get 198.18.k.2; a host behind a NAT gets 192.168.j.2, its NAT
/// 198.18.(100+j).2 outside. The internet router knows no private route, so nothing reaches a LAN except through its
/// NAT. The lab removes everything (nftables rules and conntrack tables die with their namespaces).
/// </summary>
public sealed class NatTopology : IAsyncDisposable
{
    private readonly Dictionary<string, LabHost> _public;
    private readonly Dictionary<string, NatSite> _sites;

    private NatTopology(Lab lab, string internet, Dictionary<string, LabHost> publicHosts, Dictionary<string, NatSite> sites)
    {
        Lab = lab;
        Internet = internet;
        _public = publicHosts;
        _sites = sites;
    }

    public Lab Lab { get; }

    /// <summary>The internet router's namespace.</summary>
    public string Internet { get; }

    public LabHost Public(string role) => _public.TryGetValue(role, out var host) ? host : throw new ArgumentException($"no public host {role}", nameof(role));

    public NatSite Site(string role) => _sites.TryGetValue(role, out var site) ? site : throw new ArgumentException($"no NAT site {role}", nameof(role));

    public static async Task<NatTopology> CreateAsync(IReadOnlyList<string> publicHosts, IReadOnlyList<NatSiteOptions> sites, TextWriter? log = null)
    {
        ArgumentNullException.ThrowIfNull(publicHosts);
        ArgumentNullException.ThrowIfNull(sites);
        if (publicHosts.Count is 0 or > 99 || sites.Count > 99)
        {
            throw new ArgumentException("1..99 public hosts and at most 99 NAT sites");
        }

        if (publicHosts.Concat(sites.Select(s => s.Role)).GroupBy(r => r).FirstOrDefault(g => g.Count() > 1) is { } duplicate)
        {
            throw new ArgumentException($"role {duplicate.Key} is used twice");
        }

        if (sites.FirstOrDefault(s => s.HostRole is { } h && publicHosts.Contains(h)) is { } bad)
        {
            throw new ArgumentException($"site {bad.Role}: {bad.HostRole} is a public host");
        }

        if (LabRequirements.MissingNatRequirement() is { } missing)
        {
            throw new PlatformNotSupportedException(missing);
        }

        var lab = Lab.Create(log);
        try
        {
            var internet = await lab.AddNamespaceAsync("inet", router: true).ConfigureAwait(false);
            var publicMap = new Dictionary<string, LabHost>(StringComparer.Ordinal);
            for (var k = 1; k <= publicHosts.Count; k++)
            {
                var role = publicHosts[k - 1];
                var ns = await lab.AddNamespaceAsync(role).ConfigureAwait(false);
                var side = "p" + k.ToString(CultureInfo.InvariantCulture);
                await Lab.AddVethAsync(ns, "e1", internet, side).ConfigureAwait(false);
                await Ip.BatchAsync(internet, [$"addr add 198.18.{k}.1/24 dev {side}", $"link set {side} up"]).ConfigureAwait(false);
                var host = new LabHost(role, ns, [new HostInterface("e1", IPAddress.Parse($"198.18.{k}.2"), 24, IPAddress.Parse($"198.18.{k}.1"), 201)]);
                await host.AttachAsync(host.Interfaces[0]).ConfigureAwait(false);
                publicMap[role] = host;
            }

            // One namespace per host; a host shared by several sites gets one interface into each of their LANs.
            var hostNamespaces = new Dictionary<string, (string Namespace, List<HostInterface> Interfaces)>(StringComparer.Ordinal);
            var built = new List<(NatSiteOptions Options, string HostRole, HostInterface Interface, IReadOnlyList<string> Routers, IPAddress Public, NatSiteOptions Outer, string OuterLan, NamespaceProcess? PortMapping)>();
            for (var j = 1; j <= sites.Count; j++)
            {
                var options = sites[j - 1];
                var hostRole = options.HostRole ?? options.Role;
                if (!hostNamespaces.TryGetValue(hostRole, out var shared))
                {
                    shared = (await lab.AddNamespaceAsync(hostRole).ConfigureAwait(false), []);
                    hostNamespaces[hostRole] = shared;
                }

                var site = options.SameNatAs is { } sameNat
                    ? await JoinSiteAsync(j, options, built.FirstOrDefault(b => b.Options.Role == sameNat), shared.Namespace, shared.Interfaces.Count + 1).ConfigureAwait(false)
                    : await CreateSiteAsync(lab, internet, j, options, shared.Namespace, shared.Interfaces.Count + 1).ConfigureAwait(false);
                shared.Interfaces.Add(site.Interface);
                built.Add((options, hostRole, site.Interface, site.Routers, site.Public, site.Outer, site.OuterLan, site.PortMapping));
            }

            var labHosts = new Dictionary<string, LabHost>(StringComparer.Ordinal);
            foreach (var (role, (ns, interfaces)) in hostNamespaces)
            {
                var labHost = new LabHost(role, ns, interfaces);
                await labHost.AttachAsync(interfaces[0]).ConfigureAwait(false);
                labHosts[role] = labHost;
            }

            var siteMap = new Dictionary<string, NatSite>(StringComparer.Ordinal);
            foreach (var site in built)
            {
                siteMap[site.Options.Role] = new NatSite(site.Options, labHosts[site.HostRole], site.Interface, site.Routers, site.Public, site.Outer, site.OuterLan)
                {
                    PortMappingDaemon = site.PortMapping,
                    InternetSide = site.Options.SameNatAs is null ? "n" + (built.IndexOf(site) + 1).ToString(CultureInfo.InvariantCulture) : "",
                };
            }

            return new NatTopology(lab, internet, publicMap, siteMap);
        }
        catch
        {
            await lab.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Site <paramref name="j"/> behind the NAT of <paramref name="other"/> (<see cref="NatSiteOptions.SameNatAs"/>): a LAN port <c>lanJ</c> of its innermost router.</summary>
    private static async Task<(HostInterface Interface, IReadOnlyList<string> Routers, IPAddress Public, NatSiteOptions Outer, string OuterLan, NamespaceProcess? PortMapping)> JoinSiteAsync(
        int j, NatSiteOptions options,
        (NatSiteOptions Options, string HostRole, HostInterface Interface, IReadOnlyList<string> Routers, IPAddress Public, NatSiteOptions Outer, string OuterLan, NamespaceProcess? PortMapping) other,
        string hostNs, int slot)
    {
        if (other.Options is null || other.Routers.Count == 0)
        {
            throw new ArgumentException($"site {options.Role}: SameNatAs {options.SameNatAs} names no earlier NAT site");
        }

        var n = j.ToString(CultureInfo.InvariantCulture);
        var router = other.Routers[^1];
        var port = "lan" + n;
        var ifname = "e" + slot.ToString(CultureInfo.InvariantCulture);
        await Lab.AddVethAsync(hostNs, ifname, router, port).ConfigureAwait(false);
        await Ip.BatchAsync(router, [$"addr add 192.168.{n}.1/24 dev {port}", $"link set {port} up"]).ConfigureAwait(false);
        return (new HostInterface(ifname, IPAddress.Parse($"192.168.{n}.2"), 24, IPAddress.Parse($"192.168.{n}.1"), 200 + slot), other.Routers, other.Public, other.Outer, other.OuterLan, null);
    }

    /// <summary>Site <paramref name="j"/>: its NAT router(s), and interface <c>e</c><paramref name="slot"/> of <paramref name="hostNs"/> into its LAN (not attached).</summary>
    private static async Task<(HostInterface Interface, IReadOnlyList<string> Routers, IPAddress Public, NatSiteOptions Outer, string OuterLan, NamespaceProcess? PortMapping)> CreateSiteAsync(
        Lab lab, string internet, int j, NatSiteOptions options, string hostNs, int slot)
    {
        var n = j.ToString(CultureInfo.InvariantCulture);
        var side = "n" + n;
        if (options.PortMapping && options.Kind == NatKind.Double)
        {
            throw new ArgumentException($"site {options.Role}: port mapping runs on a single NAT only");
        }

        // miniupnpd maps nothing behind a reserved outside address (198.18.0.0/15 is one): such a site lives in 9.9.x.
        var outside = options.PortMapping ? $"9.9.{100 + j}" : $"198.18.{100 + j}";
        var publicAddress = IPAddress.Parse($"{outside}.2");
        var ifname = "e" + slot.ToString(CultureInfo.InvariantCulture);
        if (options.Kind == NatKind.None)
        {
            if (options.PortMapping || options.Forwards.Count > 0)
            {
                throw new ArgumentException($"site {options.Role}: a site without a NAT has nothing to forward or map");
            }

            await Lab.AddVethAsync(hostNs, ifname, internet, side).ConfigureAwait(false);
            await Ip.BatchAsync(internet, [$"addr add {outside}.1/24 dev {side}", $"link set {side} up"]).ConfigureAwait(false);
            return (new HostInterface(ifname, publicAddress, 24, IPAddress.Parse($"{outside}.1"), 200 + slot), [], publicAddress, options, "", null);
        }

        var home = await lab.AddNamespaceAsync(options.Role + "-nat", router: true).ConfigureAwait(false);
        var lan = $"192.168.{n}.0/24";
        var host = IPAddress.Parse($"192.168.{n}.2");
        await Lab.AddVethAsync(hostNs, ifname, home, "lan").ConfigureAwait(false);
        List<string> routers;
        var outer = options;
        var outerLan = lan;
        if (options.Kind == NatKind.Double)
        {
            var cgn = await lab.AddNamespaceAsync(options.Role + "-cgn", router: true).ConfigureAwait(false);
            await Lab.AddVethAsync(cgn, "wan", internet, side).ConfigureAwait(false);
            await Lab.AddVethAsync(home, "wan", cgn, "lan").ConfigureAwait(false);
            await Ip.BatchAsync(cgn, [$"addr add {publicAddress}/24 dev wan", "link set wan up", $"addr add 100.64.{n}.1/24 dev lan", "link set lan up", $"route add default via {outside}.1"]).ConfigureAwait(false);
            await Ip.BatchAsync(home, [$"addr add 100.64.{n}.2/24 dev wan", "link set wan up", $"addr add 192.168.{n}.1/24 dev lan", "link set lan up", $"route add default via 100.64.{n}.1"]).ConfigureAwait(false);
            // The carrier forwards the subscriber's ports to the home router, which forwards them to the host.
            outer = options with { Kind = NatKind.EndpointIndependent, Hairpin = false };
            outerLan = $"100.64.{n}.0/24";
            await NatRules.ApplyAsync(cgn, NatRules.Script(outer, IPAddress.Parse($"100.64.{n}.2"), outerLan)).ConfigureAwait(false);
            await NatRules.ApplyAsync(home, NatRules.Script(options with { Kind = NatKind.EndpointIndependent, DropUnsolicited = false }, host, lan)).ConfigureAwait(false);
            routers = [cgn, home];
        }
        else
        {
            await Lab.AddVethAsync(home, "wan", internet, side).ConfigureAwait(false);
            await Ip.BatchAsync(home, [$"addr add {publicAddress}/24 dev wan", "link set wan up", $"addr add 192.168.{n}.1/24 dev lan", "link set lan up", $"route add default via {outside}.1"]).ConfigureAwait(false);
            await NatRules.ApplyAsync(home, NatRules.Script(options, host, lan)).ConfigureAwait(false);
            routers = [home];
        }

        await Ip.BatchAsync(internet, [$"addr add {outside}.1/24 dev {side}", $"link set {side} up"]).ConfigureAwait(false);
        var portMapping = options.PortMapping ? await PortMappingGateway.StartAsync(lab, home, lan, options.UpnpOnly).ConfigureAwait(false) : null;
        return (new HostInterface(ifname, host, 24, IPAddress.Parse($"192.168.{n}.1"), 200 + slot), routers, publicAddress, outer, outerLan, portMapping);
    }

    /// <summary>The emulated link between two sites' NATs (<see cref="DelayBetweenSitesAsync"/>), or null.</summary>
    public NamespaceProcess? SiteLink { get; private set; }

    /// <summary>
    /// Puts a user-space emulated link (<c>netlab link</c> in the internet router between TUN devices <c>tsa</c> and
    /// <c>tsb</c>, as <see cref="EvaluationTopology"/> does) on the path between the outermost NATs of sites
    /// <paramref name="a"/> and <paramref name="b"/>: every packet from one site's outside subnet to the other's, both
    /// ways, is delayed by <paramref name="link"/>; their traffic with public hosts (the GNS, a relay) is not. On veth the
    /// two NATs are about 15 µs apart; on the Internet milliseconds, the window in which the SYNs of a simultaneous open
    /// through NATs that answer unsolicited SYNs with a RST must cross (docs/nat.md, "Hole punching"). One per topology.
    /// </summary>
    /// <param name="alsoPublic">
    /// Public hosts (roles) whose traffic with either site goes through the same link too (a far relay: site to host
    /// and back each cross it once, so the way through the host is twice the way between the sites).
    /// </param>
    public async Task DelayBetweenSitesAsync(string a, string b, LinkEmulatorOptions link, TimeSpan startTimeout, IReadOnlyList<string>? alsoPublic = null)
    {
        ArgumentNullException.ThrowIfNull(link);
        link.Validate();
        var (siteA, siteB) = (Site(a), Site(b));
        if (siteA.InternetSide.Length == 0 || siteB.InternetSide.Length == 0 || siteA.InternetSide == siteB.InternetSide)
        {
            throw new ArgumentException($"sites {a} and {b} need NATs of their own on the internet router");
        }

        if (SiteLink is not null)
        {
            throw new InvalidOperationException("the topology has an emulated link between sites already");
        }

        static string Subnet(IPAddress address)
        {
            var bytes = address.GetAddressBytes();
            return string.Create(CultureInfo.InvariantCulture, $"{bytes[0]}.{bytes[1]}.{bytes[2]}.0/24");
        }

        const string TunA = "tsa", TunB = "tsb";
        await Ip.BatchAsync(Internet,
        [
            $"tuntap add dev {TunA} mode tun", $"link set {TunA} mtu 1500 up",
            $"tuntap add dev {TunB} mode tun", $"link set {TunB} mtu 1500 up",
            // A's NAT to B's: into tsa, out of tsb (then the main table forwards it to B); B's to A's the other way.
            $"route add default dev {TunA} table 150", $"rule add iif {siteA.InternetSide} to {Subnet(siteB.PublicAddress)} lookup 150 priority 150",
            $"route add default dev {TunB} table 151", $"rule add iif {siteB.InternetSide} to {Subnet(siteA.PublicAddress)} lookup 151 priority 151",
        ]).ConfigureAwait(false);
        var priority = 152;
        foreach (var role in alsoPublic ?? [])
        {
            // Public host k is 198.18.k.2 behind the router's interface pk. Towards it from a site: into tsa; from it
            // to a site: into tsb. What leaves a TUN has that TUN as iif, so no rule takes it in a second time.
            var address = Public(role).PrimaryAddress;
            var side = "p" + address.GetAddressBytes()[2].ToString(CultureInfo.InvariantCulture);
            await Ip.BatchAsync(Internet,
            [
                $"rule add iif {siteA.InternetSide} to {Subnet(address)} lookup 150 priority {priority++}",
                $"rule add iif {siteB.InternetSide} to {Subnet(address)} lookup 150 priority {priority++}",
                $"rule add iif {side} to {Subnet(siteA.PublicAddress)} lookup 151 priority {priority++}",
                $"rule add iif {side} to {Subnet(siteB.PublicAddress)} lookup 151 priority {priority++}",
            ]).ConfigureAwait(false);
        }

        var (fileName, prefix) = NetlabTool.Command();
        var process = Lab.StartProcess(Internet, fileName, [.. prefix, "link", "--tun-a", TunA, "--tun-b", TunB, .. link.ToArguments()], readyLine: "ready");
        await process.WaitReadyAsync(startTimeout).ConfigureAwait(false);
        SiteLink = process;
    }

    public ValueTask DisposeAsync() => Lab.DisposeAsync();
}

/// <summary>The nftables ruleset of one NAT router (interfaces <c>wan</c> outside, <c>lan</c> inside).</summary>
public static class NatRules
{
    /// <summary>The ruleset for <paramref name="options"/>; <paramref name="inside"/> is where forwarded ports go, <paramref name="lan"/> the inside subnet.</summary>
    public static string Script(NatSiteOptions options, IPAddress inside, string lan)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(inside);
        var forwards = string.Concat(options.Forwards.Select(f =>
            // Without hairpinning only packets arriving from outside are forwarded; with it, also those from the LAN.
            $"    {(options.Hairpin ? "fib daddr type local" : "iifname \"wan\"")} {f.Protocol} dport {f.Port.ToString(CultureInfo.InvariantCulture)} dnat to {inside}\n"));
        var outbound = options.Kind == NatKind.HttpsOnly
            ? "    iifname \"lan*\" tcp dport 443 accept\n" + string.Concat(options.AlsoOutbound.Select(o => $"    iifname \"lan*\" {o.Protocol} dport {o.Port.ToString(CultureInfo.InvariantCulture)} accept\n"))
            : "    iifname \"lan*\" accept\n";
        var unsolicited = options.DropUnsolicited
            ? """
              table ip unsolicited {
                chain input {
                  type filter hook input priority filter; policy accept;
                  iifname "wan" ct state new counter drop
                }
              }

              """
            : "";
        return $$"""
            table ip nat {
              chain prerouting {
                type nat hook prerouting priority dstnat; policy accept;
            {{forwards}}  }
              chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                oifname "wan" {{Masquerade(options.Kind, null)}}
            {{HairpinRule(options, lan)}}  }
            }
            table ip firewall {
              chain forward {
                type filter hook forward priority filter; policy drop;
                ct state established,related accept
                ct status dnat accept
            {{outbound}}  }
            }
            {{unsolicited}}
            """;
    }

    /// <summary>The masquerade statement of <paramref name="kind"/>, optionally restricted to an outside port range.</summary>
    public static string Masquerade(NatKind kind, (int Low, int High)? ports)
    {
        var range = ports is { } p ? $" to :{p.Low.ToString(CultureInfo.InvariantCulture)}-{p.High.ToString(CultureInfo.InvariantCulture)}" : "";
        return kind == NatKind.Symmetric ? $"masquerade{range} fully-random" : $"masquerade{range}";
    }

    /// <summary>A hairpinned packet leaves by the LAN it came from, with the NAT's address as source so the reply comes back through it.</summary>
    internal static string HairpinRule(NatSiteOptions options, string lan) =>
        options.Hairpin && options.Forwards.Count > 0 ? $"    ip saddr {lan} oifname \"lan\" ct status dnat masquerade\n" : "";

    /// <summary>Loads a ruleset into <paramref name="ns"/> (<c>nft -f -</c>, atomically).</summary>
    public static async Task ApplyAsync(string ns, string script)
    {
        var result = await CommandRunner.RunAsync("ip", ["netns", "exec", ns, "nft", "-f", "-"], standardInput: script).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new CommandFailedException($"nft -f in {ns} failed: {result.StandardError.Trim()}\n{script}");
        }
    }
}
