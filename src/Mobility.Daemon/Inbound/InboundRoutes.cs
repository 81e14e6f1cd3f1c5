using Mobility.Daemon.Transparent;

namespace Mobility.Daemon.Inbound;

/// <summary>
/// The routes that bring a local application's answers back to a socket bound to a peer's virtual address
/// (docs/transparent.md, "Inbound"). The daemon connects from the virtual address (IP_TRANSPARENT) to
/// 127.0.0.1 or ::1; the application answers from there to the virtual address, and the kernel takes
/// that answer in only if its route is of type local. The routes live in a table of the daemon's own,
/// <see cref="Table"/>, consulted only for packets from the loopback address to a virtual range (one
/// rule per family at <see cref="Priority"/>, before the main table): the host's local table stays as
/// it is, so no other program can bind a virtual address (bind() consults the local table) or send
/// from one (a source address must be local unless the socket is IP_TRANSPARENT, which needs
/// CAP_NET_ADMIN), and connections from programs to virtual addresses (transparent mode's
/// interception) are routed as before. The IPv4 route is typed <c>src 127.0.0.1</c>, so a lookup
/// from no source address picks the loopback one, as transparent mode's route does.
/// </summary>
public static class InboundRoutes
{
    /// <summary>The routing table: "mob" in ASCII, as the socket mark is.</summary>
    public const int Table = 0x6d6f62;

    /// <summary>Before the main table's rule (32766) and clear of the priorities wg-quick and others pick just below it.</summary>
    public const int Priority = 32700;

    private static readonly string Ipv6Range = $"{VirtualAddressPool.Ipv6Prefix}/{VirtualAddressPool.Ipv6PrefixLength}";

    /// <summary>The IPv4 commands (arguments of <c>ip</c>): the local route for the pool, then the rule; run after <see cref="DeleteIpv4"/>, so a crashed daemon's rule is not doubled.</summary>
    public static IReadOnlyList<string[]> AddIpv4(VirtualAddressPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        return
        [
            ["route", "replace", "local", pool.ToString(), "dev", "lo", "src", "127.0.0.1", "table", TableText],
            ["rule", "add", "from", "127.0.0.1", "to", pool.ToString(), "lookup", TableText, "priority", PriorityText],
        ];
    }

    /// <summary>The IPv6 commands: the local route for fd6d:6f62::/32, then the rule.</summary>
    public static IReadOnlyList<string[]> AddIpv6() =>
    [
        ["-6", "route", "replace", "local", Ipv6Range, "dev", "lo", "table", TableText],
        ["-6", "rule", "add", "from", "::1", "to", Ipv6Range, "lookup", TableText, "priority", PriorityText],
    ];

    /// <summary>Removes the IPv4 rule and route of <paramref name="pool"/> (each fails harmlessly when absent).</summary>
    public static IReadOnlyList<string[]> DeleteIpv4(string pool) =>
    [
        ["rule", "del", "from", "127.0.0.1", "to", pool, "lookup", TableText, "priority", PriorityText],
        ["route", "del", "local", pool, "dev", "lo", "table", TableText],
    ];

    /// <summary>Removes the IPv6 rule and route.</summary>
    public static IReadOnlyList<string[]> DeleteIpv6() =>
    [
        ["-6", "rule", "del", "from", "::1", "to", Ipv6Range, "lookup", TableText, "priority", PriorityText],
        ["-6", "route", "del", "local", Ipv6Range, "dev", "lo", "table", TableText],
    ];

    private static string TableText => Table.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string PriorityText => Priority.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
