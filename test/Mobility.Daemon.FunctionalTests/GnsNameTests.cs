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
        await using var lab = await NameLab.StartAsync(ttlSeconds: 3600);

        var (first, ttl) = await lab.List.ResolveAsync(lab.Resolver, null, CancellationToken.None).WithTimeout();
        Assert.Equal([lab.Nowhere], first);
        Assert.Equal(TimeSpan.FromHours(1), ttl);

        // An hour's TTL: only the address change makes the client ask again.
        await using var client = new GnsClient(new GnsClientOptions
        {
            Server = first[0],
            Resolve = lab.List.Resolver(lab.Resolver, null),
            CacheEnabled = false,
            RequestTimeout = TimeSpan.FromMilliseconds(200),
        });
        await lab.AnswerGnsAsync();
        client.NotifyLocalAddressChanged();

        await TestTimeout.Eventually(() => client.Server.Equals(lab.Found), "the client uses the address the name answers now");
        Assert.Equal([new GnsEndPoint(lab.Found, null)], client.EndPoints);
        using var key = HostKey.Generate();
        var registered = await client.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Parse("fd00::5"), 7391)])).WithTimeout();
        Assert.Equal(IPAddress.IPv6Loopback, registered.Observed!.Address);
    }

    [Fact]
    public async Task A_gns_name_is_resolved_again_when_its_TTL_runs_out_without_any_address_change()
    {
        await using var lab = await NameLab.StartAsync(ttlSeconds: 1);
        await using var client = new GnsClient(new GnsClientOptions
        {
            Server = lab.Nowhere,
            Resolve = lab.List.Resolver(lab.Resolver, null),
            // A one-second TTL is respected down to this bound.
            ResolveMinInterval = TimeSpan.FromMilliseconds(100),
            CacheEnabled = false,
            RequestTimeout = TimeSpan.FromMilliseconds(200),
        });

        await lab.AnswerGnsAsync();

        await TestTimeout.Eventually(() => client.Server.Equals(lab.Found), "the client follows the name's new answer");
    }

    /// <summary>The DNS (a GNS's DNS front end), the GNS on ::1 the name stands for, and the name answering 127.0.0.3 at first.</summary>
    private sealed class NameLab : IAsyncDisposable
    {
        private GnsServerInstance _dns = null!;
        private GnsServerInstance _gns = null!;
        private Mobility.Gns.Client.GnsClient _admin = null!;
        private uint _ttl;

        public HostKey Home { get; } = HostKey.Generate();

        public GnsServerList List { get; private set; } = null!;

        public GnsNameResolver Resolver { get; private set; } = null!;

        /// <summary>Where the name points at first: no GNS there.</summary>
        public IPEndPoint Nowhere => new(IPAddress.Parse("127.0.0.3"), _gns.Udp.Port);

        /// <summary>The GNS itself.</summary>
        public IPEndPoint Found => new(IPAddress.IPv6Loopback, _gns.Udp.Port);

        public static async Task<NameLab> StartAsync(uint ttlSeconds)
        {
            var lab = new NameLab { _ttl = ttlSeconds };
            lab._dns = await GnsServerInstance.StartAsync(dnsZone: Zone);
            lab._gns = await GnsServerInstance.StartAsync(address: "[::1]");
            lab._admin = lab._dns.CreateClient(cache: false);
            await lab._admin.RegisterAsync(GnsRecord.Create(lab.Home, 1, [new Locator(IPAddress.Parse("127.0.0.3"), 7353)], ttlSeconds, name: "home")).WithTimeout();
            Assert.True(GnsServerList.TryParse($"home.{Zone}:{lab._gns.Udp.Port}", out var list, out _));
            lab.List = list;
            lab.Resolver = new GnsNameResolver { Servers = [lab._dns.Dns!] };
            return lab;
        }

        /// <summary>From now on the name answers the GNS's address (as a host on another network may be told).</summary>
        public Task AnswerGnsAsync()
            => _admin.RegisterAsync(GnsRecord.Create(Home, 2, [new Locator(IPAddress.IPv6Loopback, 7353)], _ttl, name: "home")).WithTimeout();

        public async ValueTask DisposeAsync()
        {
            await _admin.DisposeAsync();
            await _gns.DisposeAsync();
            await _dns.DisposeAsync();
            Home.Dispose();
        }
    }
}
