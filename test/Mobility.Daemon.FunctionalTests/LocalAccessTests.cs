using System.Globalization;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>
/// Local trust (docs/mobilityd.md, "Local access"): only root, the daemon's user and the members of
/// the admitted groups may act as this host through SOCKS5, HTTP/JSON, gRPC or the Unix socket. The
/// clients run as real other users (setpriv); the daemon learns who they are from the kernel.
/// </summary>
public sealed class LocalAccessTests
{
    private static readonly string[] Endpoints = ["--socks", "127.0.0.1:0", "--Logging:LogLevel:Default", "Debug"];

    [OtherUserFact]
    public async Task An_unadmitted_user_is_refused_on_socks5_http_grpc_and_the_unix_socket()
    {
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: Endpoints);
        // Even a socket file opened to everyone (an administrator's mistake) does not admit others: the kernel names the caller.
        File.SetUnixFileMode(daemon.SocketPath, (UnixFileMode)0x1B6);

        var socks = await SocksAsync(daemon, "nobody", "nogroup", initGroups: false);
        var http = await CurlAsync("nobody", "nogroup", false, $"http://{daemon.Endpoints.Http}/v1/self");
        var grpc = await GrpcAsync(daemon, "nobody", "nogroup", false);
        var unix = await CurlAsync("nobody", "nogroup", false, "--unix-socket", daemon.SocketPath, "http://mobilityd/v1/self");

