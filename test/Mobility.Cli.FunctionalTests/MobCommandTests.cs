using System.CommandLine;
using System.Text.Json;
using Mobility.Cli.Commands;

namespace Mobility.Cli.FunctionalTests;

/// <summary>The `mob` daemon commands, run in-process against a daemon's Unix socket.</summary>
public sealed class MobCommandTests
{
    [Fact]
    public async Task Mob_daemon_commands_answer_like_the_api()
    {
        var gns = new FakeGns();
        await using var peer = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--name", "mob-peer"]);
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient());
        await TestTimeout.Eventually(() => gns.Get(peer.Guid) is not null, "the peer registered");
        var socket = daemon.SocketPath;

        var guid = await Mob("guid", "--socket", socket);
        var ip = await Mob("ip", "mob-peer", "--socket", socket);
        var guids = await Mob("guids", peer.Address.ToString(), "--socket", socket);
        var challenge = await Mob("challenge", peer.Address.ToString(), peer.Guid.ToString(), "--socket", socket);
        var status = await Mob("status", "--socket", socket, "--json");
        var moved = DaemonInstance.NewAddress();
        var set = await Mob("addresses", "set", moved.ToString(), "--socket", socket);
        var addresses = await Mob("addresses", "--socket", socket, "--json");

        Assert.Equal((0, daemon.Guid + "\n"), (guid.Exit, guid.Out));
        Assert.Equal((0, peer.Address + "\n"), (ip.Exit, ip.Out));
        Assert.Equal((0, peer.Guid + "\n"), (guids.Exit, guids.Out));
        Assert.Equal(0, challenge.Exit);
        Assert.StartsWith($"verified {peer.Guid}", challenge.Out, StringComparison.Ordinal);
        Assert.Equal(0, status.Exit);
        Assert.Equal(daemon.Guid.ToString(), JsonDocument.Parse(status.Out).RootElement.GetProperty("guid").GetString());
        Assert.Equal((0, moved + "\n"), (set.Exit, set.Out));
        Assert.Equal(moved.ToString(), JsonDocument.Parse(addresses.Out).RootElement.GetProperty("addresses")[0].GetString());
    }

    [Fact]
    public async Task Mob_transparent_status_and_mob_status_show_transparent_mode()
    {
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient());

        var text = await Mob("transparent", "status", "--socket", daemon.SocketPath);
        var json = await Mob("transparent", "status", "--socket", daemon.SocketPath, "--json");
        var status = await Mob("status", "--socket", daemon.SocketPath);

        Assert.Equal(0, text.Exit);
        Assert.Contains("transparent: off", text.Out, StringComparison.Ordinal);
        Assert.Contains("rules: none", text.Out, StringComparison.Ordinal);
        Assert.Contains("virtual addresses: 100.77.0.0/16 fd6d:6f62::/32", text.Out, StringComparison.Ordinal);
        Assert.Equal(0, json.Exit);
        Assert.Equal("100.77.0.0/16", JsonDocument.Parse(json.Out).RootElement.GetProperty("ipv4Pool").GetString());
        Assert.Contains("transparent: off, rules none,", status.Out, StringComparison.Ordinal);
        Assert.Contains("opportunistic: off", text.Out, StringComparison.Ordinal);

        var help = await Mob("transparent", "on", "--help");
        Assert.Equal(0, help.Exit);
        Assert.Contains("--opportunistic", help.Out, StringComparison.Ordinal);
        Assert.Contains("--no-opportunistic", help.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failed_challenge_exits_non_zero_with_the_reason_on_stderr()
    {
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient());
        using var stranger = Protocol.Identity.HostKey.Generate();

        var result = await Mob("challenge", DaemonInstance.NewAddress().ToString(), stranger.Guid.ToString(), "--socket", daemon.SocketPath);
        var unknown = await Mob("ip", stranger.Guid.ToString(), "--socket", daemon.SocketPath);
        var noDaemon = await Mob("guid", "--socket", Path.Combine(DaemonInstance.NewFolder(), "none.sock"));

        Assert.Equal(ExitCodes.Failure, result.Exit);
        Assert.Equal("", result.Out);
        Assert.StartsWith("mob: challenge failed: timeout", result.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.NotFound, unknown.Exit);
        Assert.Equal(ExitCodes.Unreachable, noDaemon.Exit);
        Assert.Contains("not reachable", noDaemon.Err, StringComparison.Ordinal);
    }

    private static async Task<(int Exit, string Out, string Err)> Mob(params string[] args)
    {
        var root = Mobility.Cli.Program.BuildRoot();
        foreach (var command in DaemonCommands.Create())
        {
            if (root.Subcommands.All(c => c.Name != command.Name))
            {
                root.Subcommands.Add(command);
            }
        }

        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await root.Parse(args).InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr }).WithTimeout();
        return (exit, stdout.ToString(), stderr.ToString());
    }
}
