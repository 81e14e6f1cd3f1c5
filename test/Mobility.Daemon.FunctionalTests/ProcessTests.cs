using System.Text.Json;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>mobilityd as a process: flags, environment, the ready line with real ports, SIGTERM.</summary>
public sealed class ProcessTests
{
    [Fact]
    public async Task Two_daemon_processes_with_an_embedded_gns_verify_each_other()
    {
        var firstDir = DaemonInstance.NewFolder();
        var secondDir = DaemonInstance.NewFolder();
        var firstAddress = DaemonInstance.NewAddress();
        var secondAddress = DaemonInstance.NewAddress();
        await using var first = MobilitydProcess.Start(
        [
            "--embedded-gns", "--embedded-gns-udp", "127.0.0.1:0", "--state-dir", firstDir, "--address", firstAddress.ToString(),
            "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--socket", Path.Combine(firstDir, "d.sock"),
        ]);
        var ready = await first.WaitReadyAsync();
        Assert.Matches(@"^mobilityd ready guid=[0-9a-f]{40} control=[0-9.]+:7390 http=http://127\.0\.0\.1:[1-9][0-9]* socket=\S+ grpc=http://127\.0\.0\.1:[1-9][0-9]* grpc-socket=\S+ transport=[0-9.]+:[1-9][0-9]* socks=\S+ gns=127\.0\.0\.1:[1-9][0-9]*$", ready);
        await using var second = MobilitydProcess.Start(
            ["--state-dir", secondDir, "--http", "127.0.0.1:0", "--grpc", "off", "--socket", Path.Combine(secondDir, "d.sock"), "--gns", first.Field("gns")],
            new Dictionary<string, string> { ["MOBILITYD_Addresses__0"] = secondAddress.ToString(), ["MOBILITYD_TransportPort"] = "9100" });
        await second.WaitReadyAsync();
        Assert.Equal("-", second.Field("grpc"));

        using var http = new HttpClient { BaseAddress = new Uri(second.Field("http") + "/"), Timeout = TestTimeout.Default };
        var guid = first.Field("guid");
        using var challenge = await http.PostAsJsonAsync("v1/challenge", new { address = firstAddress.ToString(), guid }).WithTimeout();
        var verdict = await challenge.Content.ReadFromJsonAsync<JsonElement>().WithTimeout();
        Assert.True(verdict.GetProperty("verified").GetBoolean(), verdict.GetRawText());
        await TestTimeout.Eventually(async () =>
            (await http.GetFromJsonAsync<JsonElement>("v1/status")).GetProperty("gnsReachable").GetBoolean(), "the second daemon published to the first's GNS");
        var status = await http.GetFromJsonAsync<JsonElement>("v1/status").WithTimeout();
        Assert.Equal(9100, status.GetProperty("transportPort").GetInt32());
        Assert.Equal(secondAddress.ToString(), status.GetProperty("addresses")[0].GetString());
        var ip = await http.GetFromJsonAsync<JsonElement>($"v1/ip/{guid}").WithTimeout();
        Assert.Equal(firstAddress.ToString(), ip.GetProperty("addresses")[0].GetString());

        // The key was created 0600 on first start; SIGTERM stops cleanly and removes the sockets.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(firstDir, "host.key")));
        Assert.Equal(0, await first.StopAsync());
        Assert.False(File.Exists(Path.Combine(firstDir, "d.sock")));
        Assert.True(File.Exists(Path.Combine(firstDir, "gns", "gns.db")));
    }

    [Fact]
    public async Task A_bad_flag_is_refused_with_a_message_and_exit_code_64()
    {
        await using var daemon = MobilitydProcess.Start(["--state-dir", DaemonInstance.NewFolder(), "--gns", "127.0.0.1:99999"]);

        Assert.Equal(64, await daemon.WaitForExitAsync());
        Assert.Contains("--gns", daemon.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_file_readable_by_others_stops_the_daemon()
    {
        var dir = DaemonInstance.NewFolder();
        var keyPath = Path.Combine(dir, "host.key");
        Mobility.Protocol.Identity.HostKeyFile.Save(Mobility.Protocol.Identity.HostKey.Generate(), keyPath);
        File.SetUnixFileMode(keyPath, (UnixFileMode)0x1A4); // 0644

        await using var daemon = MobilitydProcess.Start(["--state-dir", dir, "--gns", "127.0.0.1:9", "--http", "127.0.0.1:0", "--grpc", "off", "--socket", "off", "--control", "127.0.0.1:0"]);

        Assert.NotEqual(0, await daemon.WaitForExitAsync());
        Assert.Contains("chmod 600", daemon.StandardError, StringComparison.Ordinal);
    }
}
