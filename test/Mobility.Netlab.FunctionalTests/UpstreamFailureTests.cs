using System.Net;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Interop;
using Mobility.Netlab.Topology;
using Mobility.Protocol.Identity;
using Mobility.Transport;
using Xunit.Abstractions;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>
/// A silent upstream failure, with real sockets in network namespaces of the test's own: a client with
/// two interfaces set up as the netlab's multihomed client (e1 with the default route, e2 with a
/// per-address routing rule) reaches a server over each; an nftables rule in the server's namespace
/// then drops everything on e1's link. The client gets no address or link event. Its transport names no
/// local address (the OS's choice, as mobilityd) and knows the host's two addresses.
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class UpstreamFailureTests(ITestOutputHelper output)
{
    private static readonly IPAddress ClientE1 = IPAddress.Parse("10.231.1.2");
    private static readonly IPAddress ClientE2 = IPAddress.Parse("10.231.2.2");
    private static readonly IPAddress ServerAddress = IPAddress.Parse("10.231.9.2");

    [NetlabTheory]
    [InlineData(true, false)]    // no standby path, resume flows with TCP Fast Open
    [InlineData(false, false)]   // no standby path, plain resume flows
    [InlineData(true, true)]     // a standby path joined from e2 before the failure
    public async Task The_connection_resumes_over_the_second_interface_with_every_byte_intact(bool fastOpen, bool standby)
    {
        await using var lab = Lab.Create();
        var clientNs = await lab.AddNamespaceAsync("uclient").WithTimeout(NetlabTimeouts.Step);
        var serverNs = await lab.AddNamespaceAsync("userver").WithTimeout(NetlabTimeouts.Step);
        await Lab.AddVethAsync(clientNs, "e1", serverNs, "s1").WithTimeout(NetlabTimeouts.Step);
        await Lab.AddVethAsync(clientNs, "e2", serverNs, "s2").WithTimeout(NetlabTimeouts.Step);
        await Ip.BatchAsync(serverNs, ["addr add 10.231.1.1/24 dev s1", "link set s1 up", "addr add 10.231.2.1/24 dev s2", "link set s2 up", $"addr add {ServerAddress}/32 dev lo"])
            .WithTimeout(NetlabTimeouts.Step);
        await Ip.SysctlAsync(serverNs, "net.ipv4.tcp_fastopen", "3").WithTimeout(NetlabTimeouts.Step);
        var e1 = new HostInterface("e1", ClientE1, 24, IPAddress.Parse("10.231.1.1"), 201);
        var e2 = new HostInterface("e2", ClientE2, 24, IPAddress.Parse("10.231.2.1"), 202);
        var client = new LabHost("client", clientNs, [e1, e2]);
        await client.AttachAsync(e1).WithTimeout(NetlabTimeouts.Step);
        await client.AttachAsync(e2, makeDefault: false).WithTimeout(NetlabTimeouts.Step);

        // A socket bound to e2's address leaves through e2 only because of the per-address rule; without
        // it the main table's default route sends it out of e1 (docs/transport.md, "Several local addresses").
        Assert.Contains("dev e2", await RouteAsync(clientNs, ClientE2));
        await Ip.InAsync(clientNs, "rule", "del", "from", ClientE2.ToString(), "lookup", "202").WithTimeout(NetlabTimeouts.Step);
        Assert.Contains("dev e1", await RouteAsync(clientNs, ClientE2));
        await Ip.InAsync(clientNs, "rule", "add", "from", ClientE2.ToString(), "lookup", "202", "priority", "202").WithTimeout(NetlabTimeouts.Step);

        var serverKey = HostKey.Generate();
        await using var listener = new MobileListener(serverKey, new MobileListenerOptions());
        NetworkNamespace.Run(serverNs, () =>
        {
            listener.Start(new IPEndPoint(ServerAddress, 0));
            return 0;
        });
        var connector = new MobileConnector(HostKey.Generate(), new MobileConnectionOptions
        {
            FlowFactory = new NamespaceFlows(clientNs),
            FastOpen = fastOpen,
            MaxStandbyPaths = standby ? 1 : 0,
        });
        var accepting = listener.AcceptAsync().AsTask();
        await using var connection = await connector.ConnectAsync(serverKey.Guid, new FixedLocator(serverKey.Guid, listener.LocalEndPoint)).WithTimeout(NetlabTimeouts.Step);
        await using var accepted = await accepting.WithTimeout(NetlabTimeouts.Step);
        Assert.Equal(ClientE1, connection.LocalEndPoint!.Address);   // the OS's choice: the default route
        connector.NotifyLocalAddresses([ClientE1, ClientE2]);

        var before = RandomBytes(64 * 1024);
        await connection.Stream.WriteAsync(before).AsTask().WithTimeout(NetlabTimeouts.Step);
        var received = new byte[before.Length];
        await accepted.Stream.ReadExactlyAsync(received).AsTask().WithTimeout(NetlabTimeouts.Step);
        Assert.Equal(before, received);
        if (standby)
        {
            await TestTimeout.Eventually(async () => (await EstablishedAsync(serverNs, listener.LocalEndPoint.Port)).Count(l => l.Contains(ClientE2.ToString(), StringComparison.Ordinal)) == 1,
                "a standby flow from e2 is established", NetlabTimeouts.Step);
        }

        var resumes = connection.Statistics.ResumeAttempts;

        // The upstream of e1 stops forwarding: nothing changes on the client.
        var nft = await Ip.ExecAsync(serverNs, "nft", ["add table inet upstream; add chain inet upstream in { type filter hook input priority 0; }; add rule inet upstream in iifname s1 drop; " +
            "add chain inet upstream out { type filter hook output priority 0; }; add rule inet upstream out oifname s1 drop"]).WithTimeout(NetlabTimeouts.Step);
        Assert.True(nft.Succeeded, nft.StandardError);
        var after = RandomBytes(256 * 1024);
        var back = RandomBytes(32 * 1024);
        var toServer = connection.Stream.WriteAsync(after).AsTask();
        var toClient = accepted.Stream.WriteAsync(back).AsTask();
        var gotAfter = new byte[after.Length];
        var gotBack = new byte[back.Length];
        await accepted.Stream.ReadExactlyAsync(gotAfter).AsTask().WithTimeout(NetlabTimeouts.Step);
        await connection.Stream.ReadExactlyAsync(gotBack).AsTask().WithTimeout(NetlabTimeouts.Step);
        await Task.WhenAll(toServer, toClient).WithTimeout(NetlabTimeouts.Step);

        var events = connection.Moves.SelectMany(m => m.Events).ToList();
        foreach (var e in events)
        {
            output.WriteLine($"{e.Kind} {e.Detail}");
        }

        Assert.Equal(after, gotAfter);
        Assert.Equal(back, gotBack);
        Assert.Equal(ClientE2, connection.LocalEndPoint!.Address);
        Assert.Equal(0, accepted.Statistics.ResumesRejected);

        // Nothing was delivered twice (a resume resends from the last acknowledged offset; the receiver drops what it had).
        connection.ShutdownWrite();
        accepted.ShutdownWrite();
        Assert.Equal(0, await accepted.Stream.ReadAsync(new byte[1]).AsTask().WithTimeout(NetlabTimeouts.Step));
        Assert.Equal(0, await connection.Stream.ReadAsync(new byte[1]).AsTask().WithTimeout(NetlabTimeouts.Step));
        if (standby)
        {
            // The standby took over in the loop step that declared the path dead: no connect, no Resume.
            Assert.Equal(1, connection.Statistics.StandbySwitches);
            Assert.Equal(resumes, connection.Statistics.ResumeAttempts);
        }
        else
        {
            Assert.Equal(0, connection.Statistics.StandbySwitches);
            Assert.Contains(events, e => e.Kind == MoveEventKind.ConnectStarted && e.Detail!.StartsWith($"{listener.LocalEndPoint} from {ClientE2}", StringComparison.Ordinal));
            Assert.Contains(events, e => e.Kind == MoveEventKind.ResumeAnswered);
        }
    }

    private static byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        Random.Shared.NextBytes(bytes);
        return bytes;
    }

    /// <summary>The route the client's kernel takes to the server from <paramref name="source"/>.</summary>
    private static Task<string> RouteAsync(string ns, IPAddress source)
        => Ip.InAsync(ns, "route", "get", ServerAddress.ToString(), "from", source.ToString()).WithTimeout(NetlabTimeouts.Step);

    /// <summary>The established TCP connections of <paramref name="port"/> inside <paramref name="ns"/>, one line each.</summary>
    private static async Task<string[]> EstablishedAsync(string ns, int port)
    {
        var result = await Ip.ExecAsync(ns, "ss", ["-Htn", "state", "established", "sport", "=", $":{port}"]).WithTimeout(NetlabTimeouts.Step);
        return result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }
}
