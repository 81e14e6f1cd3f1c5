using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Mobility.Gns.Tests.Support;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;

namespace Mobility.Gns.Tests.Executable;

/// <summary>The `gns serve` process: ready line, real ports, HTTP/JSON, UDP, and a clean stop on SIGTERM.</summary>
public sealed partial class GnsExecutableTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "gns-exe-" + Guid.NewGuid().ToString("N"));

    public GnsExecutableTests() => Directory.CreateDirectory(_directory);

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [GeneratedRegex(@"^gns listening udp=(?<udp>\S+) http=http://(?<http>\S+) grpc=(?<grpc>off|http://\S+) store=(?<store>\S+)$")]
    private static partial Regex ReadyLine();

    private Process Start(IEnumerable<string> arguments, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _directory,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "gns.dll"));
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        return Process.Start(info)!;
    }

    private static async Task<Match> ReadReadyLineAsync(Process process)
    {
        var line = await process.StandardOutput.ReadLineAsync().Within();
        Assert.NotNull(line);
        var match = ReadyLine().Match(line!);
        Assert.True(match.Success, line);
        return match;
    }

    private static async Task<int> TerminateAsync(Process process)
    {
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync().Within();
        }

        await process.WaitForExitAsync().Within();
        return process.ExitCode;
    }

    [Fact]
    public async Task Serve_on_port_zero_prints_real_ports_answers_json_and_udp_and_stops_on_sigterm()
    {
        using var process = Start(["serve", "--memory", "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]);
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            var ready = await ReadReadyLineAsync(process);
            Assert.Equal("memory", ready.Groups["store"].Value);
            var udp = IPEndPoint.Parse(ready.Groups["udp"].Value);
            var http = IPEndPoint.Parse(ready.Groups["http"].Value);
            Assert.NotEqual(0, udp.Port);
            Assert.NotEqual(0, http.Port);
            Assert.NotEqual(0, new Uri(ready.Groups["grpc"].Value).Port);

            using var key = HostKey.Generate();
            using var client = new HttpClient { Timeout = Timeouts.Test };
            using var response = await client.GetAsync($"http://{http}/v1/records/{key.Guid}").Within();
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Contains("\"code\"", await response.Content.ReadAsStringAsync().Within(), StringComparison.Ordinal);

            using var socket = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
            await socket.SendAsync(GnsDatagram.LookupGuid(3, key.Guid), udp).Within();
            var reply = GnsDatagram.ParseResponse((await socket.ReceiveAsync().Within()).Buffer);
            Assert.Equal(GnsErrorCode.NotFound, reply.ErrorCode);
        }
        finally
        {
            if (!process.HasExited)
            {
                Assert.Equal(0, await TerminateAsync(process));
            }
        }

        var log = await stderr.Within();
        Assert.Contains("Application is shutting down", log, StringComparison.Ordinal);
        Assert.Equal("", (await process.StandardOutput.ReadToEndAsync().Within()).Trim());
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
        using var process = Start(["serve"], environment);
        _ = process.StandardError.ReadToEndAsync();
        try
        {
            var ready = await ReadReadyLineAsync(process);
            Assert.Equal("sqlite:" + Path.Combine(_directory, "db"), ready.Groups["store"].Value);
            Assert.Equal("off", ready.Groups["grpc"].Value);
            Assert.True(File.Exists(Path.Combine(_directory, "db", "gns.db")));
        }
        finally
        {
            if (!process.HasExited)
            {
                Assert.Equal(0, await TerminateAsync(process));
            }
        }
    }

    [Fact]
    public async Task Invalid_setting_fails_start_with_a_message_and_non_zero_exit()
    {
        using var process = Start(["serve", "--memory", "--udp", "not-an-endpoint", "--http", "127.0.0.1:0", "--grpc", ""]);
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().Within();
        Assert.NotEqual(0, process.ExitCode);
        Assert.Contains("Gns:Udp", await stderr.Within(), StringComparison.Ordinal);
        Assert.Equal("", (await process.StandardOutput.ReadToEndAsync().Within()).Trim());
    }

    [Fact]
    public async Task An_endpoint_out_of_range_is_refused_in_one_line_with_exit_64()
    {
        using var process = Start(["serve", "--memory", "--udp", "127.0.0.1:99999", "--http", "127.0.0.1:0", "--grpc", ""]);
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().Within();

        Assert.Equal(64, process.ExitCode);
        var lines = (await stderr.Within()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(lines);
        Assert.StartsWith("gns: ", line, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1:99999", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_taken_udp_port_fails_start_in_one_line_naming_the_address()
    {
        using var taken = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var endPoint = (IPEndPoint)taken.Client.LocalEndPoint!;
        using var process = Start(["serve", "--memory", "--udp", endPoint.ToString(), "--http", "127.0.0.1:0", "--grpc", ""]);
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().Within();

        Assert.Equal(1, process.ExitCode);
        var log = await stderr.Within();
        var line = Assert.Single(log.Split('\n'), l => l.StartsWith("gns: ", StringComparison.Ordinal));
        Assert.Contains($"cannot bind UDP {endPoint}", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", log, StringComparison.Ordinal);
        Assert.Equal("", (await process.StandardOutput.ReadToEndAsync().Within()).Trim());
    }
}
