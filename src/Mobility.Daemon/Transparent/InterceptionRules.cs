using System.Globalization;

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
    public static string Install(VirtualAddressPool pool, uint mark, int ipv4Port, int ipv6Port)
    {
        ArgumentNullException.ThrowIfNull(pool);
        return string.Create(CultureInfo.InvariantCulture, $$"""
            add table {{Family}} {{Table}}
            delete table {{Family}} {{Table}}
            table {{Family}} {{Table}} {
            	chain output {
            		type nat hook output priority -100; policy accept;
            		meta mark 0x{{mark:x8}} return
            		ip daddr {{pool}} meta l4proto tcp redirect to :{{ipv4Port}}
            		ip6 daddr {{VirtualAddressPool.Ipv6Prefix}}/{{VirtualAddressPool.Ipv6PrefixLength}} meta l4proto tcp redirect to :{{ipv6Port}}
            	}
            }

            """);
    }

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
