namespace Mobility.Netlab.FunctionalTests;

/// <summary>The netlab tool's errors: one line on stderr and a documented exit status, never a stack trace (no namespace is made).</summary>
public sealed class NetlabToolErrorTests
{
    [Theory]
    [InlineData(2, "up --bogus x")]
    [InlineData(2, "link --tun-a a --tun-b b --seed 99999999999999")]
    [InlineData(1, "link --tun-a a --tun-b b --ns mlab-no-such-namespace")]
    public async Task A_bad_flag_or_a_missing_namespace_is_one_line_and_a_documented_exit_status(int exitCode, string arguments)
    {
        await using var process = TestProcess.Start("netlab", arguments.Split(' '));

        Assert.Equal(exitCode, await process.WaitForExitAsync());
        var line = Assert.Single(process.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("netlab: ", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", process.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("evaluate --help")]
    [InlineData("nat-punch --scenario x -h")]
    public async Task Help_after_any_command_prints_the_usage_and_runs_nothing(string arguments)
    {
        await using var process = TestProcess.Start("netlab", arguments.Split(' '));

        Assert.Equal(0, await process.WaitForExitAsync());
        Assert.Contains("netlab nat-punch [--scenario NAME,...]", process.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("", process.StandardError);
    }
}
