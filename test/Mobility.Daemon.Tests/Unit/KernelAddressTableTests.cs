using System.Net;
using Mobility.Daemon.Addresses;
using Mobility.Net.Netlink;

namespace Mobility.Daemon.Tests.Unit;

/// <summary>Which of the kernel's addresses the monitor publishes, from the netlink messages a kernel sends.</summary>
public sealed class KernelAddressTableTests
{
    private const int Eth0 = 2;
    private const int Wlan0 = 3;
    private const uint Up = NetlinkRouteReader.IffUp | NetlinkRouteReader.IffRunning;

    [Fact]
    public void A_tentative_address_is_published_once_duplicate_detection_clears_it()
    {
        var table = Table(Add(Eth0, "2001:db8:1::10", NetlinkRouteReader.IfaFTentative));
        Assert.Empty(Usable(table));

        Apply(table, Add(Eth0, "2001:db8:1::10", NetlinkRouteReader.IfaFPermanent));
        Assert.Equal(["2001:db8:1::10"], Usable(table));
    }

    [Fact]
    public void An_optimistic_tentative_address_is_usable()
    {
        var table = Table(Add(Eth0, "2001:db8:1::10", NetlinkRouteReader.IfaFTentative | NetlinkRouteReader.IfaFOptimistic));
        Assert.Equal(["2001:db8:1::10"], Usable(table));
    }

    [Fact]
    public void A_failed_duplicate_detection_is_never_published()
    {
        var table = Table(Add(Eth0, "2001:db8:1::10", NetlinkRouteReader.IfaFTentative | NetlinkRouteReader.IfaFDadFailed));
        Assert.Empty(Usable(table));
    }

    [Fact]
    public void A_deprecated_address_is_published_only_while_its_family_has_no_preferred_one()
    {
        var table = Table(
            Add(Eth0, "2001:db8:1::a", NetlinkRouteReader.IfaFDeprecated, preferred: 0),
            Add(Eth0, "192.0.2.10", 0));
        // The only IPv6 address, deprecated: still better than none (IPv4 does not count).
        Assert.Equal(["192.0.2.10", "2001:db8:1::a"], Usable(table));

        Apply(table, Add(Eth0, "2001:db8:1::b", 0));
        Assert.Equal(["192.0.2.10", "2001:db8:1::b"], Usable(table));

        // A zero preferred lifetime counts as deprecated even without the flag.
        Apply(table, Add(Eth0, "2001:db8:1::b", 0, preferred: 0));
        Assert.Equal(["192.0.2.10", "2001:db8:1::a", "2001:db8:1::b"], Usable(table));
    }

    [Fact]
    public void Addresses_of_a_link_that_is_down_or_gone_are_not_published()
    {
        var table = Table(
            NetlinkRouteWriter.Link(false, Eth0, Up),
            NetlinkRouteWriter.Link(false, Wlan0, Up),
            Add(Eth0, "192.0.2.10", 0),
            Add(Wlan0, "198.51.100.10", 0));
        Assert.Equal(["192.0.2.10", "198.51.100.10"], Usable(table));

        Apply(table, NetlinkRouteWriter.Link(false, Eth0, NetlinkRouteReader.IffUp));
        Assert.Equal(["198.51.100.10"], Usable(table));

        Apply(table, NetlinkRouteWriter.Link(true, Wlan0, 0));
        Assert.Empty(Usable(table));
        Apply(table, NetlinkRouteWriter.Link(false, Wlan0, Up));
        Assert.Empty(Usable(table));
    }

    [Fact]
    public void A_removed_address_is_forgotten_and_loopback_and_link_local_follow_the_options()
    {
        var table = Table(Add(1, "127.0.0.1", 0), Add(1, "::1", 0), Add(Eth0, "fe80::1", 0), Add(Eth0, "2001:db8:1::10", 0));
        Assert.Equal(["2001:db8:1::10"], Usable(table));
        Assert.Equal(["127.0.0.1", "::1", "2001:db8:1::10", "fe80::1"],
            table.Usable(allowLoopback: true, allowLinkLocal: true).Select(a => a.ToString()));

        Assert.True(table.Apply(Event(NetlinkRouteWriter.Address(true, Eth0, IPAddress.Parse("2001:db8:1::10"), 64, 0))));
        Assert.Empty(Usable(table));
    }

    [Fact]
    public void The_table_holds_a_bounded_number_of_addresses()
    {
        var table = new KernelAddressTable();
        for (var i = 0; i < KernelAddressTable.MaxEntries + 100; i++)
        {
            table.Apply(Event(NetlinkRouteWriter.Address(false, Eth0, new IPAddress([10, 1, (byte)(i >> 8), (byte)i]), 32, 0)));
        }

        Assert.Equal(KernelAddressTable.MaxEntries, table.Count);
        Assert.Equal(Mobility.Protocol.Records.GnsRecord.MaxLocators - 1, Usable(table).Length);
    }

    private static byte[] Add(int index, string address, uint flags, uint preferred = uint.MaxValue) =>
        NetlinkRouteWriter.Address(false, index, IPAddress.Parse(address),
            (byte)(address.Contains(':', StringComparison.Ordinal) ? 64 : 24), flags, preferred);

    private static KernelAddressTable Table(params byte[][] messages)
    {
        var table = new KernelAddressTable();
        Apply(table, messages);
        return table;
    }

    private static void Apply(KernelAddressTable table, params byte[][] messages)
    {
        foreach (var message in messages)
        {
            table.Apply(Event(message));
        }
    }

    private static NetlinkEvent Event(byte[] message)
    {
        var events = new List<NetlinkEvent>();
        NetlinkRouteReader.Read(message, events);
        return Assert.Single(events);
    }

    private static string[] Usable(KernelAddressTable table) =>
        [.. table.Usable(allowLoopback: false, allowLinkLocal: false).Select(a => a.ToString())];
}
