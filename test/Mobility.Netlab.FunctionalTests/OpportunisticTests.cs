using System.Security.Cryptography;
using System.Text.Json;
using Mobility.Daemon.Client;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Topology;
using static Mobility.Netlab.FunctionalTests.TransparentTests;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// Opportunistic mode (issue 17, docs/transparent.md, "Opportunistic mode") with real mobilityd processes in two
/// namespaces joined by a veth pair (10.17.0.1 server side, 10.17.0.2 client side): an unmodified curl to the server's
/// ordinary address gets a mobile connection when a verified mobile host owns it (and the download survives that host's
/// move away from the address curl named), and plain TCP with identical bytes, from the client's own address, when no
/// mobile host does, also when a host claims the address in the GNS without owning it. The client's daemon embeds the
/// GNS, so that the server side can move all of its addresses. The owner lookup's budget is set far above what it needs
/// here (10 s), so that a loaded machine never turns a mobile connection into a plain one; the budget itself is tested
/// on virtual time (Mobility.Daemon.Tests, OpportunisticTests).
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class OpportunisticTests
{
    private static readonly string[] ClientOptions =
    [
        "--embedded-gns", "--Transparent:Dns", "off", "--Transparent:Resolver", "none", "--Transparent:OpportunisticBudget", "00:00:10",
        "--Logging:LogLevel:Mobility.Daemon.Forwarding.VerifiedAddressOwners", "Debug",
    ];

    [NetlabFact]
    public async Task Curl_to_a_mobile_hosts_ordinary_address_gets_a_mobile_connection_that_survives_the_hosts_move_away_from_that_address()
    {
        await using var lab = Lab.Create();
        var blob = RandomNumberGenerator.GetBytes(6 * 1024 * 1024);
        var (server, client, near) = await MobileWebServerAsync(lab, blob);
        using var api = new DaemonClient(near.Socket);
        var on = await api.SetTransparentAsync(true, opportunistic: true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
        Assert.True(Flag(on, "opportunistic"));
        Assert.Contains("meta nfproto ipv4 meta l4proto tcp redirect", await RulesetAsync(client), StringComparison.Ordinal);

        Assert.Equal(SHA256.HashData(blob), await FetchAsync(lab, client, "http://10.17.0.1:8080/blob", limitRate: null));
        Assert.Equal((1, 0), Counts(await api.GetTransparentAsync(CancellationToken.None).WithTimeout(NetlabTimeouts.Step)));

        // Again, slowly: the server host leaves 10.17.0.1 (the address curl named) in the middle of the download.
        var download = FetchAsync(lab, client, "http://10.17.0.1:8080/blob", limitRate: "1M");
        await TestTimeout.Eventually(async () => Counts(await api.GetTransparentAsync(CancellationToken.None)).Mobile == 2, "the second download is mobile");
        await Task.Delay(TimeSpan.FromSeconds(1));
        await Ip.BatchAsync(server, ["addr add 10.17.0.3/24 dev eth0", "addr add fd00:17::3/64 dev eth0 nodad", "addr del 10.17.0.1/24 dev eth0",
            "addr del fd00:17::1/64 dev eth0"]).WithTimeout(NetlabTimeouts.Step);
        Assert.Equal(SHA256.HashData(blob), await download.WithTimeout(NetlabTimeouts.Step));
        Assert.Equal((2, 0), Counts(await api.GetTransparentAsync(CancellationToken.None).WithTimeout(NetlabTimeouts.Step)));

        // Switched back to transparent mode without opportunistic mode, the table holds no rule for ordinary addresses.
        var off = await api.SetTransparentAsync(true, opportunistic: false, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
        Assert.False(Flag(off, "opportunistic"));
        Assert.True(Flag(off, "enabled"));
        Assert.DoesNotContain("nfproto", await RulesetAsync(client), StringComparison.Ordinal);
    }

    [NetlabFact]
    public async Task A_mobile_connection_made_of_a_connection_to_an_ordinary_address_survives_a_move_of_this_host()
    {
        await using var lab = Lab.Create();
        var blob = RandomNumberGenerator.GetBytes(12 * 1024 * 1024);
        var (server, client, near) = await MobileWebServerAsync(lab, blob);
        using var api = new DaemonClient(near.Socket);
        await api.SetTransparentAsync(true, opportunistic: true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);

        // curl's socket is 10.17.0.2 -> 10.17.0.1:8080; this host leaves 10.17.0.2 (for 10.17.0.3) in the middle of the download
        // (slow enough to look at the held address for seconds: 11 MiB left at 1 MiB/s).
        var output = Path.Combine(lab.CreateTemporaryDirectory("curl"), "out");
        var curl = lab.StartProcess(client, "curl", ["-sS", "--noproxy", "*", "--max-time", "300", "--limit-rate", "1M", "-o", output, "http://10.17.0.1:8080/blob"]);
        await TestTimeout.Eventually(() => File.Exists(output) && new FileInfo(output).Length >= 1 << 20, "curl under way", NetlabTimeouts.Step);
        Assert.Equal((1, 0), Counts(await api.GetTransparentAsync(CancellationToken.None).WithTimeout(NetlabTimeouts.Step)));
        await Ip.SysctlAsync(client, "net.ipv4.conf.eth0.promote_secondaries", "1").WithTimeout(NetlabTimeouts.Step);
        await Ip.BatchAsync(client, ["addr add 10.17.0.3/24 dev eth0", "addr add fd00:17::3/64 dev eth0 nodad", "addr del 10.17.0.2/24 dev eth0",
            "addr del fd00:17::2/64 dev eth0"]).WithTimeout(NetlabTimeouts.Step);

        // While 10.17.0.2 is held on lo, this host does not answer ARP for it on the link (the network may give it to another host).
        await TestTimeout.Eventually(async () => (await Ip.InAsync(client, "addr", "show", "dev", "lo")).Contains("10.17.0.2", StringComparison.Ordinal),
            "10.17.0.2 held on lo", NetlabTimeouts.Step);
        Assert.Contains("elements = { 10.17.0.2 }", await RulesetAsync(client), StringComparison.Ordinal);
        await Ip.InAsync(server, "neigh", "flush", "to", "10.17.0.2").WithTimeout(NetlabTimeouts.Step);
        var ping = await Ip.ExecAsync(server, "ping", ["-n", "-c", "1", "-W", "1", "10.17.0.2"]).WithTimeout(NetlabTimeouts.Step);
        var neighbour = await Ip.InAsync(server, "neigh", "show", "to", "10.17.0.2").WithTimeout(NetlabTimeouts.Step);
        Assert.False(ping.Succeeded, $"10.17.0.2 answered while held: {ping.StandardOutput}");
        Assert.DoesNotContain("lladdr", neighbour, StringComparison.Ordinal);
        Assert.False(curl.HasExited && curl.ExitCode != 0, $"curl failed: {curl.StandardError}");

        Assert.True(await curl.WaitForExitAsync(TimeSpan.FromMinutes(5)), "curl did not finish after the move");
        Assert.True(curl.ExitCode == 0, $"curl failed after the move ({curl.ExitCode}): {curl.StandardError}");
        Assert.Equal(SHA256.HashData(blob), SHA256.HashData(await File.ReadAllBytesAsync(output)));
        // The old address was held on lo for curl's connection only: gone once the connection is.
        await TestTimeout.Eventually(async () => !(await Ip.InAsync(client, "addr", "show", "dev", "lo")).Contains("10.17.0.2", StringComparison.Ordinal),
            "10.17.0.2 released", NetlabTimeouts.Step);
        await TestTimeout.Eventually(async () => !(await RulesetAsync(client)).Contains("mobility-held", StringComparison.Ordinal),
            "the ARP table gone with the held address", NetlabTimeouts.Step);
    }

    [NetlabFact]
    public async Task Curl_to_a_plain_server_gets_plain_tcp_with_identical_bytes_also_when_a_host_falsely_claims_its_address()
    {
        await using var lab = Lab.Create();
        var (server, client) = await LinkAsync(lab);
        await Ip.BatchAsync(server, ["addr add 10.17.0.4/24 dev eth0"]).WithTimeout(NetlabTimeouts.Step);
        var blob = RandomNumberGenerator.GetBytes(2 * 1024 * 1024);
        var web = StartWebServer(lab, server, blob);
        var near = await StartDaemonAsync(lab, client, "client", null, ClientOptions);

        // A liar (a real key, a valid signed record) claims 10.17.0.4 in the GNS; no mobile host answers a challenge there.
        var (mob, prefix) = MobilityExecutables.Mob();
        var key = Path.Combine(lab.CreateTemporaryDirectory("liar"), "liar.key");
        string[][] commands =
        [
            ["id", "new", "--key", key], ["gns", "register", "--gns", "10.17.0.2:7353", "--key", key, "--addr", "10.17.0.4:7360"],
            ["gns", "reverse", "--gns", "10.17.0.2:7353", "10.17.0.4"],
        ];
        foreach (var command in commands)
        {
            var result = await Ip.ExecAsync(server, mob, [.. prefix, .. command]).WithTimeout(NetlabTimeouts.Step);
            Assert.True(result.Succeeded, $"mob {string.Join(' ', command)}: {result.StandardError}");
        }

        using var api = new DaemonClient(near.Socket);
        await api.SetTransparentAsync(true, opportunistic: true, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);

        Assert.Equal(SHA256.HashData(blob), await FetchAsync(lab, client, "http://10.17.0.1:8080/blob", limitRate: null));
        Assert.Equal(SHA256.HashData(blob), await FetchAsync(lab, client, "http://10.17.0.4:8080/blob", limitRate: null));

        var status = await api.GetTransparentAsync(CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
        Assert.Equal((0, 2), Counts(status));
        Assert.Equal("0", Text(status, "opportunisticOverBudget"));
        // The claim reached the decision and was refused there (the challenge at 10.17.0.4 got no answer).
        Assert.Contains("Owner of 10.17.0.4: none (0 verified, 1 refused claims)", near.Process.StandardOutput + near.Process.StandardError,
            StringComparison.Ordinal);
        Assert.Contains("Owner of 10.17.0.1: none (0 verified, 0 refused claims)", near.Process.StandardOutput + near.Process.StandardError,
            StringComparison.Ordinal);
        // Plain TCP from the client host's own address, as without the daemon.
        await TestTimeout.Eventually(() => web.StandardError.Contains("10.17.0.2 - - ", StringComparison.Ordinal), "the web server logged the client");
        Assert.DoesNotContain("127.0.0.1 - - ", web.StandardError, StringComparison.Ordinal);
    }

    /// <summary>
    /// The two namespaces, the web server serving <paramref name="blob"/> behind the server's daemon (port 8080 exposed), the
    /// client's daemon embedding the GNS; returns once the server's record (its address claim) is in the GNS: before that the
    /// first connection would go plain.
    /// </summary>
    private static async Task<(string Server, string Client, TransparentTests.Daemon Near)> MobileWebServerAsync(Lab lab, byte[] blob)
    {
        var (server, client) = await LinkAsync(lab);
        StartWebServer(lab, server, blob);
        var near = await StartDaemonAsync(lab, client, "client", null, ClientOptions);
        var peer = await StartDaemonAsync(lab, server, "server", null, ["--gns", "10.17.0.2:7353", "--Transparent:Dns", "off"]);
        using var peerApi = new DaemonClient(peer.Socket);
        await peerApi.ExposeAsync(8080, null, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);
        var peerGuid = (await peerApi.GetSelfAsync(CancellationToken.None).WithTimeout(NetlabTimeouts.Step)).GetProperty("guid").GetString()!;
        using var api = new DaemonClient(near.Socket);
        await TestTimeout.Eventually(async () => (await api.GetIpAddressesAsync(peerGuid, CancellationToken.None)).Contains("10.17.0.1"),
            "the server's record lists 10.17.0.1");
        return (server, client, near);
    }

    /// <summary>python3's http.server on every address, port 8080, serving <paramref name="blob"/> as /blob; it logs each request's source on stderr.</summary>
    private static NamespaceProcess StartWebServer(Lab lab, string ns, byte[] blob)
    {
        var site = lab.CreateTemporaryDirectory("site");
        File.WriteAllBytes(Path.Combine(site, "blob"), blob);
        return lab.StartProcess(ns, "python3", ["-u", "-m", "http.server", "--bind", "0.0.0.0", "8080", "--directory", site], readyLine: "Serving HTTP");
    }

    private static (long Mobile, long Plain) Counts(JsonElement status)
        => (long.Parse(Text(status, "opportunisticMobile"), System.Globalization.CultureInfo.InvariantCulture),
            long.Parse(Text(status, "opportunisticPlain"), System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>A uint64 of the JSON reply (a string; absent when 0).</summary>
    private static string Text(JsonElement status, string name)
        => !status.TryGetProperty(name, out var value) ? "0" : value.ValueKind == JsonValueKind.String ? value.GetString() ?? "0" : value.GetRawText();

    /// <summary>A bool of the JSON reply (absent when false).</summary>
    private static bool Flag(JsonElement status, string name) => status.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.True;
}
