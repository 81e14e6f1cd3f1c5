using System.Net;
using System.Net.Sockets;
using Mobility.Net.EndPoints;

namespace Mobility.Net.Tests;

/// <summary>The one bind helper of every listener, on real loopback sockets.</summary>
public sealed class ListenSocketsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_tcp_listener_on_the_IPv6_wildcard_accepts_IPv4_connections_too()
    {
        if (!Socket.OSSupportsIPv6)
        {
            return; // Nothing to check on a host without IPv6.
        }

        using var listener = ListenSockets.ListenTcp(new IPEndPoint(IPAddress.IPv6Any, 0), "test listener", backlog: 4);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port)).WaitAsync(Timeout);
        using var accepted = await listener.AcceptAsync().WaitAsync(Timeout);

        var remote = (IPEndPoint)accepted.RemoteEndPoint!;
        Assert.True(remote.Address.IsIPv4MappedToIPv6);
        Assert.Equal(IPAddress.Loopback, remote.Address.MapToIPv4());
    }

    [Fact]
    public async Task A_udp_socket_on_the_IPv6_wildcard_receives_IPv4_datagrams_too()
    {
        if (!Socket.OSSupportsIPv6)
        {
            return; // Nothing to check on a host without IPv6.
        }

        using var server = ListenSockets.BindUdp(new IPEndPoint(IPAddress.IPv6Any, 0), "test endpoint");
        var port = ((IPEndPoint)server.LocalEndPoint!).Port;
        using var client = new UdpClient(AddressFamily.InterNetwork);

        await client.SendAsync(new byte[] { 42 }, new IPEndPoint(IPAddress.Loopback, port)).AsTask().WaitAsync(Timeout);
        var buffer = new byte[16];
        var received = await server.ReceiveFromAsync(new ArraySegment<byte>(buffer), new IPEndPoint(IPAddress.IPv6Any, 0)).WaitAsync(Timeout);

        Assert.Equal(1, received.ReceivedBytes);
        Assert.Equal(42, buffer[0]);
    }

    [Fact]
    public void A_specific_IPv6_address_serves_IPv6_only()
    {
        if (!Socket.OSSupportsIPv6)
        {
            return; // Nothing to check on a host without IPv6.
        }

        using var socket = ListenSockets.ListenTcp(new IPEndPoint(IPAddress.IPv6Loopback, 0), "test listener", backlog: 4);

        Assert.False(socket.DualMode);
    }

    [Theory]
    [InlineData(ProtocolType.Tcp)]
    [InlineData(ProtocolType.Udp)]
    public void A_taken_endpoint_fails_naming_the_protocol_the_endpoint_and_the_option(ProtocolType protocol)
    {
        using var taken = protocol == ProtocolType.Tcp
            ? ListenSockets.ListenTcp(new IPEndPoint(IPAddress.Loopback, 0), "first", backlog: 4)
            : ListenSockets.BindUdp(new IPEndPoint(IPAddress.Loopback, 0), "first");
        var endPoint = (IPEndPoint)taken.LocalEndPoint!;

        var error = Assert.Throws<ListenerBindException>(() =>
        {
            using var second = protocol == ProtocolType.Tcp
                ? ListenSockets.ListenTcp(endPoint, "SOCKS5 endpoint, Socks (--socks)", backlog: 4)
                : ListenSockets.BindUdp(endPoint, "SOCKS5 endpoint, Socks (--socks)");
        });

        Assert.Equal(SocketError.AddressAlreadyInUse, error.SocketErrorCode);
        Assert.Equal(endPoint, error.EndPoint);
        Assert.StartsWith($"cannot bind {(protocol == ProtocolType.Tcp ? "TCP" : "UDP")} {endPoint} (SOCKS5 endpoint, Socks (--socks)): ", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[::]:1", "192.0.2.1", true)]
    [InlineData("[::]:1", "2001:db8::1", true)]
    [InlineData("0.0.0.0:1", "192.0.2.1", true)]
    [InlineData("0.0.0.0:1", "::ffff:192.0.2.1", true)]
    [InlineData("0.0.0.0:1", "2001:db8::1", false)]
    [InlineData("[2001:db8::1]:1", "2001:db8::2", true)]
    [InlineData("[2001:db8::1]:1", "192.0.2.1", false)]
    [InlineData("192.0.2.1:1", "2001:db8::1", false)]
    public void A_listener_serves_the_families_its_address_takes(string bound, string address, bool served)
        => Assert.Equal(served, ListenSockets.ServesFamilyOf(IPEndPoint.Parse(bound), IPAddress.Parse(address)));

    [Fact]
    public void The_dual_stack_wildcard_is_IPv6_any_where_the_os_has_IPv6()
        => Assert.Equal(Socket.OSSupportsIPv6 ? IPAddress.IPv6Any : IPAddress.Any, ListenSockets.DualStackAny(7391).Address);
}

public sealed class EndPointSettingTests
{
    [Theory]
    [InlineData("off")]
    [InlineData("OFF")]
    [InlineData(" off ")]
    [InlineData("")]
    [InlineData(null)]
    public void Off_and_empty_are_no_listener(string? text)
    {
        Assert.True(EndPointSetting.TryParse(text, "Http (--http)", out var endPoint, out var error));
        Assert.Null(endPoint);
        Assert.Null(error);
    }

    [Fact]
    public void Empty_is_an_error_where_the_option_cannot_be_off()
    {
        Assert.False(EndPointSetting.TryParse("", "Gns:Dns:Endpoint", out _, out var error, emptyIsOff: false));
        Assert.StartsWith("Gns:Dns:Endpoint: ''", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("127.0.0.1:0", "127.0.0.1", 0)]
    [InlineData("[::]:7391", "::", 7391)]
    public void An_endpoint_parses_with_port_zero_allowed(string text, string address, int port)
    {
        Assert.Equal(new IPEndPoint(IPAddress.Parse(address), port), EndPointSetting.Parse(text, "Transport (--transport)"));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1:80")]
    [InlineData("localhost:80")]
    [InlineData("of")]
    public void A_bad_value_names_the_option_and_quotes_the_value(string text)
    {
        var error = Assert.Throws<FormatException>(() => EndPointSetting.Parse(text, "Socks (--socks)"));
        Assert.StartsWith($"Socks (--socks): '{text}' is not IP:PORT or [IPv6]:PORT", error.Message, StringComparison.Ordinal);
        Assert.EndsWith(", or \"off\".", error.Message, StringComparison.Ordinal);
    }
}
