namespace Mobility.Protocol.Tests.Records;

public class LocatorTests
{
    [Theory]
    [InlineData("192.0.2.1:80", "192.0.2.1", 80, LocatorKind.Host)]
    [InlineData("192.0.2.1:65535", "192.0.2.1", 65535, LocatorKind.Host)]
    [InlineData("192.0.2.1:1/host", "192.0.2.1", 1, LocatorKind.Host)]
    [InlineData("192.0.2.1:4433/observed", "192.0.2.1", 4433, LocatorKind.Observed)]
    [InlineData("192.0.2.1:4433/relay", "192.0.2.1", 4433, LocatorKind.Relay)]
    [InlineData("192.0.2.1:4433/RELAY", "192.0.2.1", 4433, LocatorKind.Relay)]
    [InlineData("[2001:db8::1]:443", "2001:db8::1", 443, LocatorKind.Host)]
    [InlineData("[2001:DB8::1]:443/Observed", "2001:db8::1", 443, LocatorKind.Observed)]
    [InlineData("[::1]:7353", "::1", 7353, LocatorKind.Host)]
    public void Valid_locator_text_parses(string text, string address, int port, LocatorKind kind)
    {
        Assert.True(Locator.TryParse(text, out var locator));

        Assert.Equal(IPAddress.Parse(address), locator.Address);
        Assert.Equal(port, locator.Port);
        Assert.Equal(kind, locator.Kind);
        Assert.Equal(new IPEndPoint(IPAddress.Parse(address), port), locator.EndPoint);
    }

    [Fact]
    public void Ipv4_mapped_ipv6_locator_is_normalized_to_ipv4()
    {
        Assert.True(Locator.TryParse("[::ffff:192.0.2.1]:80/relay", out var locator));

        Assert.Equal(AddressFamily.InterNetwork, locator.Address.AddressFamily);
        Assert.Equal(IPAddress.Parse("192.0.2.1"), locator.Address);
        Assert.Equal(LocatorKind.Relay, locator.Kind);
    }

    [Fact]
    public void Ipv6_scope_id_is_dropped()
    {
        Assert.True(Locator.TryParse("[fe80::1%2]:80", out var locator));

        Assert.Equal(0, locator.Address.ScopeId);
        Assert.Equal(IPAddress.Parse("fe80::1"), locator.Address);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("192.0.2.1")]               // no port
    [InlineData("192.0.2.1:")]
    [InlineData("192.0.2.1:0")]             // port 0
    [InlineData("192.0.2.1:65536")]
    [InlineData("192.0.2.1:-1")]
    [InlineData("192.0.2.1:+80")]
    [InlineData("192.0.2.1: 80")]
    [InlineData("192.0.2.1:80 ")]
    [InlineData("192.0.2.1:8O")]
    [InlineData(":80")]
    [InlineData("example.com:80")]
    [InlineData("192.0.2.256:80")]
    [InlineData("[2001:db8::1]")]           // no port
    [InlineData("[2001:db8::1]:0")]
    [InlineData("2001:db8::1")]             // no brackets: the last group is not a port
    [InlineData("2001:db8::1:80")]
    [InlineData("[2001:db8::1]:80/")]
    [InlineData("192.0.2.1:80/")]
    [InlineData("192.0.2.1:80/tunnel")]
    [InlineData("192.0.2.1:80/host/relay")]
    [InlineData("192.0.2.1:80/relay/host")]
    [InlineData("/host")]
    public void Invalid_locator_text_is_refused(string? text)
    {
        Assert.False(Locator.TryParse(text, out var locator));
        Assert.Equal(default, locator);
    }

    [Theory]
    [InlineData("1:80")]                // would be 0.0.0.1
    [InlineData("10.1:80")]             // would be 10.0.0.1
    [InlineData("10.1.2:80")]           // would be 10.1.0.2
    [InlineData("0x7f.1:80")]           // would be 127.0.0.1
    [InlineData("010.0.0.1:80")]        // octal: would be 8.0.0.1
    [InlineData("192.0.2.01:80")]
    [InlineData("4294967295:80")]       // would be 255.255.255.255
    public void Ipv4_shorthand_that_would_silently_mean_another_address_is_refused(string text)
    {
        Assert.False(Locator.TryParse(text, out var locator));
        Assert.Equal(default, locator);
    }

    [Fact]
    public void Locator_text_longer_than_100_characters_is_refused()
    {
        var padded = "[2001:0db8:0000:0000:0000:0000:0000:0001]:443/observed";
        Assert.True(Locator.TryParse(padded, out _));

        Assert.False(Locator.TryParse(new string(' ', 60) + padded, out _));
        Assert.False(Locator.TryParse("192.0.2.1:80/" + new string('h', 100), out _));
    }

    [Theory]
    [InlineData("192.0.2.1:80/host")]
    [InlineData("198.51.100.7:50000/observed")]
    [InlineData("[2001:db8:ffff::2]:443/relay")]
    public void Text_form_round_trips(string text)
    {
        Assert.True(Locator.TryParse(text, out var locator));

        Assert.Equal(text, locator.ToString());
        Assert.True(Locator.TryParse(locator.ToString(), out var again));
        Assert.Equal(locator, again);
    }

    [Fact]
    public void Unknown_kind_is_shown_as_its_number()
    {
        var locator = new Locator(IPAddress.Loopback, 1, (LocatorKind)9);

        Assert.Equal("127.0.0.1:1/9", locator.ToString());
    }

    [Theory]
    [InlineData("host", LocatorKind.Host)]
    [InlineData("Observed", LocatorKind.Observed)]
    [InlineData("relay", LocatorKind.Relay)]
    public void Kind_names_parse_case_insensitively(string text, LocatorKind expected)
    {
        Assert.True(Locator.TryParseKind(text, out var kind));
        Assert.Equal(expected, kind);
    }

    [Theory]
    [InlineData("")]
    [InlineData("1")]
    [InlineData("hosts")]
    [InlineData(" host")]
    public void Unknown_kind_names_are_refused(string text)
    {
        Assert.False(Locator.TryParseKind(text, out _));
    }

    [Theory]
    [InlineData("::ffff:10.1.2.3", "10.1.2.3")]
    [InlineData("10.1.2.3", "10.1.2.3")]
    [InlineData("2001:db8::5", "2001:db8::5")]
    [InlineData("::", "::")]
    [InlineData("::10.1.2.3", "::10.1.2.3")]   // IPv4-compatible (deprecated) is not IPv4-mapped
    public void Normalize_maps_only_ipv4_mapped_addresses_to_ipv4(string input, string expected)
    {
        var normalized = Locator.Normalize(IPAddress.Parse(input));

        Assert.Equal(IPAddress.Parse(expected), normalized);
        Assert.Equal(IPAddress.Parse(expected).AddressFamily, normalized.AddressFamily);
    }

    [Fact]
    public void Normalize_drops_the_scope_id()
    {
        var scoped = IPAddress.Parse("fe80::1%7");
        Assert.Equal(7, scoped.ScopeId);

        var normalized = Locator.Normalize(scoped);

        Assert.Equal(0, normalized.ScopeId);
        Assert.Equal(scoped.GetAddressBytes(), normalized.GetAddressBytes());
    }
}
