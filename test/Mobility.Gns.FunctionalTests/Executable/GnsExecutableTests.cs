namespace Mobility.Gns.FunctionalTests.Executable;

/// <summary>The `gns serve` process: ready line, real ports, HTTP/JSON, UDP, and a clean stop on SIGTERM.</summary>
public sealed class GnsExecutableTests
{
    [Fact]
    public async Task Serve_on_port_zero_prints_real_ports_answers_json_and_udp_and_stops_on_sigterm()
    {
        await using var gns = await GnsProcess.StartInMemoryAsync();
        Assert.Equal("memory", gns.Store);
        Assert.NotEqual(0, gns.Udp.Port);
        Assert.NotEqual(0, gns.Http.Port);
        Assert.NotEqual(0, gns.Grpc.Port);

        using var key = HostKey.Generate();
        using (var client = new HttpClient { Timeout = TestTimeout.Default })
        using (var response = await client.GetAsync($"http://{gns.Http}/v1/records/{key.Guid}").WithTimeout())
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Contains("\"code\"", await response.Content.ReadAsStringAsync().WithTimeout(), StringComparison.Ordinal);
        }

        using (var socket = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0)))
        {
            await socket.SendAsync(GnsDatagram.LookupGuid(3, key.Guid), gns.Udp).WithTimeout();
            var reply = GnsDatagram.ParseResponse((await socket.ReceiveAsync().WithTimeout()).Buffer);
            Assert.Equal(GnsErrorCode.NotFound, reply.ErrorCode);
        }

        Assert.Equal(0, await gns.StopAsync());
        Assert.Contains("Application is shutting down", gns.Log, StringComparison.Ordinal);
        // The ready line is the only line on stdout.
        Assert.Equal(gns.Ready.Text, gns.Process.StandardOutput.Trim());
    }

    [Fact]
    public async Task Settings_come_from_environment_and_sqlite_store_reports_its_absolute_folder()
    {
        var environment = new Dictionary<string, string>
        {
            ["GNS_Gns__Udp"] = "127.0.0.1:0",
            ["GNS_Gns__Http"] = "127.0.0.1:0",
            ["GNS_Gns__Grpc"] = "",
            ["GNS_Gns__DataDirectory"] = "db",
        };
        await using var gns = await GnsProcess.StartAsync(["serve"], environment);

        Assert.Equal("sqlite:" + Path.Combine(gns.WorkingDirectory, "db"), gns.Store);
        Assert.Equal("off", gns.Ready["grpc"]);
        Assert.True(File.Exists(Path.Combine(gns.WorkingDirectory, "db", "gns.db")));
        Assert.Equal(0, await gns.StopAsync());
    }

    [Fact]
    public async Task Invalid_setting_fails_start_with_a_message_and_non_zero_exit()
    {
        await using var process = TestProcess.Start(Executables.Locate("gns", "Mobility.Gns.Host"),
            ["serve", "--memory", "--udp", "not-an-endpoint", "--http", "127.0.0.1:0", "--grpc", ""]);

        Assert.NotEqual(0, await process.WaitForExitAsync());
        Assert.Contains("Gns:Udp", process.StandardError, StringComparison.Ordinal);
        Assert.Equal("", process.StandardOutput.Trim());
    }

    [Fact]
    public async Task An_endpoint_out_of_range_is_refused_in_one_line_with_exit_64()
    {
        await using var process = TestProcess.Start(Executables.Locate("gns", "Mobility.Gns.Host"),
            ["serve", "--memory", "--udp", "127.0.0.1:99999", "--http", "127.0.0.1:0", "--grpc", ""]);

        Assert.Equal(64, await process.WaitForExitAsync());
        var lines = process.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(lines);
        Assert.StartsWith("gns: ", line, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1:99999", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_setting_that_does_not_convert_is_refused_in_one_line_with_exit_64()
    {
        await using var process = TestProcess.Start(Executables.Locate("gns", "Mobility.Gns.Host"),
            ["serve", "--memory", "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--grpc", ""],
            new Dictionary<string, string> { ["GNS_Gns__MaxTtl"] = "a day" });

        Assert.Equal(64, await process.WaitForExitAsync());
        var line = Assert.Single(process.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("gns: Failed to convert configuration value 'a day' at 'Gns:MaxTtl' to type 'System.TimeSpan'.", line);
        Assert.Equal("", process.StandardOutput.Trim());
    }

    [Fact]
    public async Task A_taken_udp_port_fails_start_in_one_line_naming_the_address()
    {
        using var taken = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var endPoint = (IPEndPoint)taken.Client.LocalEndPoint!;
        await using var process = TestProcess.Start(Executables.Locate("gns", "Mobility.Gns.Host"),
            ["serve", "--memory", "--udp", endPoint.ToString(), "--http", "127.0.0.1:0", "--grpc", ""]);

        Assert.Equal(1, await process.WaitForExitAsync());
        var log = process.StandardError;
        var line = Assert.Single(log.Split('\n'), l => l.StartsWith("gns: ", StringComparison.Ordinal));
        Assert.Contains($"cannot bind UDP {endPoint} (GNS datagram endpoint, Gns:Udp (--udp))", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", log, StringComparison.Ordinal);
        Assert.Equal("", process.StandardOutput.Trim());
    }

    [Fact]
    public async Task A_taken_dns_port_fails_start_in_one_line_naming_the_address_and_the_option()
    {
        using var taken = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var endPoint = (IPEndPoint)taken.Client.LocalEndPoint!;
        await using var process = TestProcess.Start(Executables.Locate("gns", "Mobility.Gns.Host"),
            ["serve", "--memory", "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--grpc", "off", "--dns", endPoint.ToString(), "--zone", "gns.test"]);

        Assert.Equal(1, await process.WaitForExitAsync());
        var line = Assert.Single(process.StandardError.Split('\n'), l => l.StartsWith("gns: ", StringComparison.Ordinal));
        Assert.Contains($"cannot bind UDP {endPoint} (DNS front end, Gns:Dns (--dns))", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", process.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--udp", "[::1]", "Gns:Udp (--udp): '[::1]'")]
    [InlineData("--grpc", "127.0.0.1", "Gns:Grpc (--grpc): '127.0.0.1'")]
    public async Task A_bad_endpoint_is_refused_with_exit_64_naming_the_option(string flag, string value, string named)
    {
        await using var process = TestProcess.Start(Executables.Locate("gns", "Mobility.Gns.Host"),
            ["serve", "--memory", "--http", "127.0.0.1:0", flag, value]);

        Assert.Equal(64, await process.WaitForExitAsync());
        var line = Assert.Single(process.StandardError.Split('\n'), l => l.StartsWith("gns: ", StringComparison.Ordinal));
        Assert.Contains(named, line, StringComparison.Ordinal);
    }
}
