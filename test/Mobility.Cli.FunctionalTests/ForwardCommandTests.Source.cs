using System.Globalization;

namespace Mobility.Cli.FunctionalTests;

/// <summary>`mob expose --source`: the port keeps the chosen source until it is exposed again; other words are usage errors.</summary>
public sealed partial class ForwardCommandTests
{
    [Fact]
    public async Task Mob_expose_source_is_listed_until_the_port_is_exposed_again_and_an_unknown_source_is_refused()
    {
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--socks", "off"]);
        var port = 8123.ToString(CultureInfo.InvariantCulture);

        Assert.Equal((0, $"{port} source virtual\n"), Short(await Mob(default, "expose", port, "--source", "virtual", "--socket", daemon.SocketPath)));
        Assert.Equal((0, $"{port} source virtual\n"), Short(await Mob(default, "exposed", "--socket", daemon.SocketPath)));
        Assert.Equal((0, $"{port} source virtual\n{port}/udp source local\n"),
            Short(await Mob(default, "expose", port, "--udp", "--source", "local", "--socket", daemon.SocketPath)));
        using (var json = System.Text.Json.JsonDocument.Parse((await Mob(default, "exposed", "--json", "--socket", daemon.SocketPath)).Out))
        {
            Assert.Equal("virtual", json.RootElement.GetProperty("exposed")[0].GetProperty("source").GetString());
            Assert.Equal("local", json.RootElement.GetProperty("udp")[0].GetProperty("source").GetString());
        }

        // Exposed again without --source: auto, which is not shown.
        Assert.Equal((0, $"{port}\n{port}/udp source local\n"), Short(await Mob(default, "expose", port, "--socket", daemon.SocketPath)));

        var refused = await Mob(default, "expose", port, "--source", "remote", "--socket", daemon.SocketPath);
        Assert.NotEqual(0, refused.Exit);
        Assert.Equal((0, $"{port}\n{port}/udp source local\n"), Short(await Mob(default, "exposed", "--socket", daemon.SocketPath)));

        static (int, string) Short((int Exit, string Out, string Err) result) => (result.Exit, result.Out);
    }
}
