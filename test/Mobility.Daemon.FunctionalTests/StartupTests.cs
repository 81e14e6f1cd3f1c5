using System.Text.Json;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>
/// mobilityd's start-up and usage errors as a newcomer meets them: one line on stderr (no stack
/// trace), exit 64 for a bad command line or value, exit 1 when it cannot start; and one owner per
/// state folder and socket, so a second daemon leaves the running one untouched.
/// </summary>
public sealed class StartupTests
{
    private static string[] ErrorLines(MobilitydProcess daemon)
        => daemon.StandardError.Split('\n').Where(l => l.StartsWith("mobilityd: ", StringComparison.Ordinal)).ToArray();

    private static async Task<string> FailsInOneLineAsync(MobilitydProcess daemon, int exitCode)
    {
        Assert.Equal(exitCode, await daemon.WaitForExitAsync());
        var line = Assert.Single(ErrorLines(daemon));
        Assert.DoesNotContain("   at ", daemon.StandardError, StringComparison.Ordinal);
        Assert.Null(daemon.Ready);
        return line;
    }

    private static string[] FirstArgs(string dir) =>
    [
        "--state-dir", dir, "--embedded-gns", "--embedded-gns-udp", "127.0.0.1:0", "--address", DaemonInstance.NewAddress().ToString(),
        "--http", "127.0.0.1:0", "--grpc", "off", "--socks", "off", "--transport", "127.0.0.1:0", "--socket", Path.Combine(dir, "d.sock"),
    ];

    private static async Task AssertReachableAsync(string socket)
    {
        using var client = DaemonInstance.UnixClient(socket);
        var self = await client.GetFromJsonAsync<JsonElement>("v1/self").WithTimeout();
        Assert.Matches("^[0-9a-f]{40}$", self.GetProperty("guid").GetString());
    }

