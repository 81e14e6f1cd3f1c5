namespace Mobility.Relay.FunctionalTests;

/// <summary>How the real <c>mobility-relay</c> executable refuses to start: one line on stderr, nothing on stdout, an exit code.</summary>
public sealed class RelayExecutableTests
{
    private static Task<(int ExitCode, string Line)> RunAsync(params string[] arguments) => RunAsync(arguments, null);

    private static async Task<(int ExitCode, string Line)> RunAsync(string[] arguments, Dictionary<string, string>? environment)
    {
        await using var process = TestProcess.Start(Executables.Locate("mobility-relay", "Mobility.Relay.Host"), ["serve", .. arguments], environment);
        var exitCode = await process.WaitForExitAsync();
        Assert.DoesNotContain("   at ", process.StandardError, StringComparison.Ordinal);
        Assert.Equal("", process.StandardOutput.Trim());
        return (exitCode, Assert.Single(process.StandardError.Split('\n'), l => l.StartsWith("mobility-relay: ", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task An_unknown_flag_is_exit_64_pointing_at_help()
    {
        var (exitCode, line) = await RunAsync("--no-such-flag");

        Assert.Equal(64, exitCode);
        Assert.EndsWith("(see 'mobility-relay --help')", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_limit_that_does_not_convert_is_exit_64_naming_the_key()
    {
        var (exitCode, line) = await RunAsync(["--listen", "127.0.0.1:0"], new Dictionary<string, string> { ["RELAY_Relay__Limits__MaxHosts"] = "many" });

        Assert.Equal(64, exitCode);
        Assert.Equal("mobility-relay: Failed to convert configuration value 'many' at 'Relay:Limits:MaxHosts' to type 'System.Int32'.", line);
    }

    [Fact]
    public async Task A_bad_endpoint_is_exit_64_naming_the_option()
    {
        var (exitCode, line) = await RunAsync("--listen", "127.0.0.1:99999");

        Assert.Equal(64, exitCode);
        Assert.Contains("Relay:Listen (--listen)", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_taken_port_is_exit_1_in_one_line_naming_the_address()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var endPoint = (IPEndPoint)taken.LocalEndpoint;

        var (exitCode, line) = await RunAsync("--listen", endPoint.ToString());

        Assert.Equal(1, exitCode);
        Assert.Contains(endPoint.ToString(), line, StringComparison.Ordinal);
    }
}
