using System.Net;
using System.Net.Sockets;
using Mobility.Net.EndPoints;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Tests;

/// <summary>A transport listener on [::] takes IPv4 peers and reports them as IPv4 (real loopback sockets).</summary>
public sealed class DualStackFlowTests
{
    [Fact]
    public async Task A_listener_on_the_IPv6_wildcard_accepts_an_IPv4_peer_and_reports_its_address_as_IPv4()
    {
        Assert.True(Socket.OSSupportsIPv6, "this test needs IPv6 on the host");
        await using var listener = new TcpFlowListener(new IPEndPoint(IPAddress.IPv6Any, 0));
        var accepting = listener.AcceptAsync(CancellationToken.None).AsTask();

        await using var client = await TcpFlowFactory.Instance.ConnectAsync(new IPEndPoint(IPAddress.Loopback, listener.LocalEndPoint.Port), null, CancellationToken.None)
            .AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        await using var accepted = await accepting.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(IPAddress.Loopback, accepted.RemoteEndPoint!.Address);
        Assert.Equal(IPAddress.Loopback, accepted.LocalEndPoint!.Address);
        Assert.Equal(client.LocalEndPoint, accepted.RemoteEndPoint);
    }

    [Fact]
    public async Task A_taken_endpoint_fails_naming_the_address()
    {
        await using var first = new TcpFlowListener(new IPEndPoint(IPAddress.Loopback, 0));

        var error = Assert.Throws<ListenerBindException>(() => new TcpFlowListener(first.LocalEndPoint));

        Assert.Equal(SocketError.AddressAlreadyInUse, error.SocketErrorCode);
        Assert.Contains($"cannot bind TCP {first.LocalEndPoint} (mobile transport)", error.Message, StringComparison.Ordinal);
    }
}
