using System.CommandLine;
using System.Globalization;

namespace Mobility.Daemon.FunctionalTests.Forwarding;

/// <summary>
/// Per-peer authorization of exposed ports: `mob expose PORT --allow GUID|NAME` lets only those
/// GUIDs (proved by the transport handshake) open the port; everyone else gets the same "not exposed"
/// answer as for a port that is not exposed at all. Real GNS, real daemons.
/// </summary>
public sealed class ExposeAllowTests
{
    [Fact]
    public async Task Only_allowed_guids_open_the_port_and_others_cannot_tell_it_from_an_unexposed_one()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var echo = new EchoServer();
        await using var b = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await using var allowed = await DaemonInstance.StartForwardingAsync(gns.CreateClient(), "--name", "allowed-peer");
        await using var other = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await gns.RegisteredAsync(b, allowed, other);

        // By name, resolved now and kept as the GUID.
        var view = await b.Api.ExposeAsync(echo.Port, ["allowed-peer"]).WithTimeout();
        var entry = Assert.Single(view.Entries);
        Assert.Equal([allowed.Guid], entry.Allowed.ToArray());

        using (var client = await SocksTestClient.ConnectAsync(allowed.Socks, $"{b.Guid}.guid", echo.Port, Socks5Reply.Succeeded))
        {
            await SocksTestClient.AssertEchoesAsync(client, 20_000);
        }

        Assert.Equal(1, echo.Accepted);

        // Another authenticated peer gets exactly what it gets for a port that is not exposed.
        using (await SocksTestClient.ConnectAsync(other.Socks, $"{b.Guid}.guid", echo.Port, Socks5Reply.NotAllowed))
        {
        }

        using (await SocksTestClient.ConnectAsync(other.Socks, $"{b.Guid}.guid", echo.Port + 1 == 65536 ? 1 : echo.Port + 1, Socks5Reply.NotAllowed))
        {
        }

        var refused = await Assert.ThrowsAsync<OpenRefusedException>(() => other.Services.GetRequiredService<MobileForwarder>().OpenAsync(b.Guid, (ushort)echo.Port, CancellationToken.None)).WithTimeout();
        Assert.Equal(OpenStatus.NotExposed, refused.Status);
        Assert.Equal(1, echo.Accepted);

        // Exposing again without --allow replaces the list: open to every authenticated peer, as before.
        b.Api.Expose(echo.Port);
        using (var client = await SocksTestClient.ConnectAsync(other.Socks, $"{b.Guid}.guid", echo.Port, Socks5Reply.Succeeded))
        {
            await SocksTestClient.AssertEchoesAsync(client, 20_000);
        }

        Assert.Equal(2, echo.Accepted);
    }

    [Fact]
    public async Task Without_allow_every_authenticated_peer_may_open_an_exposed_port()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var stage = await ExposedEcho.StartAsync(() => gns.CreateClient(), server => gns.RegisteredAsync(server));
        var (echo, b, a) = (stage.Echo, stage.Server, stage.Client);
        Assert.True(Assert.Single(b.Api.ListExposed().Entries).OpenToAll);

        using var client = await SocksTestClient.ConnectAsync(a.Socks, $"{b.Guid}.guid", echo.Port, Socks5Reply.Succeeded);
        await SocksTestClient.AssertEchoesAsync(client, 20_000);
    }

    [Fact]
    public async Task An_allow_list_from_the_configuration_is_enforced_from_the_start()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var echo = new EchoServer();
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await using var other = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        var port = echo.Port.ToString(CultureInfo.InvariantCulture);
        await using var b = await DaemonInstance.StartForwardingAsync(gns.CreateClient(), "--Forwarding:Exposed:0", port, $"--Forwarding:Allow:{port}:0", a.Guid.ToString());
        await gns.RegisteredAsync(b);

        using (var client = await SocksTestClient.ConnectAsync(a.Socks, $"{b.Guid}.guid", echo.Port, Socks5Reply.Succeeded))
        {
            await SocksTestClient.AssertEchoesAsync(client, 20_000);
        }

        using (await SocksTestClient.ConnectAsync(other.Socks, $"{b.Guid}.guid", echo.Port, Socks5Reply.NotAllowed))
        {
        }
    }

    [Fact]
    public async Task Mob_expose_with_allow_stores_guids_and_mob_exposed_shows_them()
    {
        await using var gns = await GnsServerInstance.StartAsync();
        await using var b = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await using var peer = await DaemonInstance.StartForwardingAsync(gns.CreateClient(), "--name", "listed-peer");
        await gns.RegisteredAsync(peer);
        var other = Mobility.Protocol.Identity.HostKey.Generate().Guid;

        var exposed = await Mob("expose", "2222", "--allow", "listed-peer", "--allow", other.ToString(), "--socket", b.SocketPath);
        var sorted = string.Join(' ', new[] { peer.Guid, other }.Order().Select(g => g.ToString()));
        Assert.Equal((0, $"2222 allow {sorted}\n"), exposed);
        var open = await Mob("expose", "2223", "--socket", b.SocketPath);
        Assert.Equal((0, $"2222 allow {sorted}\n2223\n"), open);
        Assert.Equal((0, $"2222 allow {sorted}\n2223\n"), await Mob("exposed", "--socket", b.SocketPath));

        // An unknown name is refused, and nothing changes.
        Assert.Equal(Mobility.Cli.ExitCodes.Usage, (await Mob("expose", "2224", "--allow", "nobody-by-that-name", "--socket", b.SocketPath)).Exit);
        Assert.Equal([2222, 2223], b.Api.ListExposed().Ports.ToArray());

        // JSON: the same list under "exposed".
        using var http = DaemonInstance.UnixClient(b.SocketPath);
        var json = await http.GetFromJsonAsync<System.Text.Json.JsonElement>("v1/exposed").WithTimeout();
        Assert.Equal(2, json.GetProperty("exposed").GetArrayLength());
        Assert.Equal(2, json.GetProperty("exposed")[0].GetProperty("allow").GetArrayLength());
    }

    private static async Task<(int Exit, string Out)> Mob(params string[] args)
    {
        using var stdout = new StringWriter();
        var root = Mobility.Cli.Program.BuildRoot();
        foreach (var command in Mobility.Cli.Commands.ForwardCommands.Create())
        {
            if (root.Subcommands.All(c => c.Name != command.Name))
            {
                root.Subcommands.Add(command);
            }
        }

        var exit = await root.Parse(args).InvokeAsync(new InvocationConfiguration { Output = stdout, Error = new StringWriter() }, CancellationToken.None).WithTimeout();
        return (exit, stdout.ToString());
    }
}