    [Theory]
    [InlineData("--embeded-gns", "'--embeded-gns'")]
    [InlineData("--adress 127.0.0.2", "'--adress'")]
    [InlineData("--bogus x", "'--bogus'")]
    public async Task A_typo_flag_is_refused_with_exit_64_in_one_line(string typo, string named)
    {
        await using var daemon = MobilitydProcess.Start([.. typo.Split(' '), "--state-dir", DaemonInstance.NewFolder(), "--gns", "127.0.0.1:9"]);

        var line = await FailsInOneLineAsync(daemon, 64);
        Assert.Contains(named, line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_value_is_refused_with_exit_64_in_one_line()
    {
        await using var daemon = MobilitydProcess.Start(["--state-dir", DaemonInstance.NewFolder(), "--gns", "127.0.0.1:9", "--Challenge:Attempts", "x"]);

        var line = await FailsInOneLineAsync(daemon, 64);
        Assert.Contains("Challenge:Attempts", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_second_daemon_on_the_same_state_folder_is_refused_and_the_first_stays_reachable()
    {
        var dir = DaemonInstance.NewFolder();
        await using var first = MobilitydProcess.Start(FirstArgs(dir));
        await first.WaitReadyAsync();

        await using var second = MobilitydProcess.Start(FirstArgs(dir));
        var line = await FailsInOneLineAsync(second, 1);

        Assert.Contains($"state folder {dir} is in use", line, StringComparison.Ordinal);
        await AssertReachableAsync(first.Field("socket"));
        Assert.True(File.Exists(first.Field("grpc-socket")));
    }

    [Fact]
    public async Task A_second_daemon_on_the_same_socket_is_refused_and_leaves_the_socket_alone()
    {
        var firstDir = DaemonInstance.NewFolder();
        await using var first = MobilitydProcess.Start(FirstArgs(firstDir));
        await first.WaitReadyAsync();
        var socket = first.Field("socket");

        var secondDir = DaemonInstance.NewFolder();
        await using var second = MobilitydProcess.Start(
            ["--state-dir", secondDir, "--gns", first.Field("gns"), "--address", DaemonInstance.NewAddress().ToString(), "--http", "127.0.0.1:0",
             "--grpc", "off", "--socks", "off", "--transport", "127.0.0.1:0", "--socket", socket]);
        var line = await FailsInOneLineAsync(second, 1);

        Assert.Contains($"socket {socket} is in use", line, StringComparison.Ordinal);
        Assert.True(File.Exists(socket));
        await AssertReachableAsync(socket);
        Assert.Equal(0, await first.StopAsync());
        Assert.False(File.Exists(socket));
    }

    [Fact]
    public async Task A_socket_path_where_another_process_listens_is_refused()
    {
        var dir = DaemonInstance.NewFolder();
        var path = Path.Combine(dir, "other.sock");
        using var other = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        other.Bind(new UnixDomainSocketEndPoint(path));
        other.Listen();

        await using var daemon = MobilitydProcess.Start(
            ["--state-dir", dir, "--gns", "127.0.0.1:9", "--http", "127.0.0.1:0", "--grpc", "off", "--socks", "off", "--control", "127.0.0.1:0",
             "--transport", "127.0.0.1:0", "--socket", path]);
        var line = await FailsInOneLineAsync(daemon, 1);

        Assert.Contains($"socket {path} is in use", line, StringComparison.Ordinal);
        Assert.True(File.Exists(path));
    }

    [Fact]
    public async Task A_taken_http_port_fails_start_in_one_line_naming_the_address()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var endPoint = (IPEndPoint)taken.LocalEndpoint;
        var dir = DaemonInstance.NewFolder();

        await using var daemon = MobilitydProcess.Start(
            ["--state-dir", dir, "--gns", "127.0.0.1:9", "--http", endPoint.ToString(), "--grpc", "off", "--socks", "off", "--control", "127.0.0.1:0",
             "--transport", "127.0.0.1:0", "--socket", Path.Combine(dir, "d.sock")]);
        var line = await FailsInOneLineAsync(daemon, 1);

        Assert.Contains(endPoint.ToString(), line, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir, "d.sock")));
    }

    [Fact]
    public async Task A_taken_control_port_fails_start_in_one_line_naming_the_address()
    {
        using var taken = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var endPoint = (IPEndPoint)taken.Client.LocalEndPoint!;

        await using var daemon = MobilitydProcess.Start(
            ["--state-dir", DaemonInstance.NewFolder(), "--gns", "127.0.0.1:9", "--http", "127.0.0.1:0", "--grpc", "off", "--socks", "off",
             "--socket", "off", "--transport", "127.0.0.1:0", "--control", endPoint.ToString()]);
        var line = await FailsInOneLineAsync(daemon, 1);

        Assert.Contains($"cannot bind UDP {endPoint}", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--socks", "SOCKS5 endpoint, Socks (--socks)")]
    [InlineData("--transport", "mobile transport, Transport (--transport)")]
    public async Task A_taken_tcp_endpoint_fails_start_in_one_line_naming_the_address_and_the_option(string flag, string named)
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var endPoint = (IPEndPoint)taken.LocalEndpoint;
        var others = new Dictionary<string, string> { ["--socks"] = "off", ["--transport"] = "127.0.0.1:0", [flag] = endPoint.ToString() };

        await using var daemon = MobilitydProcess.Start(
            ["--state-dir", DaemonInstance.NewFolder(), "--gns", "127.0.0.1:9", "--http", "off", "--grpc", "off", "--socket", "off", "--control", "127.0.0.1:0",
             .. others.SelectMany(o => new[] { o.Key, o.Value })]);
        var line = await FailsInOneLineAsync(daemon, 1);

        Assert.Contains($"cannot bind TCP {endPoint} ({named})", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_taken_embedded_gns_endpoint_fails_start_in_one_line_naming_the_address_and_the_option()
    {
        using var taken = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var endPoint = (IPEndPoint)taken.Client.LocalEndPoint!;

        await using var daemon = MobilitydProcess.Start(
            ["--state-dir", DaemonInstance.NewFolder(), "--embedded-gns", "--embedded-gns-udp", endPoint.ToString(), "--http", "off", "--grpc", "off",
             "--socks", "off", "--socket", "off", "--transport", "127.0.0.1:0", "--control", "127.0.0.1:0"]);
        var line = await FailsInOneLineAsync(daemon, 1);

        Assert.Contains($"cannot bind UDP {endPoint} (GNS datagram endpoint, EmbeddedGnsUdp (--embedded-gns-udp))", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--socks 127.0.0.1", "Socks (--socks): '127.0.0.1'")]
    [InlineData("--transport off", "Transport (--transport)")]
    [InlineData("--http [::1]", "Http (--http): '[::1]'")]
    [InlineData("--gns 192.0.2.1:7353,not a name", "Gns (--gns): 'not a name'")]
    public async Task A_bad_endpoint_is_refused_with_exit_64_in_one_line_naming_the_option_and_the_value(string setting, string named)
    {
        var (flag, value) = (setting.Split(' ', 2)[0], setting.Split(' ', 2)[1]);
        string[] gns = flag == "--gns" ? [] : ["--gns", "127.0.0.1:9"];
        await using var daemon = MobilitydProcess.Start(["--state-dir", DaemonInstance.NewFolder(), .. gns, flag, value]);

        var line = await FailsInOneLineAsync(daemon, 64);
        Assert.Contains(named, line, StringComparison.Ordinal);
    }
}
