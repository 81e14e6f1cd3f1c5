using System.Collections.Immutable;

namespace Mobility.Daemon.FunctionalTests;

public sealed class ReverseLookupTests
{
    [Fact]
    public async Task Get_guid_from_ip_returns_only_verified_guids_when_the_index_lists_a_false_claim()
    {
        var gns = new FakeGns();
        await using var holder = await DaemonInstance.StartAsync(gns.CreateClient());
        await using var asker = await DaemonInstance.StartAsync(gns.CreateClient());
        await TestTimeout.Eventually(() => gns.Get(holder.Guid) is not null, "the holder registered");

        // Anyone may put any address in a record: the GNS index now lists a liar at the holder's address.
        using var liar = HostKey.Generate();
        gns.Put(GnsRecord.Create(liar, 1, [new Locator(holder.Address, 7391)], 60, null));

        var result = await asker.Api.GetGuidFromIpAsync(holder.Address).WithTimeout();

        Assert.Equal([holder.Guid], result.Verified.ToArray());
        var refused = Assert.Single(result.Refused);
        Assert.Equal(liar.Guid, refused.Guid);
        Assert.Equal("timeout", refused.Reason);
    }

    [Fact]
    public async Task Get_guid_from_ip_of_an_unknown_address_is_empty()
    {
        var gns = new FakeGns();
        await using var asker = await DaemonInstance.StartAsync(gns.CreateClient());

        var result = await asker.Api.GetGuidFromIpAsync(IPAddress.Parse("192.0.2.77")).WithTimeout();

        Assert.Empty(result.Verified);
        Assert.Empty(result.Refused);
    }

    [Fact]
    public async Task Get_ip_returns_every_address_of_the_record_by_guid_and_by_name()
    {
        var gns = new FakeGns();
        var second = DaemonInstance.NewAddress();
        await using var peer = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--address", second.ToString(), "--name", "peer-host"]);
        await using var asker = await DaemonInstance.StartAsync(gns.CreateClient());
        await TestTimeout.Eventually(() => gns.Get(peer.Guid) is not null, "the peer registered");

        var byGuid = await asker.Api.GetIpAsync(peer.Guid.ToString()).WithTimeout();
        var byName = await asker.Api.GetIpAsync("Peer-Host").WithTimeout();

        Assert.NotNull(byGuid);
        Assert.Equal(new[] { peer.Address, second }.Order(AddressOrder.Instance), byGuid.Locators.Select(l => l.Address).Order(AddressOrder.Instance));
        Assert.All(byGuid.Locators, l => Assert.Equal(7391, l.Port));
        Assert.Equal(byGuid.Version, byName!.Version);
        Assert.Null(await asker.Api.GetIpAsync(HostKey.Generate().Guid.ToString()).WithTimeout());
    }

    internal sealed class AddressOrder : IComparer<IPAddress>
    {
        public static readonly AddressOrder Instance = new();

        public int Compare(IPAddress? x, IPAddress? y) => x!.GetAddressBytes().AsSpan().SequenceCompareTo(y!.GetAddressBytes());
    }
}
