using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Topology;
using Xunit.Abstractions;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// A connection a program opens while the server is moving (issue 17's last note, docs/transparent.md): the client's
/// lookup still answers with the server's old record, so the daemon's first connect goes to the old (now silent)
/// addresses; the new record reaches the GNS a moment later and is pushed to the client's watch, and the connect
/// must switch to it then, not wait out <c>Forwarding:ConnectTimeout</c> (10 s) and reset the program's connection.
/// </summary>
public sealed partial class TransparentTests(ITestOutputHelper output)
{
    private static readonly string[] Held = ["10.17.0.4", "fd00:17::4"];

    [NetlabFact]
    public async Task Curl_by_name_opened_while_the_server_moves_completes_once_the_new_record_is_pushed()
    {
        await using var lab = Lab.Create();
        var hosts = await HubAsync(lab);
        var etc = ResolvConfFolder(hosts.Client);
        try
        {
            var dir = lab.CreateTemporaryDirectory("apps");
            var site = Directory.CreateDirectory(Path.Combine(dir, "site")).FullName;
            var blob = RandomNumberGenerator.GetBytes(4 << 20);
            await File.WriteAllBytesAsync(Path.Combine(site, "blob"), blob);
            await lab.StartProcess(hosts.Server, "python3", ["-u", "-m", "http.server", "--bind", "127.0.0.1", $"{HttpPort}", "--directory", site],
                readyLine: "Serving HTTP").WaitReadyAsync(NetlabTimeouts.Step).WithTimeout(NetlabTimeouts.Step);
            await StartMoveDaemonsAsync(lab, hosts, [(HttpPort, false)]);

            // The server's old addresses stay silent after the move, as when its old network is gone: the client keeps
            // their neighbour entries, so its SYNs still leave and the server (no longer holding them) drops them.
            var mac = Regex.Match(await Ip.InAsync(hosts.Server, "-o", "link", "show", "eth0"), "link/ether ([0-9a-f:]{17})").Groups[1].Value;
            await Ip.BatchAsync(hosts.Client, [$"neigh replace 10.17.0.1 lladdr {mac} dev eth0 nud permanent",
                $"neigh replace fd00:17::1 lladdr {mac} dev eth0 nud permanent"]).WithTimeout(NetlabTimeouts.Step);

            // The GNS hears nothing from the server's new addresses until released: its lookups answer with the old record.
            await NftAsync(hosts.Gns, "add table inet held");
            await NftAsync(hosts.Gns, "add chain inet held in { type filter hook input priority 0 ; }");
            await NftAsync(hosts.Gns, $"add rule inet held in ip saddr {Held[0]} drop");
            await NftAsync(hosts.Gns, $"add rule inet held in ip6 saddr {Held[1]} drop");
            await MoveAsync(hosts, MoveKind.Server, 2, 1);

            var downloaded = Path.Combine(dir, "downloaded");
            var started = Stopwatch.GetTimestamp();
            var curl = Ip.ExecAsync(hosts.Client, "env", ["-i", "--", "curl", "-sS", "--noproxy", "*", "--max-time", "60", "-o", downloaded,
                "-w", "%{time_starttransfer}", $"http://peer.mob:{HttpPort}/blob"], TimeSpan.FromMinutes(2));

            // The daemon's first connect is on its way to an old address: then the record is let through.
            await TestTimeout.Eventually(async () => OldAddressSyn().IsMatch(await SynSentAsync(hosts.Client)),
                "the client daemon connecting to the server's old address", NetlabTimeouts.Step);
            var released = Stopwatch.GetElapsedTime(started);
            await NftAsync(hosts.Gns, "delete table inet held");

            var result = await curl.WithTimeout(NetlabTimeouts.Step);
            Assert.True(result.Succeeded, $"curl failed ({result.ExitCode}) {Stopwatch.GetElapsedTime(started).TotalSeconds:0.000} s after its start, " +
                $"the server's record released at {released.TotalSeconds:0.000} s: {result.StandardError}");
            Assert.Equal(SHA256.HashData(blob), SHA256.HashData(await File.ReadAllBytesAsync(downloaded)));
            var firstByte = TimeSpan.FromSeconds(double.Parse(result.StandardOutput.Trim(), CultureInfo.InvariantCulture));
            output.WriteLine($"curl's first byte after {firstByte.TotalSeconds:0.000} s; the server's record released at {released.TotalSeconds:0.000} s " +
                $"(first byte {(firstByte - released).TotalSeconds:0.000} s after it); Forwarding:ConnectTimeout 10 s");
        }
        finally
        {
            Directory.Delete(etc, recursive: true);
        }
    }

    private static async Task NftAsync(string ns, string command)
    {
        var result = await Ip.ExecAsync(ns, "nft", command.Split(' ')).WithTimeout(NetlabTimeouts.Step);
        Assert.True(result.Succeeded, $"nft {command}: {result.StandardError}");
    }

    /// <summary>The TCP sockets of <paramref name="ns"/> in SYN-SENT (<c>ss</c>'s lines).</summary>
    private static async Task<string> SynSentAsync(string ns)
    {
        var result = await Ip.ExecAsync(ns, "ss", ["-Htn", "state", "syn-sent"]).WithTimeout(NetlabTimeouts.Step);
        Assert.True(result.Succeeded, result.StandardError);
        return result.StandardOutput;
    }

    [GeneratedRegex(@"\s(10\.17\.0\.1|\[fd00:17::1\]):\d+(\s|$)", RegexOptions.Multiline)]
    private static partial Regex OldAddressSyn();
}
