using System.Globalization;
using System.Net;
using Mobility.Net.EndPoints;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// Transparent mode (docs/transparent.md): the DNS stub for the <c>.mob</c> and <c>.guid</c> zones, the
/// virtual addresses that name peers, and the interception of TCP connections and UDP flows to them.
/// </summary>
public sealed class TransparentOptions
{
    /// <summary>
    /// Default <see cref="Dns"/>: 127.53/8 and 127.0.0.54 are systemd-resolved's (its stub and its
    /// proxy-only stub), so a loopback address no resolver uses; port 53 because resolv.conf cannot name a port.
    /// </summary>
    public const string DefaultDns = "127.77.0.1:53";

    /// <summary>
    /// Default <see cref="Ipv4Pool"/>: inside the shared address space 100.64.0.0/10 (RFC 6598), never routed
    /// on the internet, and away from its low end (100.64.x), which carrier NATs hand to their customers.
    /// Not 198.18.0.0/15: benchmark labs (and this project's netlab) use it for "the internet".
    /// </summary>
    public const string DefaultIpv4Pool = "100.77.0.0/16";

    internal const string DnsOption = "Transparent:Dns (--Transparent:Dns)";

    /// <summary>UDP and TCP endpoint of the DNS stub; "off" turns it off. Taken or not permitted: the daemon runs without it (logged).</summary>
    public string Dns { get; set; } = DefaultDns;

    /// <summary>The pool (IPv4 CIDR, /8 to /30) the peers' virtual IPv4 addresses are taken from.</summary>
    public string Ipv4Pool { get; set; } = DefaultIpv4Pool;

    /// <summary>
    /// Peers given a virtual IPv4 address at once (and remembered in the state folder); beyond it the least
    /// recently resolved one not resolved within <see cref="AnswerTtl"/> gives its address up. Capped by the pool's size.
    /// </summary>
    public int MaxMappings { get; set; } = 4096;

    /// <summary>TTL of the stub's answers. 60 s: long enough for caches, short enough that a recycled IPv4 mapping is not cached.</summary>
    public uint AnswerTtlSeconds { get; set; } = 60;

    /// <summary>Switch transparent mode on when the daemon starts (also <c>mob transparent on</c> at run time).</summary>
    public bool Enabled { get; set; }

    /// <summary>
    /// Mark (SO_MARK) set on the daemon's own outgoing sockets; the interception rules let marked packets pass,
    /// so the daemon's own connections are never intercepted whatever user it runs as. 0x6d6f62 is "mob".
    /// </summary>
    public uint SocketMark { get; set; } = 0x6d6f62;

    /// <summary>
    /// Mark (and routing-table number) of intercepted UDP (docs/transparent.md, "UDP"): the output rule marks a program's
    /// UDP to a virtual address with it, and an <c>ip rule</c> sends marked packets to that table, whose one route
    /// (every address local on lo) loops them back in to the TPROXY rule. 0x6d6f63: the socket mark's neighbour.
    /// Change it when a mark or table of that number is in use.
    /// </summary>
    public uint UdpMark { get; set; } = 0x6d6f63;

    /// <summary>
    /// UDP flows (program's source endpoint, virtual destination endpoint) carried at once, each with a mobile
    /// connection and a socket; datagrams of further flows are dropped until one ends. 256: far more than one host's
    /// programs keep open towards mobile peers, and few enough that a flood of source ports holds little.
    /// </summary>
    public int MaxUdpSessions { get; set; } = 256;

    /// <summary>
    /// How the stub is installed in the host's resolver when switched on: "auto" (systemd-resolved when it runs,
    /// else <see cref="ResolvConf"/>), "systemd-resolved", "resolv.conf", or "none" (the stub only answers who asks it).
    /// </summary>
    public string Resolver { get; set; } = "auto";

    /// <summary>The resolv.conf edited (backup beside it) when systemd-resolved does not run.</summary>
    public string ResolvConf { get; set; } = "/etc/resolv.conf";

    /// <summary>DNS queries per second per source the stub answers; more are dropped. 200/s: far above what one host's resolver asks.</summary>
    public double QueriesPerSecond { get; set; } = 200;

    /// <summary>Queries a source may send at once before <see cref="QueriesPerSecond"/> applies.</summary>
    public int QueryBurst { get; set; } = 400;

    /// <summary>TCP DNS connections open at once; more are closed at accept. Each holds one 64 KiB buffer.</summary>
    public int MaxTcpClients { get; set; } = 64;

    /// <summary>Time the upstream resolver has to answer a forwarded query before the stub answers SERVFAIL.</summary>
    public TimeSpan UpstreamTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Opportunistic mode (docs/transparent.md, "Opportunistic mode"), also switched by <c>mob transparent on --opportunistic</c>:
    /// TCP connections to ordinary addresses are intercepted too, and become mobile connections when a verified mobile host
    /// owns the address (reverse index and challenge), plain TCP from the daemon otherwise. Off by default.
    /// </summary>
    public bool Opportunistic { get; set; }

    /// <summary>
    /// How long an intercepted connection waits for the owner lookup of an address not in the cache before it goes plain
    /// (the lookup goes on and fills the cache for the next connection). 100 ms: a GNS round trip and a challenge on a
    /// LAN or a nearby GNS fit, and a GNS that does not answer delays a connection by no more than that.
    /// </summary>
    public TimeSpan OpportunisticBudget { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Destination prefixes (CIDR, comma-separated) opportunistic mode leaves alone, besides those it always leaves alone.</summary>
    public string OpportunisticExclude { get; set; } = "";

    /// <summary>Destination TCP ports (comma-separated) opportunistic mode leaves alone.</summary>
    public string OpportunisticExcludePorts { get; set; } = "";

    internal const string ExcludeOption = "Transparent:OpportunisticExclude (--Transparent:OpportunisticExclude)";

    internal const string ExcludePortsOption = "Transparent:OpportunisticExcludePorts (--Transparent:OpportunisticExcludePorts)";

    /// <summary>The prefixes of <see cref="OpportunisticExclude"/>; <see cref="FormatException"/> naming the option when one is not a CIDR.</summary>
    public IReadOnlyList<IPNetwork> ExcludedPrefixes
        => [.. Split(OpportunisticExclude).Select(p => IPNetwork.TryParse(p, out var network) && NoHostBits(p, network) ? network
            : throw new FormatException($"{ExcludeOption}: '{p}' is not a prefix (CIDR) without host bits."))];

    /// <summary>IPNetwork.TryParse clears host bits silently (10.0.0.1/8 is 10.0.0.0/8): refuse them, the text probably meant something else.</summary>
    private static bool NoHostBits(string text, IPNetwork network)
        => IPAddress.TryParse(text.AsSpan(0, text.IndexOf('/', StringComparison.Ordinal) is >= 0 and var slash ? slash : text.Length), out var address)
           && address.Equals(network.BaseAddress);

    /// <summary>The ports of <see cref="OpportunisticExcludePorts"/>; <see cref="FormatException"/> naming the option when one is not 1 to 65535.</summary>
    public IReadOnlyList<ushort> ExcludedPorts
        => [.. Split(OpportunisticExcludePorts).Select(p => ushort.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port != 0 ? port
            : throw new FormatException($"{ExcludePortsOption}: '{p}' is not a port (1 to 65535)."))];

    private static string[] Split(string text) => (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>The stub endpoint, or null when off.</summary>
    public IPEndPoint? DnsEndPoint => EndPointSetting.Parse(Dns, DnsOption);

    /// <summary>The pool parsed.</summary>
    public VirtualAddressPool ParsedPool => VirtualAddressPool.Parse(Ipv4Pool);
}