        Assert.StartsWith("05 00 05 02", socks.Reply, StringComparison.Ordinal); // 0x02: connection not allowed by ruleset
        Assert.DoesNotContain(daemon.Guid.ToString(), socks.After, StringComparison.Ordinal);
        Assert.Equal("403", http.Status);
        Assert.Contains("\"code\": 7", http.Body.Replace("\"code\":7", "\"code\": 7", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Contains("uid 65534", http.Body, StringComparison.Ordinal);
        Assert.DoesNotContain(daemon.Guid.ToString(), http.Body, StringComparison.Ordinal);
        Assert.Contains("grpc-status: 7", grpc, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(daemon.Guid.ToString(), grpc, StringComparison.Ordinal);
        Assert.Equal("403", unix.Status);
        Assert.Contains("uid 65534", unix.Body, StringComparison.Ordinal);
        // Refusals are logged at Debug only: a local user cannot flood the log.
        Assert.Contains(daemon.Logs.Entries, e => e.Level == Microsoft.Extensions.Logging.LogLevel.Debug && e.Message.Contains("not admitted", StringComparison.Ordinal));
        Assert.Contains(daemon.Logs.Entries, e => e.Level == Microsoft.Extensions.Logging.LogLevel.Debug && e.Message.Contains("Refused an API call", StringComparison.Ordinal));
    }

    [OtherUserFact]
    public async Task A_user_added_to_the_admitted_group_is_served_everywhere_from_its_next_connection()
    {
        await using var account = await ThrowawayAccount.CreateAsync();
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient(),
            extraArgs: [.. Endpoints, "--LocalAccess:Groups:0", account.Group, "--socket-group", account.Group]);
        var guid = daemon.Guid.ToString();

        // Not yet a member: refused.
        var before = await CurlAsync(account.User, "nogroup", true, $"http://{daemon.Endpoints.Http}/v1/self");
        Assert.Equal("403", before.Status);

        await account.JoinGroupAsync();
        var socks = await SocksAsync(daemon, account.User, "nogroup", initGroups: true);
        var http = await CurlAsync(account.User, "nogroup", true, $"http://{daemon.Endpoints.Http}/v1/self");
        var grpc = await GrpcAsync(daemon, account.User, "nogroup", true);
        var unix = await CurlAsync(account.User, "nogroup", true, "--unix-socket", daemon.SocketPath, "http://mobilityd/v1/self");

        Assert.StartsWith("05 00 05 00", socks.Reply, StringComparison.Ordinal);
        Assert.Contains(guid, socks.After, StringComparison.Ordinal); // the relayed HTTP answer
        Assert.Equal("200", http.Status);
        Assert.Contains(guid, http.Body, StringComparison.Ordinal);
        Assert.Contains(guid, grpc, StringComparison.Ordinal);
        Assert.DoesNotContain("grpc-status: 7", grpc, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("200", unix.Status);
        Assert.Contains(guid, unix.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_daemons_own_user_is_served_on_socks5()
    {
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: Endpoints);
        var socks = daemon.Socks;

        using var client = await SocksTestClient.ConnectAsync(socks, IPAddress.Loopback, daemon.Endpoints.Http!.Port, Socks5Reply.Succeeded);
        await client.SendAsync("GET /v1/self HTTP/1.0\r\nHost: x\r\n\r\n"u8.ToArray()).WithTimeout();
        var answer = System.Text.Encoding.UTF8.GetString(await SocksTestClient.ReadToEndAsync(client));

        Assert.Contains(daemon.Guid.ToString(), answer, StringComparison.Ordinal);
    }

    /// <summary>A SOCKS5 CONNECT (no authentication) to the daemon's own HTTP endpoint as <paramref name="user"/>, then GET /v1/self through it.</summary>
    private static async Task<(string Reply, string After)> SocksAsync(DaemonInstance daemon, string user, string group, bool initGroups)
    {
        var socks = daemon.Socks;
        var target = daemon.Endpoints.Http!;
        var request = string.Concat(new byte[] { 5, 1, 0, 5, 1, 0, 1 }.Concat(target.Address.GetAddressBytes())
            .Concat([(byte)(target.Port >> 8), (byte)target.Port]).Select(b => $"\\x{b:x2}"));
        var script = $"exec 3<>/dev/tcp/{socks.Address}/{socks.Port}; printf '{request}' >&3; head -c 12 <&3 | od -An -tx1; " +
                     "printf 'GET /v1/self HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' >&3 2>/dev/null; timeout 10 cat <&3";
        var (_, stdout, _) = await RunAsAsync(user, group, initGroups, ["bash", "-c", script]);
        var lines = stdout.Split('\n', 2);
        return (lines[0].Trim(), lines.Length > 1 ? lines[1] : "");
    }

    /// <summary>A gRPC GetSelfGuid call (an empty message in a 5-byte gRPC frame) over h2c; headers, trailers and body as curl prints them.</summary>
    private static async Task<string> GrpcAsync(DaemonInstance daemon, string user, string group, bool initGroups)
    {
        var script = "printf '\\0\\0\\0\\0\\0' | curl -s -i --raw --http2-prior-knowledge -X POST -H 'content-type: application/grpc' -H 'te: trailers' " +
                     $"--data-binary @- -o - http://{daemon.Endpoints.Grpc}/mobility.daemon.v1.Mobilityd/GetSelfGuid";
        var (_, stdout, _) = await RunAsAsync(user, group, initGroups, ["bash", "-c", script]);
        return stdout;
    }

    private static async Task<(string Status, string Body)> CurlAsync(string user, string group, bool initGroups, params string[] args)
    {
        var (_, stdout, _) = await RunAsAsync(user, group, initGroups, ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", .. args]);
        var lines = stdout.TrimEnd('\n').Split('\n');
        return (lines[^1], string.Join('\n', lines[..^1]));
    }

    private static Task<(int ExitCode, string Stdout, string Stderr)> RunAsAsync(string user, string group, bool initGroups, IEnumerable<string> command)
        => Tool.RunAsync("setpriv", [$"--reuid={user}", $"--regid={group}", initGroups ? "--init-groups" : "--clear-groups", .. command]);

    /// <summary>A system user (primary group nogroup) and a group it is not yet in, removed again on dispose.</summary>
    private sealed class ThrowawayAccount : IAsyncDisposable
    {
        private ThrowawayAccount(string name)
        {
            User = "mobu" + name;
            Group = "mobg" + name;
        }

        public string User { get; }

        public string Group { get; }

        public static async Task<ThrowawayAccount> CreateAsync()
        {
            var account = new ThrowawayAccount(Random.Shared.Next(0, 1 << 24).ToString("x6", CultureInfo.InvariantCulture));
            await MustAsync("groupadd", ["--system", account.Group]);
            await MustAsync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--gid", "nogroup", account.User]);
            return account;
        }

        public Task JoinGroupAsync() => MustAsync("gpasswd", ["--add", User, Group]);

        public async ValueTask DisposeAsync()
        {
            await Tool.RunAsync("userdel", [User]);
            await Tool.RunAsync("groupdel", [Group]);
        }

        private static async Task MustAsync(string tool, string[] args)
        {
            var (code, _, stderr) = await Tool.RunAsync(tool, args);
            Assert.True(code == 0, $"{tool} {string.Join(' ', args)}: exit {code}: {stderr}");
        }
    }
}
