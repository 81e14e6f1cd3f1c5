namespace Mobility.Daemon.FunctionalTests;

/// <summary>
/// The state folder and the key are the daemon user's alone: a key planted by another user, a state
/// folder others can write, and symbolic links (dangling or not) stop the daemon with one line and a
/// non-zero exit, before it acts with any identity.
/// </summary>
public sealed class StateOwnershipTests
{
    [OtherUserFact]
    public async Task A_key_planted_by_another_user_in_a_folder_others_can_write_is_refused()
    {
        var dir = DaemonInstance.NewFolder();
        File.SetUnixFileMode(dir, (UnixFileMode)0x1FF); // 0777: the attacker could write here
        var keyPath = Path.Combine(dir, "host.key");
        Mobility.Protocol.Identity.HostKeyFile.Save(Mobility.Protocol.Identity.HostKey.Generate(), keyPath);
        await ChownAsync(keyPath, "nobody");

        var stderr = await StartAndFailAsync(dir);

        Assert.Contains("State folder", stderr, StringComparison.Ordinal);
        Assert.Contains("0777", stderr, StringComparison.Ordinal);
    }

    [OtherUserFact]
    public async Task A_0600_key_owned_by_another_user_is_refused()
    {
        var dir = DaemonInstance.NewFolder();
        var keyPath = Path.Combine(dir, "host.key");
        Mobility.Protocol.Identity.HostKeyFile.Save(Mobility.Protocol.Identity.HostKey.Generate(), keyPath);
        await ChownAsync(keyPath, "nobody");

        var stderr = await StartAndFailAsync(dir);

        Assert.Contains("owned by uid 65534", stderr, StringComparison.Ordinal);
    }

    [OtherUserFact]
    public async Task A_state_folder_owned_by_another_user_is_refused()
    {
        var dir = DaemonInstance.NewFolder();
        await ChownAsync(dir, "nobody");

        var stderr = await StartAndFailAsync(dir);

        Assert.Contains("owned by uid 65534", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir, "host.key")));
    }

    [Fact]
    public async Task A_state_folder_that_is_a_symbolic_link_is_refused()
    {
        var real = DaemonInstance.NewFolder();
        var link = Path.Combine(DaemonInstance.NewFolder(), "state-link");
        File.CreateSymbolicLink(link, real);

        var stderr = await StartAndFailAsync(link);

        Assert.Contains("symbolic link", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(real, "host.key")));
    }

    [Fact]
    public async Task A_key_that_is_a_symbolic_link_is_refused()
    {
        var dir = DaemonInstance.NewFolder();
        var real = Path.Combine(DaemonInstance.NewFolder(), "real.key");
        Mobility.Protocol.Identity.HostKeyFile.Save(Mobility.Protocol.Identity.HostKey.Generate(), real);
        File.CreateSymbolicLink(Path.Combine(dir, "host.key"), real);

        var stderr = await StartAndFailAsync(dir);

        Assert.Contains("symbolic link", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dangling_key_symbolic_link_gives_one_line_and_a_non_zero_exit()
    {
        var dir = DaemonInstance.NewFolder();
        var target = Path.Combine(DaemonInstance.NewFolder(), "missing", "host.key");
        File.CreateSymbolicLink(Path.Combine(dir, "host.key"), target);

        var stderr = await StartAndFailAsync(dir);

        Assert.Contains("symbolic link", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(target));
    }

    /// <summary>Starts mobilityd on <paramref name="stateDir"/>, expects a non-zero exit and exactly one line saying why; returns that line.</summary>
    private static async Task<string> StartAndFailAsync(string stateDir)
    {
        await using var daemon = MobilitydProcess.Start(["--state-dir", stateDir, "--gns", "127.0.0.1:9", "--http", "127.0.0.1:0", "--grpc", "off",
            "--socket", "off", "--socks", "off", "--control", "127.0.0.1:0"]);

        Assert.NotEqual(0, await daemon.WaitForExitAsync());
        var stderr = daemon.StandardError;
        Assert.DoesNotContain("Unhandled exception", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        return Assert.Single(stderr.Split('\n'), l => l.StartsWith("mobilityd: ", StringComparison.Ordinal));
    }

    private static async Task ChownAsync(string path, string user)
    {
        var (code, _, stderr) = await Tool.RunAsync("chown", [user, path]);
        Assert.True(code == 0, stderr);
    }
}
