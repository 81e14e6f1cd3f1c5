using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Mobility.Daemon.Transparent;

namespace Mobility.Daemon.Tests.Transparent;

public sealed class VirtualAddressMapTests : IDisposable
{
    private readonly string _stateDir = Path.Combine(Path.GetTempPath(), "vamap-" + System.Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new();

    public void Dispose()
    {
        if (Directory.Exists(_stateDir))
        {
            Directory.Delete(_stateDir, recursive: true);
        }
    }

    private static HostGuid Guid(int i) => HostGuid.Parse(i.ToString("x8", System.Globalization.CultureInfo.InvariantCulture) + new string('a', 32));

    private VirtualAddressMap Map(string pool = TransparentOptions.DefaultIpv4Pool, int max = 4096, uint ttl = 60)
    {
        var options = new MobilitydOptions { StateDir = _stateDir };
        options.Transparent.Ipv4Pool = pool;
        options.Transparent.MaxMappings = max;
        options.Transparent.AnswerTtlSeconds = ttl;
        return new VirtualAddressMap(Options.Create(options), _time, NullLogger<VirtualAddressMap>.Instance);
    }

    [Fact]
    public void The_ipv6_address_is_the_ula_prefix_then_the_first_96_bits_of_the_guid()
    {
        var guid = HostGuid.Parse("0123456789abcdef0123456789abcdef01234567");

        Assert.Equal(IPAddress.Parse("fd6d:6f62:0123:4567:89ab:cdef:0123:4567"), VirtualAddressPool.Ipv6Of(guid));
        Assert.True(VirtualAddressPool.IsVirtualIpv6(VirtualAddressPool.Ipv6Of(guid)));
        Assert.False(VirtualAddressPool.IsVirtualIpv6(IPAddress.Parse("fd6d:6f63::1")));
        Assert.False(VirtualAddressPool.IsVirtualIpv6(IPAddress.Parse("100.77.0.1")));
    }

    [Theory]
    [InlineData("100.77.0.0/16", 65534, "100.77.0.0", "100.77.255.255", "100.77.0.1", "100.77.255.254")]
    [InlineData("10.9.8.0/30", 2, "10.9.8.0", "10.9.8.3", "10.9.8.1", "10.9.8.2")]
    public void A_pool_leaves_out_its_network_and_broadcast_address(string cidr, int size, string network, string broadcast, string first, string last)
    {
        var pool = VirtualAddressPool.Parse(cidr);

        Assert.Equal(size, pool.Size);
        Assert.False(pool.Contains(IPAddress.Parse(network)));
        Assert.False(pool.Contains(IPAddress.Parse(broadcast)));
        Assert.Equal(IPAddress.Parse(first), pool.AddressAt(0));
        Assert.Equal(IPAddress.Parse(last), pool.AddressAt(size - 1));
        Assert.True(pool.Contains(pool.AddressAt(0).MapToIPv6()));
    }

    [Theory]
    [InlineData("100.77.0.1/16", "host bits")]
    [InlineData("100.77.0.0/31", "/8 to /30")]
    [InlineData("100.77.0.0/7", "/8 to /30")]
    [InlineData("fd00::/64", "IPv4 CIDR")]
    [InlineData("100.77.0.0", "IPv4 CIDR")]
    [InlineData("100.77.0.0/+16", "IPv4 CIDR")]
    public void A_bad_pool_is_refused_with_the_option_named(string cidr, string reason)
    {
        var e = Assert.Throws<FormatException>(() => VirtualAddressPool.Parse(cidr));

        Assert.Contains("Transparent:Ipv4Pool", e.Message, StringComparison.Ordinal);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Both_directions_agree_and_a_peer_keeps_its_addresses()
    {
        var map = Map();
        var a = map.Resolve(Guid(1));
        var b = map.Resolve(Guid(2));

        Assert.NotEqual(a.Ipv4, b.Ipv4);
        Assert.Equal(a, map.Resolve(Guid(1)));
        Assert.True(map.TryGetGuid(a.Ipv4, out var byIpv4));
        Assert.Equal(Guid(1), byIpv4);
        Assert.True(map.TryGetGuid(b.Ipv6, out var byIpv6));
        Assert.Equal(Guid(2), byIpv6);
        Assert.True(map.TryGetGuid(a.Ipv4.MapToIPv6(), out _));
        Assert.False(map.TryGetGuid(IPAddress.Parse("100.77.200.200"), out _));
        Assert.False(map.TryGetGuid(VirtualAddressPool.Ipv6Of(Guid(3)), out _));
        Assert.False(map.TryGetGuid(IPAddress.Parse("192.0.2.1"), out _));
        Assert.Equal(2, map.Count);
    }

    [Fact]
    public void The_mapping_survives_a_restart()
    {
        var first = Map();
        var before = Enumerable.Range(0, 20).Select(i => first.Resolve(Guid(i))).ToArray();

        var second = Map();

        Assert.Equal(20, second.Count);
        foreach (var addresses in before)
        {
            Assert.True(second.TryGetGuid(addresses.Ipv4, out var guid));
            Assert.Equal(addresses.Guid, guid);
            Assert.Equal(addresses, second.Resolve(addresses.Guid));
        }
    }

    [Fact]
    public void Colliding_preferences_take_the_next_free_address()
    {
        // A /30 has two usable addresses; GUIDs 0 and 2 prefer the same one (offset = first four bytes mod 2).
        var map = Map("10.9.8.0/30");

        var a = map.Resolve(Guid(0));
        var b = map.Resolve(Guid(2));

        Assert.Equal(IPAddress.Parse("10.9.8.1"), a.Ipv4);
        Assert.Equal(IPAddress.Parse("10.9.8.2"), b.Ipv4);
    }

    [Fact]
    public void At_the_cap_the_least_recently_resolved_peer_gives_its_address_up_once_its_answers_expired()
    {
        var map = Map(max: 2, ttl: 60);
        var a = map.Resolve(Guid(1));
        map.Resolve(Guid(2));
        _time.Advance(TimeSpan.FromSeconds(30));
        map.Resolve(Guid(2));

        // Guid 1 was resolved 30 s ago, inside the answer TTL: a cache may still hold its address.
        var full = Assert.Throws<VirtualAddressesFullException>(() => map.Resolve(Guid(3)));
        Assert.Contains("Transparent:MaxMappings", full.Message, StringComparison.Ordinal);

        _time.Advance(TimeSpan.FromSeconds(31));
        var c = map.Resolve(Guid(3));

        Assert.Equal(2, map.Count);
        Assert.False(map.TryGetGuid(a.Ipv6, out _));
        Assert.True(map.TryGetGuid(c.Ipv4, out var owner));
        Assert.Equal(Guid(3), owner);
        Assert.True(map.TryGetGuid(VirtualAddressPool.Ipv6Of(Guid(2)), out _));
    }

    [Fact]
    public void Damaged_lines_and_lines_of_another_pool_are_skipped()
    {
        Directory.CreateDirectory(_stateDir);
        File.WriteAllText(Path.Combine(_stateDir, VirtualAddressMap.FileName),
            $"# comment\n100.77.0.9 {Guid(1)}\n100.78.0.9 {Guid(2)}\ngarbage\n100.77.0.9 {Guid(3)}\n100.77.0.10 {Guid(1)}\n100.77.0.11 nothex\n\n");

        var map = Map();

        Assert.Equal(1, map.Count);
        Assert.True(map.TryGetGuid(IPAddress.Parse("100.77.0.9"), out var guid));
        Assert.Equal(Guid(1), guid);
    }
}
