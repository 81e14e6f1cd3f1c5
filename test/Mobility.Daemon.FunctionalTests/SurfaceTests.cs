using System.Text.Json;
using Grpc.Net.Client;
using Mobility.Daemon.Api;
using Mobility.Daemon.Client;

namespace Mobility.Daemon.FunctionalTests;

/// <summary>Every surface of the API (HTTP/JSON, gRPC, both over TCP and Unix sockets, the files, the kernel upcall) gives the same answers.</summary>
public sealed class SurfaceTests
{
    private sealed record Answers(string SelfGuid, string[] PeerAddresses, string[] GuidsAtPeer, bool ChallengeVerified, string StatusGuid, string[] OwnAddresses);

    [Fact]
    public async Task Http_grpc_unix_sockets_and_files_give_the_same_answers()
    {
        var gns = new FakeGns();
        var second = DaemonInstance.NewAddress();
        await using var peer = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--address", second.ToString(), "--name", "surface-peer"]);
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient());
        await TestTimeout.Eventually(() => gns.Get(peer.Guid) is not null, "the peer registered");

        using var http = new HttpClient { BaseAddress = daemon.HttpBase, Timeout = TestTimeout.Default };
        using var unix = DaemonInstance.UnixClient(daemon.SocketPath);
        using var unixH2 = DaemonInstance.UnixClient(daemon.GrpcSocketPath, http2: true);
        using var grpcTcp = GrpcChannel.ForAddress(daemon.GrpcBase);
        using var grpcUnix = GrpcChannel.ForAddress("http://mobilityd", new GrpcChannelOptions { HttpHandler = UnixHandler(daemon.GrpcSocketPath) });

        var viaHttp = await JsonAnswers(http, peer);
        var viaUnix = await JsonAnswers(unix, peer);
        var viaUnixH2 = await JsonAnswers(unixH2, peer);
        var viaGrpcTcp = await GrpcAnswers(new Mobilityd.MobilitydClient(grpcTcp), peer);
        var viaGrpcUnix = await GrpcAnswers(new Mobilityd.MobilitydClient(grpcUnix), peer);

        var expected = new Answers(
            daemon.Guid.ToString(),
            Sorted([peer.Address.ToString(), second.ToString()]),
            [peer.Guid.ToString()],
            true,
            daemon.Guid.ToString(),
            [daemon.Address.ToString()]);
        Assert.Equivalent(expected, viaHttp, strict: true);
        Assert.Equivalent(expected, viaUnix, strict: true);
        Assert.Equivalent(expected, viaUnixH2, strict: true);
        Assert.Equivalent(expected, viaGrpcTcp, strict: true);
        Assert.Equivalent(expected, viaGrpcUnix, strict: true);

