namespace Mobility.Daemon.FunctionalTests;

/// <summary>
/// Issue 13, item 1: throw-away keys that claim an owner's address must not hide the owner from
/// get_guid_from_ip. Real GNS (UDP, in-memory store), real daemons, real challenges on loopback.
/// </summary>
public sealed class AddressClaimFloodTests
{
    [Fact]
    public async Task Forty_throwaway_keys_sorting_below_the_owner_do_not_hide_the_owner_of_an_address()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var holder = await DaemonInstance.StartAsync(gns.CreateClient());
        await using var asker = await DaemonInstance.StartAsync(gns.CreateClient());
        await using var attacker = gns.CreateClient(cache: false);
        await TestTimeout.Eventually(async () => (await attacker.ReverseAsync(holder.Address)).Contains(holder.Guid), "the holder registered");

        // Forty datagrams: forty fresh keys whose GUIDs sort below the owner's, each claiming its address.
        var liars = new List<HostKey>();
        try
        {
            while (liars.Count < 40)
            {
                var key = HostKey.Generate();
                if (key.Guid.CompareTo(holder.Guid) < 0)
                {
                    liars.Add(key);
                    await attacker.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(holder.Address, 7391)], 60, null)).WithTimeout();
                }
                else
                {
                    key.Dispose();
                }
            }

            var result = await asker.Api.GetGuidFromIpAsync(holder.Address).WithTimeout();

            Assert.Equal([holder.Guid], result.Verified.ToArray());
            Assert.DoesNotContain(result.Refused, r => r.Guid == holder.Guid);
            Assert.All(result.Refused, r => Assert.Contains(liars, l => l.Guid == r.Guid));
        }
        finally
        {
            liars.ForEach(l => l.Dispose());
        }
    }
}
