using Mobility.Cli;
using Mobility.Cli.Commands;
using Mobility.Transport;

namespace Mobility.Daemon.FunctionalTests.Forwarding;

/// <summary>
/// Connecting to an address decides by a verified GUID: an address whose owner proves its GUID (a
/// challenge answered from the address) and publishes a transport endpoint gets a mobile connection;
/// any other address gets plain TCP; a GUID or name with no mobile peer is a clear error. Real GNS
/// server and client, real daemons, real sockets on 127.91.x.y.
/// </summary>
public sealed class AddressFallbackTests
{
    [Fact]
    public async Task An_address_without_mobilityd_gets_plain_tcp()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var plain = new EchoServer(DaemonInstance.NewAddress());
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());

        using var client = await SocksTestClient.ConnectAsync(a.Socks, plain.EndPoint.Address, plain.Port, Socks5Reply.Succeeded);
        await SocksTestClient.AssertEchoesAsync(client, 200_000);

        Assert.Equal(1, plain.Accepted);
        Assert.Empty(a.Forwarder.OutgoingConnections);
        Assert.Null(await a.Services.GetRequiredService<VerifiedAddressOwners>().ResolveAsync(plain.EndPoint.Address, CancellationToken.None).WithTimeout());
    }

    [Fact]
    public async Task An_address_literal_sent_as_a_domain_is_treated_as_the_address()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var plain = new EchoServer(DaemonInstance.NewAddress());
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());

        using var client = await SocksTestClient.ConnectAsync(a.Socks, plain.EndPoint.Address.ToString(), plain.Port, Socks5Reply.Succeeded);
        await SocksTestClient.AssertEchoesAsync(client, 1000);
        Assert.Equal(1, plain.Accepted);
    }

    [Fact]
    public async Task A_mobile_peer_reached_by_its_address_gets_a_mobile_connection_that_survives_a_move()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        // The application listens on 127.0.0.1 only: plain TCP to B's address could not reach it.
        await using var stage = await ExposedEcho.StartAsync(() => gns.CreateClient(), server => gns.RegisteredAsync(server));
        var (echo, b, a) = (stage.Echo, stage.Server, stage.Client);

        using var client = await SocksTestClient.ConnectAsync(a.Socks, b.Address, echo.Port, Socks5Reply.Succeeded);
        var reading = SocksTestClient.ReadToEndAsync(client);
        var sent = await MidStreamMove.SendWhileServerMovesAsync(client, b, chunks: 30);
        var forwarderB = b.Forwarder;

        var outgoing = Assert.Single(a.Forwarder.OutgoingConnections);
        Assert.Equal(b.Guid, outgoing.RemoteGuid);
        await TestTimeout.Eventually(() => outgoing.Statistics.Moves >= 1, "the connection resumed at B's new address");
        Assert.Equal(forwarderB.LocalEndPoint, outgoing.RemoteEndPoint);

        client.Shutdown(SocketShutdown.Send);
        var echoed = await reading.WithTimeout(TimeSpan.FromSeconds(30));
        Assert.Equal(SHA256.HashData(sent), SHA256.HashData(echoed));
        Assert.Equal(1, echo.Accepted);
    }

    [Fact]
    public async Task An_address_whose_reverse_entry_claims_a_guid_it_cannot_prove_gets_plain_tcp()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var plain = new EchoServer(DaemonInstance.NewAddress());
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());

        // The liar runs a real mobile transport listener elsewhere and claims the plain server's
        // address in its record: trusted on the claim, A would open a mobile connection to the liar
        // (whose handshake proves the liar's GUID, so only the challenge at the address can tell).
        using var liar = HostKey.Generate();
        await using var liarListener = new MobileListener(liar);
        liarListener.Start(new IPEndPoint(DaemonInstance.NewAddress(), 0));
        await using (var direct = gns.CreateClient(cache: false))
        {
            await direct.RegisterAsync(GnsRecord.Create(liar, 1,
                [new Locator(plain.EndPoint.Address, (ushort)liarListener.LocalEndPoint.Port), new Locator(liarListener.LocalEndPoint.Address, (ushort)liarListener.LocalEndPoint.Port)], 60)).WithTimeout();
            Assert.Contains(liar.Guid, await direct.ReverseAsync(plain.EndPoint.Address).WithTimeout());
        }

        var accepting = liarListener.AcceptAsync().AsTask();
        using (var client = await SocksTestClient.ConnectAsync(a.Socks, plain.EndPoint.Address, plain.Port, Socks5Reply.Succeeded))
        {
            await SocksTestClient.AssertEchoesAsync(client, 50_000);
        }

        Assert.Equal(1, plain.Accepted);
        Assert.Empty(a.Forwarder.OutgoingConnections);
        Assert.False(accepting.IsCompleted, "the liar's listener must never get a connection");
        Assert.Empty(liarListener.Connections);
        var claims = await a.Api.GetGuidFromIpAsync(plain.EndPoint.Address).WithTimeout();
        Assert.Empty(claims.Verified);
        Assert.Equal([liar.Guid], claims.Refused.Select(r => r.Guid).ToArray());
    }

    [Fact]
    public async Task When_the_gns_cannot_be_asked_an_address_gets_plain_tcp()
    {
        var gns = await GnsServerInstance.StartAsync();
        await using var plain = new EchoServer(DaemonInstance.NewAddress());
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await gns.DisposeAsync();   // the GNS is gone: no reverse lookup, so no verified owner

        using (var client = await SocksTestClient.ConnectAsync(a.Socks, plain.EndPoint.Address, plain.Port, Socks5Reply.Succeeded))
        {
            await SocksTestClient.AssertEchoesAsync(client, 1000);
        }

        Assert.Equal(1, plain.Accepted);
        Assert.Empty(a.Forwarder.OutgoingConnections);
    }

    [Fact]
    public async Task A_guid_or_name_without_a_transport_endpoint_is_a_clear_error()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        using var bare = HostKey.Generate();
        await using (var direct = gns.CreateClient(cache: false))
        {
            await direct.RegisterAsync(GnsRecord.Create(bare, 1, [], 60, "bare-host")).WithTimeout();
        }

        using (await SocksTestClient.ConnectAsync(a.Socks, $"{bare.Guid}.guid", 22, Socks5Reply.HostUnreachable))
        {
        }

        using (await SocksTestClient.ConnectAsync(a.Socks, "bare-host", 22, Socks5Reply.HostUnreachable))
        {
        }

        // The library says why; mob says there is no mobile peer.
        var e = await Assert.ThrowsAsync<MobileHandshakeException>(() => a.Forwarder.OpenAsync(bare.Guid, 22, CancellationToken.None)).WithTimeout();
        Assert.Contains("No mobile peer", e.Message, StringComparison.Ordinal);
        Assert.Contains("no known transport endpoint", e.Message, StringComparison.Ordinal);
        var cli = await Assert.ThrowsAsync<CliException>(() => ForwardCommands.SocksConnectAsync(a.Socks, bare.Guid.ToString(), 22, CancellationToken.None)).WithTimeout();
        Assert.Equal(ExitCodes.NotFound, cli.ExitCode);
        Assert.Contains("no mobile peer", cli.Message, StringComparison.Ordinal);
        Assert.Empty(a.Forwarder.OutgoingConnections);
    }

    [Fact]
    public async Task Mob_connect_to_an_address_goes_mobile_to_a_daemon_and_plain_elsewhere()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var echo = new EchoServer();
        await using var plain = new EchoServer(DaemonInstance.NewAddress());
        await using var b = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await gns.RegisteredAsync(b);
        b.Api.Expose(echo.Port);

        using (var mobile = await ForwardCommands.SocksConnectAsync(a.Socks, b.Address.ToString(), (ushort)echo.Port, CancellationToken.None).WithTimeout())
        {
            await SocksTestClient.AssertEchoesAsync(mobile, 10_000);
        }

        Assert.Equal(1, echo.Accepted);
        using (var direct = await ForwardCommands.SocksConnectAsync(a.Socks, plain.EndPoint.Address.ToString(), (ushort)plain.Port, CancellationToken.None).WithTimeout())
        {
            await SocksTestClient.AssertEchoesAsync(direct, 10_000);
        }

        Assert.Equal(1, plain.Accepted);
    }
}
