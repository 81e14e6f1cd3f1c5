using System.Text.Json;
using Mobility.Protocol.Gns;

namespace Mobility.Cli.FunctionalTests;

// Key files are Unix-mode checked (0600); the project targets Linux hosts.
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class GnsCommandTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mob-cli-").FullName;
    private readonly FakeGnsUdpServer _udp = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _udp.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private sealed record Run(int ExitCode, string Out, string Err)
    {
        public JsonElement Json => JsonDocument.Parse(Out).RootElement;
    }

    private static async Task<Run> Mob(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = await Program.RunAsync(args, stdout, stderr).WithTimeout();
        return new Run(code, stdout.ToString(), stderr.ToString());
    }

    private static void AssertOneLineError(Run run, int exitCode)
    {
        Assert.Equal(exitCode, run.ExitCode);
        Assert.Equal("", run.Out);
        var lines = run.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("mob: ", lines[0], StringComparison.Ordinal);
    }

    private string Gns => _udp.EndPoint.ToString();

    private async Task<string> NewKey(string name = "host.key")
    {
        var path = Path.Combine(_dir, name);
        var run = await Mob("id", "new", "--key", path);
        Assert.Equal(0, run.ExitCode);
        return path;
    }

    [Fact]
    public async Task Id_new_creates_an_owner_only_key_file_and_prints_its_guid()
    {
        var path = Path.Combine(_dir, "sub", "a.key");

        var run = await Mob("id", "new", "--key", path);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", run.Err);
        Assert.True(HostGuid.TryParse(run.Out.Trim(), out var guid));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        using var key = HostKeyFile.Load(path);
        Assert.Equal(key.Guid, guid);
    }

    [Fact]
    public async Task Id_show_prints_the_guid_and_with_json_the_public_key_and_path()
    {
        var path = await NewKey();
        using var key = HostKeyFile.Load(path);

        var plain = await Mob("id", "show", "--key", path);
        var json = await Mob("id", "show", "--key", path, "--json");

        Assert.Equal(key.Guid.ToString(), plain.Out.Trim());
        Assert.Equal(0, json.ExitCode);
        Assert.Equal(key.Guid.ToString(), json.Json.GetProperty("guid").GetString());
        Assert.Equal(key.PublicKeyBytes(), json.Json.GetProperty("publicKey").GetBytesFromBase64());
        Assert.Equal(path, json.Json.GetProperty("keyFile").GetString());
    }

    [Fact]
    public async Task Id_new_refuses_to_overwrite_an_existing_key_unless_forced()
    {
        var path = await NewKey();
        var before = await File.ReadAllBytesAsync(path);

        var refused = await Mob("id", "new", "--key", path);
        AssertOneLineError(refused, ExitCodes.KeyFile);
        Assert.Contains("--force", refused.Err, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllBytesAsync(path));

        var forced = await Mob("id", "new", "--key", path, "--force");
        Assert.Equal(0, forced.ExitCode);
        Assert.NotEqual(before, await File.ReadAllBytesAsync(path));
    }

    [Fact]
    public async Task Id_show_refuses_a_key_file_readable_by_others()
    {
        var path = await NewKey();
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var run = await Mob("id", "show", "--key", path);

        AssertOneLineError(run, ExitCodes.KeyFile);
        Assert.Contains("0644", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Missing_or_garbage_key_file_is_a_key_file_error()
    {
        var garbage = Path.Combine(_dir, "garbage.key");
        await File.WriteAllTextAsync(garbage, "not a key");
        File.SetUnixFileMode(garbage, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        AssertOneLineError(await Mob("id", "show", "--key", Path.Combine(_dir, "missing.key")), ExitCodes.KeyFile);
        AssertOneLineError(await Mob("id", "show", "--key", garbage), ExitCodes.KeyFile);
        AssertOneLineError(await Mob("gns", "register", "--gns", Gns, "--key", garbage, "--addr", "127.0.0.1:4000"), ExitCodes.KeyFile);
        Assert.Equal(0, _udp.RequestCount);
    }

    [Theory]
    [InlineData("")]
    [InlineData("bogus")]
    [InlineData("id")]
    [InlineData("id|show")]
    [InlineData("id|show|--key|k|--unknown")]
    [InlineData("gns|lookup|--gns|127.0.0.1|alpha")]
    [InlineData("gns|lookup|--gns|localhost:7353|alpha")]
    [InlineData("gns|lookup|--grpc|ftp://x|alpha")]
    [InlineData("gns|lookup|not a name!")]
    [InlineData("gns|register|--key|k|--addr|1.2.3.4")]
    [InlineData("gns|register|--key|k|--addr|1.2.3.4:80/bogus")]
    [InlineData("gns|register|--key|k|--addr|1.2.3.4:80|--name|-bad-")]
    [InlineData("gns|register|--key|k|--addr|1.2.3.4:80|--ttl|-1")]
    [InlineData("gns|reverse|1.2.3")]
    [InlineData("gns|watch|not a name!")]
    [InlineData("gns|watch|--count|0|0123456789abcdef0123456789abcdef01234567")]
    public async Task Bad_usage_exits_64_with_one_line_on_stderr(string commandLine)
    {
        AssertOneLineError(await Mob(commandLine.Split('|', StringSplitOptions.RemoveEmptyEntries)), ExitCodes.Usage);
    }

    [Fact]
    public async Task Help_exits_0_and_documents_the_exit_codes()
    {
        var run = await Mob("--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("64   bad usage", run.Out, StringComparison.Ordinal);
        Assert.Contains("MOB_GNS", run.Out, StringComparison.Ordinal);
        Assert.Equal(0, (await Mob("gns", "register", "--help")).ExitCode);
    }

    [Fact]
    public async Task Register_then_lookup_by_guid_and_name_prints_the_record()
    {
        var path = await NewKey();
        using var key = HostKeyFile.Load(path);

        var register = await Mob("gns", "register", "--gns", Gns, "--key", path, "--addr", "192.0.2.1:4000",
            "--addr", "[2001:db8::1]:4001/relay", "--name", "Foxtrot", "--ttl", "60", "--version", "77", "--json");
        Assert.Equal(0, register.ExitCode);
        Assert.Equal(key.Guid.ToString(), register.Json.GetProperty("guid").GetString());
        Assert.Equal(77UL, register.Json.GetProperty("version").GetUInt64());
        Assert.StartsWith("127.0.0.1:", register.Json.GetProperty("observed").GetString(), StringComparison.Ordinal);

        var byGuid = await Mob("gns", "lookup", "--gns", Gns, key.Guid.ToString(), "--json");
        Assert.Equal(0, byGuid.ExitCode);
        Assert.Equal("foxtrot", byGuid.Json.GetProperty("name").GetString());
        Assert.Equal(60U, byGuid.Json.GetProperty("ttlSeconds").GetUInt32());
        var locators = byGuid.Json.GetProperty("locators").EnumerateArray().ToList();
        Assert.Equal(["192.0.2.1", "2001:db8::1"], locators.Select(l => l.GetProperty("address").GetString()));
        Assert.Equal(["host", "relay"], locators.Select(l => l.GetProperty("kind").GetString()));

        var byName = await Mob("gns", "lookup", "--gns", Gns, "foxtrot");
        Assert.Equal(0, byName.ExitCode);
        Assert.Contains($"guid: {key.Guid}", byName.Out, StringComparison.Ordinal);
        Assert.Contains("locator: [2001:db8::1]:4001/relay", byName.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Default_version_grows_across_runs()
    {
        var path = await NewKey();

        var first = await Mob("gns", "register", "--gns", Gns, "--key", path, "--addr", "192.0.2.1:4000", "--json");
        var second = await Mob("gns", "update", "--gns", Gns, "--grpc", "http://127.0.0.1:1", "--key", path, "--addr", "192.0.2.2:4000", "--json");

        Assert.Equal(0, first.ExitCode);
        Assert.Equal(0, second.ExitCode);
        Assert.True(second.Json.GetProperty("version").GetUInt64() > first.Json.GetProperty("version").GetUInt64());
    }

    [Fact]
    public async Task Stale_version_is_rejected_with_exit_3()
    {
        var path = await NewKey();
        Assert.Equal(0, (await Mob("gns", "register", "--gns", Gns, "--key", path, "--addr", "192.0.2.1:4000", "--version", "10")).ExitCode);

        var run = await Mob("gns", "register", "--gns", Gns, "--key", path, "--addr", "192.0.2.1:4000", "--version", "9");

        AssertOneLineError(run, ExitCodes.Rejected);
        Assert.Contains("stale version", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lookup_and_reverse_of_unknown_targets_exit_2()
    {
        using var key = HostKey.Generate();

        AssertOneLineError(await Mob("gns", "lookup", "--gns", Gns, key.Guid.ToString()), ExitCodes.NotFound);
        AssertOneLineError(await Mob("gns", "lookup", "--gns", Gns, "nobody"), ExitCodes.NotFound);
        var reverse = await Mob("gns", "reverse", "--gns", Gns, "198.51.100.99", "--json");
        Assert.Equal(ExitCodes.NotFound, reverse.ExitCode);
        Assert.Empty(reverse.Json.GetProperty("guids").EnumerateArray());
    }

    [Fact]
    public async Task Reverse_prints_the_guids_and_remove_drops_the_record()
    {
        var path = await NewKey();
        using var key = HostKeyFile.Load(path);
        Assert.Equal(0, (await Mob("gns", "register", "--gns", Gns, "--key", path, "--addr", "198.51.100.4:4000", "--version", "5")).ExitCode);

        var reverse = await Mob("gns", "reverse", "--gns", Gns, "198.51.100.4");
        Assert.Equal(0, reverse.ExitCode);
        Assert.Equal(key.Guid.ToString(), reverse.Out.Trim());

        var remove = await Mob("gns", "remove", "--gns", Gns, "--key", path, "--version", "6", "--json");
        Assert.Equal(0, remove.ExitCode);
        Assert.Equal(6UL, remove.Json.GetProperty("version").GetUInt64());
        Assert.False(_udp.Records.ContainsKey(key.Guid));
    }

    [Fact]
    public async Task Unreachable_gns_exits_4()
    {
        _udp.Responder = (_, _) => null;
        using var key = HostKey.Generate();

        var run = await Mob("gns", "lookup", "--gns", Gns, "--grpc", "http://127.0.0.1:1", key.Guid.ToString());

        AssertOneLineError(run, ExitCodes.Unreachable);
        Assert.Contains("unreachable after 4 attempts", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_prints_one_json_line_per_event_and_stops_after_count()
    {
        await using var grpc = await FakeGnsGrpcServer.StartAsync();
        using var key = HostKey.Generate();
        using var absent = HostKey.Generate();
        grpc.State.Records[key.Guid] = TestRecords.Create(key, version: 4);

        var run = await Mob("gns", "watch", "--gns", Gns, "--grpc", grpc.Address.ToString(), "--count", "2", "--json",
            key.Guid.ToString(), absent.Guid.ToString());

        Assert.Equal(0, run.ExitCode);
        var lines = run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(2, lines.Count);
        var present = lines.Single(l => l.GetProperty("guid").GetString() == key.Guid.ToString());
        Assert.False(present.GetProperty("removed").GetBoolean());
        Assert.Equal(4UL, present.GetProperty("record").GetProperty("version").GetUInt64());
        Assert.True(lines.Single(l => l.GetProperty("guid").GetString() == absent.Guid.ToString()).GetProperty("removed").GetBoolean());
    }

    [Fact]
    public async Task Watch_takes_a_name_as_lookup_does_and_watches_its_guid()
    {
        await using var grpc = await FakeGnsGrpcServer.StartAsync();
        using var key = HostKey.Generate();
        var record = TestRecords.Create(key, version: 9, name: "foxtrot");
        _udp.Records[key.Guid] = record;
        grpc.State.Records[key.Guid] = record;

        var run = await Mob("gns", "watch", "--gns", Gns, "--grpc", grpc.Address.ToString(), "--count", "1", "--json", "Foxtrot");

        Assert.Equal(0, run.ExitCode);
        var line = JsonDocument.Parse(run.Out.Trim()).RootElement;
        Assert.Equal(key.Guid.ToString(), line.GetProperty("guid").GetString());
        Assert.Equal(9UL, line.GetProperty("version").GetUInt64());

        var unknown = await Mob("gns", "watch", "--gns", Gns, "--grpc", grpc.Address.ToString(), "nobody");
        AssertOneLineError(unknown, ExitCodes.NotFound);
        Assert.Contains("'nobody'", unknown.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lookup_without_grpc_does_not_fall_back_to_a_guessed_port_and_names_the_gns_that_failed()
    {
        // A GNS answers gRPC on the conventional port of the host; the datagram endpoint given is silent.
        using var silent = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        silent.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        using var key = HostKey.Generate();

        var run = await Mob("gns", "lookup", "--gns", silent.LocalEndPoint!.ToString()!, key.Guid.ToString());

        AssertOneLineError(run, ExitCodes.Unreachable);
        Assert.Contains(silent.LocalEndPoint!.ToString()!, run.Err, StringComparison.Ordinal);
        Assert.DoesNotContain(":7381", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_json_an_error_is_one_json_object_on_stderr()
    {
        using var key = HostKey.Generate();
        var run = await Mob("gns", "lookup", "--gns", Gns, key.Guid.ToString(), "--json");
        Assert.Equal(ExitCodes.NotFound, run.ExitCode);
        Assert.Equal("", run.Out);
        var error = JsonDocument.Parse(run.Err.Trim()).RootElement;
        Assert.Equal(ExitCodes.NotFound, error.GetProperty("exit_code").GetInt32());
        Assert.Contains($"GNS {Gns}", error.GetProperty("error").GetString(), StringComparison.Ordinal);

        var usage = await Mob("gns", "lookup", "--json", "not a name!");
        Assert.Equal(ExitCodes.Usage, usage.ExitCode);
        Assert.Equal(ExitCodes.Usage, JsonDocument.Parse(usage.Err.Trim()).RootElement.GetProperty("exit_code").GetInt32());
    }

    [Fact]
    public async Task Help_names_every_environment_variable_mob_reads()
    {
        var help = await Mob("--help");
        foreach (var variable in new[] { "MOB_GNS", "MOB_GNS_GRPC", "MOBILITYD_SOCKET", "MOBILITYD_SOCKS", "XDG_RUNTIME_DIR", "TMPDIR" })
        {
            Assert.Contains(variable, help.Out, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Watch_ends_with_exit_0_when_cancelled()
    {
        await using var grpc = await FakeGnsGrpcServer.StartAsync();
        using var key = HostKey.Generate();
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        using var cts = new CancellationTokenSource();

        var watch = Program.RunAsync(["gns", "watch", "--gns", Gns, "--grpc", grpc.Address.ToString(), key.Guid.ToString()], stdout, stderr, cts.Token);
        await TestTimeout.Eventually(() => Volatile.Read(ref grpc.State.WatchCalls) == 1 && stdout.ToString().Contains("removed", StringComparison.Ordinal), "the first event");
        await cts.CancelAsync();

        Assert.Equal(0, await watch.WithTimeout());
        Assert.Equal("", stderr.ToString());
    }
}
