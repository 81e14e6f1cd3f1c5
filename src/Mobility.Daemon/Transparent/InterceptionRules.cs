using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// The nftables table of transparent mode (docs/transparent.md, "Rules"): one chain on the output NAT
/// hook that REDIRECTs every TCP connection to a virtual address to the interception listener (its
/// IPv4 and IPv6 ports), except packets with the daemon's mark. REDIRECT keeps the original
/// destination for SO_ORIGINAL_DST; TPROXY would need policy routing and works on the prerouting
/// hook only, so it would not see this host's own connections without a loop through a device.
/// Installed and removed as one nft transaction each.
/// </summary>
public static class InterceptionRules
{
    public const string Family = "inet";
    public const string Table = "mobility";

    /// <summary>The table, replacing any earlier one of the same name (a crashed daemon's) in the same transaction.</summary>
    /// <remarks>
    /// With <paramref name="opportunistic"/> (docs/transparent.md, "Opportunistic mode"), the same chain then sends every
    /// other TCP connection to the listener too, except those to this host's own addresses (fib), loopback, link-local
    /// (a scope the daemon could not reconnect with), multicast, and the excluded addresses, prefixes and ports: one
    /// rule per entry, so that overlapping entries never make an anonymous set fail.
    /// </remarks>
    public static string Install(VirtualAddressPool pool, uint mark, int ipv4Port, int ipv6Port, OpportunisticRules? opportunistic = null)
    {
        ArgumentNullException.ThrowIfNull(pool);
        var rules = string.Create(CultureInfo.InvariantCulture, $$"""
            add table {{Family}} {{Table}}
            delete table {{Family}} {{Table}}
            table {{Family}} {{Table}} {
            	chain output {
            		type nat hook output priority -100; policy accept;
            		meta mark 0x{{mark:x8}} return
            		ip daddr {{pool}} meta l4proto tcp redirect to :{{ipv4Port}}
            		ip6 daddr {{VirtualAddressPool.Ipv6Prefix}}/{{VirtualAddressPool.Ipv6PrefixLength}} meta l4proto tcp redirect to :{{ipv6Port}}

            """);
        if (opportunistic is not null)
        {
            rules += Opportunistic(opportunistic, ipv4Port, ipv6Port);
        }

        return rules + "\t}\n}\n";
    }

    /// <summary>
    /// The priority of the policy-routing rule that sends marked UDP to <see cref="UdpRoutes"/>'s table: before
    /// the main table (32766), after the local one (0), away from the numbers other tools pick (wg-quick
    /// 32764-32765, Tailscale 5210-5270).
    /// </summary>
    public const int UdpRulePriority = 7170;

    /// <summary>
    /// The UDP chains (docs/transparent.md, "UDP"), added to the same table in the same transaction as
    /// <see cref="Install"/>'s: on the output route hook, UDP to a virtual address gets
    /// <paramref name="udpMark"/> (unless it carries the daemon's own mark), so the kernel routes it by the
    /// mark's table (a local route on lo, <see cref="UdpRoutes"/>) back in through lo; there, on the
    /// prerouting hook, TPROXY hands it to the daemon's transparent UDP socket on 127.0.0.1:<paramref name="ipv4Port"/>
    /// ([::1]:<paramref name="ipv6Port"/>) unchanged, or to the session's socket bound to the virtual
    /// address and connected to the program. <paramref name="ipv6Port"/> null: no IPv6 lines (no ::1).
    /// </summary>
    public static string InstallUdp(VirtualAddressPool pool, uint mark, uint udpMark, int ipv4Port, int? ipv6Port)
    {
        ArgumentNullException.ThrowIfNull(pool);
        var ipv6 = $"{VirtualAddressPool.Ipv6Prefix}/{VirtualAddressPool.Ipv6PrefixLength}";
        var markIpv6 = ipv6Port is null ? "" : $"\t\tip6 daddr {ipv6} meta l4proto udp meta mark set 0x{udpMark:x8}\n";
        var tproxyIpv6 = ipv6Port is null ? ""
            : $"\t\tiif \"lo\" ip6 daddr {ipv6} meta l4proto udp tproxy ip6 to [::1]:{ipv6Port} meta mark set 0x{udpMark:x8} accept\n";
        return string.Create(CultureInfo.InvariantCulture, $$"""
            table {{Family}} {{Table}} {
            	chain udp-output {
            		type route hook output priority mangle; policy accept;
            		meta mark 0x{{mark:x8}} return
            		ip daddr {{pool}} meta l4proto udp meta mark set 0x{{udpMark:x8}}
            {{markIpv6}}	}
            	chain udp-prerouting {
            		type filter hook prerouting priority mangle; policy accept;
            		meta mark 0x{{mark:x8}} return
            		iif "lo" ip daddr {{pool}} meta l4proto udp tproxy ip to 127.0.0.1:{{ipv4Port}} meta mark set 0x{{udpMark:x8}} accept
            {{tproxyIpv6}}	}
            }

            """);
    }

