using Microsoft.Extensions.Configuration;
using Mobility.Daemon.Hosting;

namespace Mobility.Daemon.Tests.Unit;

public sealed class CommandLineTests
{
    private static MobilitydOptions Bind(ParsedCommandLine parsed)
        => MobilitydHost.BindAndValidate(new ConfigurationBuilder().AddInMemoryCollection(parsed.Settings).Build());

    [Fact]
    public void Flags_become_configuration_keys_and_repeatable_flags_become_lists()
    {
        var parsed = CommandLine.Parse(
            ["--state-dir", "/s", "--address", "127.0.0.2", "--address=127.0.0.3", "--embedded-gns", "--http", "127.0.0.1:0",
             "--Challenge:Attempts", "5", "--control", "127.0.0.2:0", "--allow-loopback", "false"]);
        var options = Bind(parsed);

        Assert.Empty(parsed.ConfigFiles);
        Assert.Equal("/s", options.StateDir);
        Assert.Equal(["127.0.0.2", "127.0.0.3"], options.Addresses);
        Assert.True(options.EmbeddedGns);
        Assert.False(options.AllowLoopback);
        Assert.Equal("127.0.0.1:0", options.Http);
        Assert.Equal(5, options.Challenge.Attempts);
        Assert.Equal(["127.0.0.2:0"], options.Control);
    }

    [Fact]
    public void Settings_from_files_and_the_environment_that_name_nothing_are_found_for_a_warning()
    {
        // What a --config file and MOBILITYD_ variables give the configuration (the JSON provider and the environment's
        // "__" both become ':'), misspellings among them.
        var json = """
            {
              "StateDir": "/s",
              "Addresses": [ "127.0.0.2" ],
              "Challenge": { "Atempts": 5, "AttemptTimeout": "00:00:01" },
              "Forwarding": { "Transport": { "ConnectionReversl": false, "DirectPaths": true }, "Allow": { "22": [ "a" ] } },
              "Logging": { "LogLevel": { "Mobility.Transport": "Debug" } },
              "Nat": { }
            }
            """;
        var configuration = new ConfigurationBuilder()
            .AddJsonStream(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json)))
            .AddInMemoryCollection(new Dictionary<string, string?> { ["challenge:attempts"] = "4", ["Bogus"] = "1", ["Record:Ttl"] = null })
            .Build();

        // Keys are case-insensitive (a section's spelling is the first provider's that named it).
        Assert.Equal(["Bogus", "Challenge:Atempts", "Forwarding:Transport:ConnectionReversl"], MobilitydHost.UnknownSettings(configuration), StringComparer.OrdinalIgnoreCase);
        Assert.Empty(MobilitydHost.UnknownSettings(new ConfigurationBuilder().AddJsonFile(Path.Combine(AppContext.BaseDirectory, "deploy", "mobilityd.json"), optional: false).Build()));
    }

    [Fact]
    public void Config_files_are_returned_apart()
    {
        var parsed = CommandLine.Parse(["--config", "/etc/mobility/mobilityd.json"]);
        Assert.Equal(["/etc/mobility/mobilityd.json"], parsed.ConfigFiles);
        Assert.Empty(parsed.Settings);
    }

    [Theory]
    [InlineData("stray")]
    [InlineData("--gns")]
    [InlineData("--")]
    public void Malformed_command_lines_are_refused(string arg)
        => Assert.Throws<CommandLineException>(() => CommandLine.Parse([arg]));

    [Theory]
    [InlineData("--embeded-gns --state-dir X", "'--embeded-gns'", "'--embedded-gns'")]
    [InlineData("--adress 127.0.0.2", "'--adress'", "'--address'")]
    [InlineData("--bogus x", "'--bogus'", null)]
    [InlineData("--Challenge:Atempts 5", "'--Challenge:Atempts'", null)]
    [InlineData("--Nope:Key=1", "'--Nope:Key'", null)]
    public void A_typo_is_refused_in_one_line_naming_the_flag(string commandLine, string named, string? suggested)
    {
        var e = Assert.Throws<CommandLineException>(() => CommandLine.Parse(commandLine.Split(' ')));

        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
        if (suggested is not null)
        {
            Assert.Contains($"Did you mean {suggested}", e.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("--Challenge:Attempts x", "Challenge:Attempts")]
    [InlineData("--transport-port 99999", "TransportPort")]
    [InlineData("--gns 127.0.0.1", "--gns")]
    [InlineData("--AddressWatch:Debounce soon", "AddressWatch:Debounce")]
    public void A_bad_value_is_refused_in_one_line_naming_the_option(string commandLine, string named)
    {
        var parsed = CommandLine.Parse(commandLine.Split(' '));
        var e = Assert.Throws<CommandLineException>(() => Bind(parsed));

        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--Challenge:Attempts", "Challenge:Attempts")]
    [InlineData("--maxknownpeers", "MaxKnownPeers")]
    [InlineData("--Forwarding:Exposed:0", "Forwarding:Exposed:0")]
    [InlineData("--Forwarding:Allow:22:0", "Forwarding:Allow:22:0")]
    [InlineData("--Forwarding:Transport:KeepAliveInterval", "Forwarding:Transport:KeepAliveInterval")]
    [InlineData("--Forwarding:Transport:FastOpen", "Forwarding:Transport:FastOpen")]
    [InlineData("--Forwarding:Transport:FastOpenQueue", "Forwarding:Transport:FastOpenQueue")]
    [InlineData("--Forwarding:Transport:MaxStandbyPaths", "Forwarding:Transport:MaxStandbyPaths")]
    [InlineData("--Logging:LogLevel:Default", "Logging:LogLevel:Default")]
    public void Any_existing_key_can_be_set_with_its_path(string flag, string key)
    {
        var parsed = CommandLine.Parse([flag, "v"]);
        Assert.Equal("v", parsed.Settings[key]);
    }

    [Fact]
    public void Help_lists_every_flag_and_runs_nothing_else()
    {
        var parsed = CommandLine.Parse(["--help", "--bogus"]);
        Assert.NotNull(parsed.Immediate);
        var output = new StringWriter();
        Assert.Equal(0, parsed.Immediate!.Invoke(new System.CommandLine.InvocationConfiguration { Output = output }));

        var help = output.ToString();
        foreach (var flag in new[]
                 {
                     "--state-dir", "--gns", "--gns-grpc", "--embedded-gns", "--embedded-gns-udp", "--socket", "--grpc-socket", "--socket-group",
                     "--http", "--grpc", "--control", "--address", "--transport-port", "--transport", "--socks", "--name", "--allow-loopback",
                     "--allow-link-local", "--allow-state-changes-over-tcp", "--config", "--Section:Key",
                 })
        {
            Assert.Contains(flag + " ", help, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Docs_show_exactly_what_help_prints()
    {
        var parsed = CommandLine.Parse(["--help"]);
        var output = new StringWriter();
        parsed.Immediate!.Invoke(new System.CommandLine.InvocationConfiguration { Output = output });
        var docs = File.ReadAllText(Path.Combine(LoggingConventionTests.RepositoryRoot(), "docs", "mobilityd.md"));

        Assert.Contains(output.ToString().TrimEnd().ReplaceLineEndings("\n"), docs.ReplaceLineEndings("\n"), StringComparison.Ordinal);
    }
}
