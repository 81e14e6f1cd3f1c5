namespace Mobility.Daemon.FunctionalTests;

/// <summary>
/// The socket is 0660 with a configurable group, so another user in that group can connect and read;
/// changing state is allowed only to the socket's owner or root, checked with SO_PEERCRED.
/// </summary>
public sealed class UnixSocketAuthTests
{
    [OtherUserFact]
    public async Task Another_user_can_read_but_not_change_state()
    {
        var gns = new FakeGns();
        // nobody's group may connect: the refusal below is the credential check, not the file mode.
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--socket-group", "nogroup"]);
        var mode = File.GetUnixFileMode(daemon.SocketPath);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, mode);

        var read = await AsNobody(daemon.SocketPath, ["http://mobilityd/v1/self"]);
        var write = await AsNobody(daemon.SocketPath, ["-X", "PUT", "-H", "Content-Type: application/json", "-d", "{\"addresses\":[\"127.0.0.9\"]}", "http://mobilityd/v1/addresses"]);
        var writeH2 = await AsNobody(daemon.GrpcSocketPath, ["--http2-prior-knowledge", "-X", "PUT", "-H", "Content-Type: application/json", "-d", "{\"addresses\":[\"127.0.0.9\"]}", "http://mobilityd/v1/addresses"]);

        Assert.Equal("200", read.Status);
        Assert.Contains(daemon.Guid.ToString(), read.Body, StringComparison.Ordinal);
        Assert.Equal("403", write.Status);
        Assert.Contains("uid 65534", write.Body, StringComparison.Ordinal);
        Assert.Equal("403", writeH2.Status);
        Assert.Equal([daemon.Address], daemon.Api.GetAddresses().Addresses.ToArray());

        // The owner (root here) may.
        using var owner = DaemonInstance.UnixClient(daemon.SocketPath);
        var moved = DaemonInstance.NewAddress();
        using var response = await owner.PutAsJsonAsync("v1/addresses", new { addresses = new[] { moved.ToString() } }).WithTimeout();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal([moved], daemon.Api.GetAddresses().Addresses.ToArray());
    }

    [OtherUserFact]
    public async Task A_user_outside_the_socket_group_cannot_connect()
    {
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient());

        var read = await AsNobody(daemon.SocketPath, ["http://mobilityd/v1/self"]);

        Assert.Equal("000", read.Status);
    }

    private static async Task<(string Status, string Body)> AsNobody(string socket, string[] curlArgs)
    {
        var args = new List<string> { "--reuid=nobody", "--regid=nogroup", "--clear-groups", "curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", socket };
        args.AddRange(curlArgs);
        var (_, stdout, _) = await Tool.RunAsync("setpriv", args);
        var lines = stdout.TrimEnd('\n').Split('\n');
        return (lines[^1], string.Join('\n', lines[..^1]));
    }
}