        // The files: guid, addresses, and the hosts file lists the peer learnt by get_ip.
        var state = Path.Combine(daemon.StateDir, "state");
        await TestTimeout.Eventually(() => File.ReadAllText(Path.Combine(state, "hosts")).Contains(peer.Guid.ToString(), StringComparison.Ordinal),
            "the hosts file lists the peer");
        Assert.Equal(expected.SelfGuid, File.ReadAllText(Path.Combine(state, "guid")).Trim());
        Assert.Equal(expected.OwnAddresses, File.ReadAllLines(Path.Combine(state, "addresses")));
        var hosts = File.ReadAllLines(Path.Combine(state, "hosts")).Where(l => !l.StartsWith('#')).ToArray();
        Assert.Contains($"{daemon.Address} {daemon.Guid}.guid", hosts);
        Assert.Equal(expected.PeerAddresses, Sorted(hosts.Where(l => l.Contains(peer.Guid.ToString(), StringComparison.Ordinal)).Select(l => l.Split(' ')[0])));
        Assert.All(hosts.Where(l => l.Contains(peer.Guid.ToString(), StringComparison.Ordinal)), l => Assert.EndsWith($"{peer.Guid}.guid surface-peer", l));
        using var status = JsonDocument.Parse(File.ReadAllText(Path.Combine(state, "status.json")));
        Assert.Equal(expected.StatusGuid, status.RootElement.GetProperty("guid").GetString());
        Assert.Equal(1, status.RootElement.GetProperty("peersVerified").GetInt32());
    }

    [Fact]
    public async Task State_files_are_rewritten_when_the_addresses_change()
    {
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient());
        var moved = DaemonInstance.NewAddress();

        await daemon.Api.SetAddressesAsync([moved]).WithTimeout();

        var path = Path.Combine(daemon.StateDir, "state", "addresses");
        try
        {
            await TestTimeout.Eventually(() => File.ReadAllText(path) == moved + "\n", "the addresses file shows the new address");
        }
        catch (TimeoutException e)
        {
            // What the next failure needs (two CI rehearsals timed out here, each once, never reproduced alone; the second
            // showed the file and the daemon's view alike, without the address set): the addresses, the file, the writer's
            // passes, the monitor's and the writer's logs, warnings.
            var warnings = string.Join("\n", daemon.Logs.Entries.Where(l => l.Level >= Microsoft.Extensions.Logging.LogLevel.Warning
                || l.Category.Contains("StateFiles", StringComparison.Ordinal) || l.Category.Contains("AddressMonitor", StringComparison.Ordinal)));
            var writer = daemon.Services.GetRequiredService<Mobility.Daemon.State.StateFiles>();
            throw new TimeoutException($"{e.Message} Set {daemon.Address} -> {moved}; file: '{File.ReadAllText(path).ReplaceLineEndings("\\n")}'; the daemon's addresses: " +
                $"{string.Join(' ', daemon.Api.GetAddresses().Addresses)}; the writer's passes: {writer.Passes}; logs:\n{warnings}", e);
        }

        Assert.Empty(Directory.GetFiles(Path.Combine(daemon.StateDir, "state"), "*.tmp"));
    }

    [Fact]
    public async Task Bad_requests_are_refused_with_a_reason_on_every_surface()
    {
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient());
        using var http = new HttpClient { BaseAddress = daemon.HttpBase, Timeout = TestTimeout.Default };
        using var grpc = GrpcChannel.ForAddress(daemon.GrpcBase);
        var client = new Mobilityd.MobilitydClient(grpc);

        using var badGuid = await http.PostAsJsonAsync("v1/challenge", new { address = "127.0.0.1", guid = "xyz" }).WithTimeout();
        using var unknown = await http.GetAsync($"v1/ip/{Protocol.Identity.HostKey.Generate().Guid}").WithTimeout();
        using var badAddress = await http.GetAsync("v1/guids/not-an-ip").WithTimeout();
        var grpcError = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => client.GetIpAsync(new GetIpRequest { Target = "no_such name!" }).ResponseAsync.WithTimeout());

        Assert.Equal(HttpStatusCode.BadRequest, badGuid.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, badAddress.StatusCode);
        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, grpcError.StatusCode);
    }

    [Fact]
    public async Task Set_addresses_over_tcp_is_refused_by_default()
    {
        var gns = new FakeGns();
        await using var daemon = await DaemonInstance.StartAsync(gns.CreateClient());
        using var http = new HttpClient { BaseAddress = daemon.HttpBase, Timeout = TestTimeout.Default };

        using var response = await http.PutAsJsonAsync("v1/addresses", new { addresses = new[] { "127.0.0.9" } }).WithTimeout();

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal([daemon.Address], daemon.Api.GetAddresses().Addresses.ToArray());
    }

    private static async Task<Answers> JsonAnswers(HttpClient client, DaemonInstance peer)
    {
        var self = await client.GetFromJsonAsync<JsonElement>("v1/self").WithTimeout();
        var ip = await client.GetFromJsonAsync<JsonElement>($"v1/ip/{peer.Guid}").WithTimeout();
        var guids = await client.GetFromJsonAsync<JsonElement>($"v1/guids/{peer.Address}").WithTimeout();
        using var challengeResponse = await client.PostAsJsonAsync("v1/challenge", new { address = peer.Address.ToString(), guid = peer.Guid.ToString() }).WithTimeout();
        var challenge = await challengeResponse.Content.ReadFromJsonAsync<JsonElement>().WithTimeout();
        var status = await client.GetFromJsonAsync<JsonElement>("v1/status").WithTimeout();
        var addresses = await client.GetFromJsonAsync<JsonElement>("v1/addresses").WithTimeout();
        return new Answers(
            self.GetProperty("guid").GetString()!,
            Sorted(ip.GetProperty("addresses").EnumerateArray().Select(e => e.GetString()!)),
            [.. guids.GetProperty("guids").EnumerateArray().Select(e => e.GetString()!)],
            challenge.GetProperty("verified").GetBoolean(),
            status.GetProperty("guid").GetString()!,
            [.. addresses.GetProperty("addresses").EnumerateArray().Select(e => e.GetString()!)]);
    }

    private static async Task<Answers> GrpcAnswers(Mobilityd.MobilitydClient client, DaemonInstance peer)
    {
        var self = await client.GetSelfGuidAsync(new GetSelfGuidRequest()).ResponseAsync.WithTimeout();
        var ip = await client.GetIpAsync(new GetIpRequest { Target = peer.Guid.ToString() }).ResponseAsync.WithTimeout();
        var guids = await client.GetGuidFromIpAsync(new GetGuidFromIpRequest { Address = peer.Address.ToString() }).ResponseAsync.WithTimeout();
        var challenge = await client.ChallengeAsync(new ChallengeRequest { Address = peer.Address.ToString(), Guid = peer.Guid.ToString() }).ResponseAsync.WithTimeout();
        var status = await client.GetStatusAsync(new GetStatusRequest()).ResponseAsync.WithTimeout();
        var addresses = await client.GetAddressesAsync(new GetAddressesRequest()).ResponseAsync.WithTimeout();
        return new Answers(self.Guid, Sorted(ip.Addresses), [.. guids.Guids], challenge.Verified, status.Guid, [.. addresses.Addresses_]);
    }

    private static string[] Sorted(IEnumerable<string> values) => [.. values.Order(StringComparer.Ordinal)];

    internal static SocketsHttpHandler UnixHandler(string path) => UnixSocketHttp.CreateHandler(path);
}