    /// <summary>
    /// The policy routing of intercepted UDP: packets with <paramref name="udpMark"/> are looked up in the table
    /// numbered <paramref name="udpMark"/>, whose one route makes every address local on lo; so a program's
    /// datagram marked on output loops back in through lo, and one TPROXY marked on prerouting is delivered
    /// to this host. IPv4, then IPv6 (the caller leaves the IPv6 pair out where ::1 does not exist). With
    /// <paramref name="remove"/>, the commands that delete them by the same selectors (nothing else at that
    /// priority or in other tables).
    /// </summary>
    public static IReadOnlyList<string[]> UdpRoutes(uint udpMark, bool remove = false)
    {
        var mark = udpMark.ToString(CultureInfo.InvariantCulture);
        var priority = UdpRulePriority.ToString(CultureInfo.InvariantCulture);
        var (rule, route) = remove ? ("del", "del") : ("add", "replace");
        string[] ipv4Rule = ["rule", rule, "fwmark", mark, "lookup", mark, "priority", priority];
        string[] ipv4Route = ["route", route, "local", "0.0.0.0/0", "dev", "lo", "table", mark];
        return [ipv4Rule, ipv4Route, ["-6", .. ipv4Rule], ["-6", .. ipv4Route[..3], "::/0", .. ipv4Route[4..]]];
    }

    private static string Opportunistic(OpportunisticRules rules, int ipv4Port, int ipv6Port)
    {
        var text = new StringBuilder();
        text.Append("\t\tmeta l4proto != tcp return\n\t\tfib daddr type local return\n");
        foreach (var prefix in AlwaysExcluded.Concat(rules.ExcludedAddresses.Select(a => new IPNetwork(a, a.AddressFamily == AddressFamily.InterNetwork ? 32 : 128)))
                     .Concat(rules.ExcludedPrefixes).Distinct())
        {
            var family = prefix.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? "ip" : "ip6";
            text.Append(CultureInfo.InvariantCulture, $"\t\t{family} daddr {prefix} return\n");
        }

        foreach (var port in rules.ExcludedPorts.Distinct())
        {
            text.Append(CultureInfo.InvariantCulture, $"\t\ttcp dport {port} return\n");
        }

        text.Append(CultureInfo.InvariantCulture, $"\t\tmeta nfproto ipv4 meta l4proto tcp redirect to :{ipv4Port}\n");
        text.Append(CultureInfo.InvariantCulture, $"\t\tmeta nfproto ipv6 meta l4proto tcp redirect to :{ipv6Port}\n");
        return text.ToString();
    }

    /// <summary>Destinations opportunistic mode never intercepts: loopback, link-local, multicast (no TCP), unspecified.</summary>
    public static IReadOnlyList<IPNetwork> AlwaysExcluded { get; } =
    [
        IPNetwork.Parse("0.0.0.0/8"), IPNetwork.Parse("127.0.0.0/8"), IPNetwork.Parse("169.254.0.0/16"), IPNetwork.Parse("224.0.0.0/3"),
        IPNetwork.Parse("::/127"), IPNetwork.Parse("fe80::/10"), IPNetwork.Parse("ff00::/8"),
    ];

    /// <summary>Deletes the table if it is there (no error when it is not).</summary>
    public static string Remove() => $"add table {Family} {Table}\ndelete table {Family} {Table}\n";

    /// <summary>
    /// The routes that let connect() reach the output hook: without one, a connection to a virtual address
    /// fails with "network unreachable" before any rule runs. On lo, which every host has, with the loopback
    /// address as the source: the program's socket then runs from 127.0.0.1 (::1) to the listener, and no
    /// move of the host's real addresses touches it. REDIRECT sends the packets to the listener.
    /// </summary>
    public static IReadOnlyList<string[]> AddRoutes(VirtualAddressPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        return
        [
            ["route", "replace", pool.ToString(), "dev", "lo", "src", "127.0.0.1"],
            ["-6", "route", "replace", $"{VirtualAddressPool.Ipv6Prefix}/{VirtualAddressPool.Ipv6PrefixLength}", "dev", "lo", "src", "::1"],
        ];
    }

    public static IReadOnlyList<string[]> DeleteRoutes(string pool) =>
    [
        ["route", "del", pool, "dev", "lo"],
        ["-6", "route", "del", $"{VirtualAddressPool.Ipv6Prefix}/{VirtualAddressPool.Ipv6PrefixLength}", "dev", "lo"],
    ];
}

/// <summary>
/// What opportunistic mode leaves alone besides <see cref="InterceptionRules.AlwaysExcluded"/>: the daemon's GNS and relay
/// addresses (their connections carry no mark), and the prefixes and ports of the options.
/// </summary>
public sealed record OpportunisticRules(IReadOnlyList<IPAddress> ExcludedAddresses, IReadOnlyList<IPNetwork> ExcludedPrefixes, IReadOnlyList<ushort> ExcludedPorts);
