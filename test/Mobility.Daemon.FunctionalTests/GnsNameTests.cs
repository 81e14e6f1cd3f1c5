using Mobility.Daemon.GnsServers;
using Mobility.Gns.Client;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>
/// <c>--gns</c> given as a DNS name, resolved by a real DNS server: the GNS's own DNS front end, where
/// <c>home.gns.test</c> answers the locators of the record named "home" with that record's TTL. The GNS the name stands
/// for listens on ::1 only; at first the name answers 127.0.0.3, where no GNS is (a host on a network where the name
/// answers differently, or only the other family works).
/// </summary>
public sealed class GnsNameTests
{
    private const string Zone = "gns.test";

    [Fact]
    public async Task A_gns_name_is_resolved_again_on_an_address_change_and_the_client_follows_its_new_answer()
    {
        await using var dns = await GnsServerInstance.StartAsync(dnsZone: Zone);
        await using var gns = await GnsServerInstance.StartAsync(address: "[::1]");
        using var home = HostKey.Generate();
        await using var admin = dns.CreateClient(cache: false);
        await admin.RegisterAsync(GnsRecord.Create(home, 1, [new Locator(IPAddress.Parse("127.0.0.3"), 7353)], ttlSeconds: 3600, name: "home")).WithTimeout();
        Assert.True(GnsServerList.TryParse($"home.{Zone}:{gns.Udp.Port}", out var list, out _));
        var resolver = new GnsNameResolver { Servers = [dns.Dns!] };

        var (first, ttl) = await list.ResolveAsync(resolver, null, CancellationToken.None).WithTimeout();
        Assert.Equal([new IPEndPoint(IPAddress.Parse("127.0.0.3"), gns.Udp.Port)], first);
        Assert.Equal(TimeSpan.FromHours(1), ttl);

        // An hour's TTL: only the address change makes the client ask again.
        await using var client = new GnsClient(new GnsClientOptions
        {
            Server = first[0],
            Resolve = list.Resolver(resolver, null),
            CacheEnabled = false,
            RequestTimeout = TimeSpan.FromMilliseconds(200),
        });
        await admin.RegisterAsync(GnsRecord.Create(home, 2, [new Locator(IPAddress.IPv6Loopback, 7353)], ttlSeconds: 3600, name: "home")).WithTimeout();
        client.NotifyLocalAddressChanged();

        var found = new IPEndPoint(IPAddress.IPv6Loopback, gns.Udp.Port);
        await TestTimeout.Eventually(() => client.Server.Equals(found), "the client uses the address the name answers now");
        Assert.Equal([new GnsEndPoint(found, null)], client.EndPoints);
        using var key = HostKey.Generate();
        var registered = await client.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Parse("fd00::5"), 7391)])).WithTimeout();
        Assert.Equal(IPAddress.IPv6Loopback, registered.Observed!.Address);
    }

    [Fact]
    public async Task A_gns_name_is_resolved_again_when_its_TTL_runs_out_without_any_address_change()
    {
        await using var dns = await GnsServerInstance.StartAsync(dnsZone: Zone);
        await using var gns = await GnsServerInstance.StartAsync(address: "[::1]");
        using var home = HostKey.Generate();
        await using var admin = dns.CreateClient(cache: false);
        await admin.RegisterAsync(GnsRecord.Create(home, 1, [new Locator(IPAddress.Parse("127.0.0.3"), 7353)], ttlSeconds: 1, name: "home")).WithTimeout();
        Assert.True(GnsServerList.TryParse($"home.{Zone}:{gns.Udp.Port}", out var list, out _));
        var resolver = new GnsNameResolver { Servers = [dns.Dns!] };
        await using var client = new GnsClient(new GnsClientOptions
        {
            Server = new IPEndPoint(IPAddress.Parse("127.0.0.3"), gns.Udp.Port),
            Resolve = list.Resolver(resolver, null),
            // A one-second TTL is respected down to this bound.
            ResolveMinInterval = TimeSpan.FromMilliseconds(100),
            CacheEnabled = false,
            RequestTimeout = TimeSpan.FromMilliseconds(200),
        });

        await admin.RegisterAsync(GnsRecord.Create(home, 2, [new Locator(IPAddress.IPv6Loopback, 7353)], ttlSeconds: 1, name: "home")).WithTimeout();

        await TestTimeout.Eventually(() => client.Server.Equals(new IPEndPoint(IPAddress.IPv6Loopback, gns.Udp.Port)), "the client follows the name's new answer");
    }
}
