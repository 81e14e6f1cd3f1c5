using Microsoft.Extensions.Configuration;
using Mobility.Daemon.Hosting;

namespace Mobility.Daemon.Tests.Unit;

public sealed class CommandLineTests
{
    [Fact]
    public void Flags_become_configuration_keys_and_repeatable_flags_become_lists()
    {
        var args = CommandLine.Translate(
            ["--state-dir", "/s", "--address", "127.0.0.2", "--address=127.0.0.3", "--embedded-gns", "--http", "127.0.0.1:0",
             "--Challenge:Attempts", "5", "--control", "127.0.0.2:0", "--allow-loopback", "false"], out var configFiles);
        var options = new MobilitydOptions();
        new ConfigurationBuilder().AddCommandLine(args).Build().Bind(options);

        Assert.Empty(configFiles);
        Assert.Equal("/s", options.StateDir);
        Assert.Equal(["127.0.0.2", "127.0.0.3"], options.Addresses);
        Assert.True(options.EmbeddedGns);
        Assert.False(options.AllowLoopback);
        Assert.Equal("127.0.0.1:0", options.Http);
        Assert.Equal(5, options.Challenge.Attempts);
        Assert.Equal(["127.0.0.2:0"], options.Control);
    }

    [Fact]
    public void Config_files_are_returned_apart()
    {
        CommandLine.Translate(["--config", "/etc/mobility/mobilityd.json"], out var files);
        Assert.Equal(["/etc/mobility/mobilityd.json"], files);
    }

    [Theory]
    [InlineData("stray")]
    [InlineData("--gns")]
    [InlineData("--")]
    public void Malformed_command_lines_are_refused(string arg)
        => Assert.Throws<ArgumentException>(() => CommandLine.Translate([arg], out _));
}
