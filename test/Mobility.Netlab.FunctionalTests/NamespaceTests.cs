using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Mobility.Netlab.Emulation;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Systems;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.FunctionalTests;

/// <summary>Functional tests in real network namespaces (root + /dev/net/tun; skipped otherwise).</summary>
[Collection(NetlabCollection.Name)]
public sealed class NamespaceTests
{
    private static Task<EvaluationTopology> CreateAsync(int rttMs = 20, bool multihomed = false) =>
        EvaluationTopology.CreateAsync(new TopologyOptions { Link = LinkEmulatorOptions.ForRtt(TimeSpan.FromMilliseconds(rttMs)), MultihomedClient = multihomed })
            .WithTimeout(NetlabTimeouts.Step);

    [NetlabFact]
    public async Task Topology_dispose_removes_every_namespace_and_the_emulator_process()
    {
        var topology = await CreateAsync();
        var prefix = topology.Lab.Prefix;
        var emulatorPid = topology.LinkProcess!.ProcessId;

        var during = await LabCleanup.ListNamespacesAsync().WithTimeout(NetlabTimeouts.Step);
        Assert.Equal(5, during.Count(n => n.StartsWith(prefix, StringComparison.Ordinal)));

        await topology.DisposeAsync().AsTask().WithTimeout(NetlabTimeouts.Step);

        var after = await LabCleanup.ListNamespacesAsync().WithTimeout(NetlabTimeouts.Step);
        Assert.DoesNotContain(after, n => n.StartsWith(prefix, StringComparison.Ordinal));
        Assert.False(Directory.Exists($"/proc/{emulatorPid}"), "the emulator process must be gone");
        Assert.DoesNotContain(await LabCleanup.ListRootLinksAsync().WithTimeout(NetlabTimeouts.Step), l => l.StartsWith("mlab", StringComparison.Ordinal));
    }

    [NetlabFact]
    public async Task Cleanup_removes_namespaces_of_dead_owners_but_not_of_live_ones()
    {
        // A process id that is certainly dead: a finished child.
        using var child = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        child.WaitForExit();
        var dead = $"{LabNames.Prefix}{child.Id}-1-orphan";
        var live = LabNames.NewLabPrefix() + "alive";
        await Ip.RunAsync("netns", "add", dead).WithTimeout(NetlabTimeouts.Step);
        await Ip.RunAsync("netns", "add", live).WithTimeout(NetlabTimeouts.Step);
        try
        {
            var removed = await LabCleanup.RunAsync().WithTimeout(NetlabTimeouts.Step);

            Assert.Contains(dead, removed);
            Assert.DoesNotContain(live, removed);
            Assert.Contains(live, await LabCleanup.ListNamespacesAsync().WithTimeout(NetlabTimeouts.Step));
        }
        finally
        {
            await LabCleanup.DeleteNamespaceAsync(live).WithTimeout(NetlabTimeouts.Step);
            await LabCleanup.DeleteNamespaceAsync(dead).WithTimeout(NetlabTimeouts.Step);
        }
    }

    [NetlabFact]
    public async Task Killing_the_owner_with_sigkill_still_removes_its_namespaces()
    {
        var (fileName, prefix) = NetlabTool.Command();
        var start = new ProcessStartInfo(fileName) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in prefix.Concat(["up", "--rtt", "10", "--hold", "120s"]))
        {
            start.ArgumentList.Add(a);
        }

        using var owner = Process.Start(start)!;
        string? ready = null;
        var readLine = Task.Run(async () =>
        {
            for (var i = 0; i < 100 && ready is null; i++)
            {
                var line = await owner.StandardOutput.ReadLineAsync();
                if (line is null)
                {
                    break;
                }

                if (line.StartsWith("ready ", StringComparison.Ordinal))
                {
                    ready = line.Split(' ')[1];
                }
            }
        });
        await readLine.WithTimeout(NetlabTimeouts.Step);
        Assert.NotNull(ready);
        Assert.Contains(await LabCleanup.ListNamespacesAsync(), n => n.StartsWith(ready, StringComparison.Ordinal));

        owner.Kill(); // SIGKILL: no managed cleanup can run; the reaper must do it.
        await owner.WaitForExitAsync().WithTimeout(NetlabTimeouts.Step);

        var gone = false;
        for (var i = 0; i < 60 && !gone; i++)
        {
            await Task.Delay(500);
            gone = !(await LabCleanup.ListNamespacesAsync()).Any(n => n.StartsWith(ready, StringComparison.Ordinal));
        }

        Assert.True(gone, $"namespaces {ready}* still exist 30 s after the owner was killed");
    }

    [NetlabFact]
    public async Task Emulator_gives_the_requested_rtt_within_tolerance()
    {
        await using var topology = await CreateAsync(rttMs: 50);
        foreach (var rtt in new[] { 50, 10 })
        {
            if (rtt != 50)
            {
                await topology.StartLinkAsync(LinkEmulatorOptions.ForRtt(TimeSpan.FromMilliseconds(rtt))).WithTimeout(NetlabTimeouts.Step);
            }

            // Retries internally (up to 3 measurements) because the machine may be loaded.
            var result = await Calibration.MeasureAsync(topology, rtt, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);

            Assert.True(result.WithinTolerance, $"requested {rtt} ms: ping avg {result.PingAvgMs} ms, tcp echo {result.TcpEchoMedianMs} ms (±30%)");
        }
    }

    [NetlabFact]
    public async Task Plain_tcp_transfer_crosses_the_emulated_link_intact()
    {
        await using var topology = await CreateAsync(rttMs: 10);
        using var listener = LabSockets.Create(topology.Server.Namespace, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Any, 6000));
        listener.Listen(1);
        var payload = new byte[512 * 1024];
        new Random(5).NextBytes(payload);

        var receive = Task.Run(async () =>
        {
            using var peer = await listener.AcceptAsync();
            using var stream = new NetworkStream(peer);
            using var copy = new MemoryStream();
            await stream.CopyToAsync(copy);
            return (copy.ToArray(), ((IPEndPoint)peer.RemoteEndPoint!).Address);
        });
        using (var client = LabSockets.Create(topology.Client.Namespace, ProtocolType.Tcp))
        {
            await client.ConnectAsync(new IPEndPoint(topology.Server.PrimaryAddress, 6000)).WithTimeout(NetlabTimeouts.Step);
            await client.SendAsync(payload, SocketFlags.None).WithTimeout(NetlabTimeouts.Step);
            client.Shutdown(SocketShutdown.Send);
            var (received, from) = await receive.WithTimeout(NetlabTimeouts.Step);

            Assert.Equal(payload, received);
            Assert.Equal(IPAddress.Parse("10.231.1.2"), from);
        }

        // The bytes really went through the emulator (its counters are printed when it stops).
        var emulator = topology.LinkProcess!;
        await emulator.DisposeAsync();
        Assert.Contains("tedge->tcore: received=", emulator.StandardError + emulator.StandardOutput, StringComparison.Ordinal);
    }

    [NetlabFact]
    public async Task A_prepared_ip_batch_changes_nothing_until_it_is_run_and_dates_the_hand_over()
    {
        await using var topology = await CreateAsync(rttMs: 10);
        var ns = topology.Client.Namespace;
        await using (var batch = PreparedBatch.Start(ns))
        {
            await Task.Delay(300);
            Assert.DoesNotContain("192.0.2.55/32", await Ip.InAsync(ns, "addr", "show", "dev", "lo").WithTimeout(NetlabTimeouts.Step), StringComparison.Ordinal);

            var before = Stopwatch.GetTimestamp();
            var handedOver = await batch.RunAsync(["addr add 192.0.2.55/32 dev lo"]).WithTimeout(NetlabTimeouts.Step);

            Assert.InRange(handedOver, before, Stopwatch.GetTimestamp());
            Assert.Contains("192.0.2.55/32", await Ip.InAsync(ns, "addr", "show", "dev", "lo").WithTimeout(NetlabTimeouts.Step), StringComparison.Ordinal);
            await Assert.ThrowsAsync<InvalidOperationException>(() => batch.RunAsync(["addr del 192.0.2.55/32 dev lo"]));
        }

        // A command iproute2 refuses fails the batch with its error; one never run leaves nothing behind.
        await using (var failing = PreparedBatch.Start(ns))
        {
            var e = await Assert.ThrowsAsync<CommandFailedException>(() => failing.RunAsync(["addr del 192.0.2.56/32 dev lo"]).WithTimeout(NetlabTimeouts.Step));
            Assert.Contains("192.0.2.56", e.Message, StringComparison.Ordinal);
        }

        await using (PreparedBatch.Start(ns))
        {
        }
    }

    [NetlabFact]
    public async Task Move_replaces_the_address_and_the_default_route()
    {
        await using var topology = await CreateAsync(rttMs: 10);
        var client = topology.Client;
        Assert.Equal([("e1", IPAddress.Parse("10.231.1.2"))], await client.GetAddressesAsync().WithTimeout(NetlabTimeouts.Step));

        var move = await client.MoveAsync(client.Interface("e1"), client.Interface("e2")).WithTimeout(NetlabTimeouts.Step);

        Assert.Equal([("e2", IPAddress.Parse("10.231.2.2"))], await client.GetAddressesAsync().WithTimeout(NetlabTimeouts.Step));
        Assert.Equal((IPAddress.Parse("10.231.2.1"), "e2"), await client.GetDefaultRouteAsync().WithTimeout(NetlabTimeouts.Step));
        Assert.True(move.AttachedAt >= move.LostAt);
        var ping = await Ip.ExecAsync(client.Namespace, "ping", ["-n", "-c", "3", "-i", "0.2", "-W", "2", "10.231.9.2"]).WithTimeout(NetlabTimeouts.Step);
        Assert.True(ping.Succeeded, "the server must be reachable from the new address: " + ping.StandardOutput);
    }

    [NetlabFact]
    public async Task A_move_brings_the_new_link_up_before_its_address_arrives()
    {
        await using var topology = await CreateAsync(rttMs: 10);
        var server = topology.Server;
        // The kernel's link and address notifications of the server's namespace, in order.
        using var monitor = Process.Start(new ProcessStartInfo("ip", ["-n", server.Namespace, "-o", "monitor", "link", "address"])
        {
            RedirectStandardOutput = true,
        })!;
        var lines = new List<string>();
        monitor.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                lock (lines)
                {
                    lines.Add(line);
                }
            }
        };
        monitor.BeginOutputReadLine();
        // Something to see that the monitor is listening: a throw-away address on lo.
        for (var i = 0; i < 100 && !Seen("192.0.2.77"); i++)
        {
            await Ip.InAsync(server.Namespace, "addr", "replace", "192.0.2.77/32", "dev", "lo").WithTimeout(NetlabTimeouts.Step);
            await Task.Delay(50);
        }

        await server.MoveAsync(server.Interface("e1"), server.Interface("e2")).WithTimeout(NetlabTimeouts.Step);
        for (var i = 0; i < 100 && !Seen("10.231.10.2/"); i++)
        {
            await Task.Delay(20);
        }

        monitor.Kill();
        string[] seen;
        lock (lines)
        {
            seen = [.. lines];
        }

        // An address that arrives with its link still down sends its first packets before the link passes any (the
        // router's answer to the first ARP request was lost about one move in three: the host waited 1 s for the next).
        var address = Array.FindIndex(seen, l => l.Contains(" e2 ", StringComparison.Ordinal) && l.Contains("inet 10.231.10.2/", StringComparison.Ordinal));
        var linkUp = Array.FindIndex(seen, l => l.Contains(": e2", StringComparison.Ordinal) && l.Contains("state UP", StringComparison.Ordinal));
        Assert.True(address >= 0 && linkUp >= 0, "the monitor saw: " + string.Join('\n', seen));
        Assert.True(linkUp < address, "e2 was not operational before its address came: " + string.Join('\n', seen));

        bool Seen(string text)
        {
            lock (lines)
            {
                return lines.Any(l => l.Contains(text, StringComparison.Ordinal));
            }
        }
    }

    [NetlabFact]
    public async Task Sleep_then_resume_leaves_the_host_without_address_meanwhile()
    {
        await using var topology = await CreateAsync(rttMs: 10);
        var client = topology.Client;
        var moving = client.MoveAsync(client.Interface("e1"), client.Interface("e2"), offline: TimeSpan.FromSeconds(2));
        for (var i = 0; i < 100 && client.Interface("e1").IsAttached; i++)
        {
            await Task.Delay(20);
        }

        Assert.Empty(await client.GetAddressesAsync().WithTimeout(NetlabTimeouts.Step));
        Assert.Null(await client.GetDefaultRouteAsync().WithTimeout(NetlabTimeouts.Step));
        await moving.WithTimeout(NetlabTimeouts.Step);
        Assert.Equal([("e2", IPAddress.Parse("10.231.2.2"))], await client.GetAddressesAsync().WithTimeout(NetlabTimeouts.Step));
    }

    [NetlabFact]
    public async Task Multihomed_host_losing_one_interface_keeps_the_other_as_default()
    {
        await using var topology = await CreateAsync(rttMs: 10, multihomed: true);
        var client = topology.Client;
        Assert.Equal(2, (await client.GetAddressesAsync().WithTimeout(NetlabTimeouts.Step)).Count);

        await client.LoseAsync(client.Interface("e1")).WithTimeout(NetlabTimeouts.Step);

        Assert.Equal([("e2", IPAddress.Parse("10.231.2.2"))], await client.GetAddressesAsync().WithTimeout(NetlabTimeouts.Step));
        Assert.Equal((IPAddress.Parse("10.231.2.1"), "e2"), await client.GetDefaultRouteAsync().WithTimeout(NetlabTimeouts.Step));
    }

    [NetlabFact]
    public async Task Mptcp_connection_survives_a_single_client_move_without_losing_bytes()
    {
        var timing = new ScenarioTiming { BeforeMove = TimeSpan.FromSeconds(1), AfterMove = TimeSpan.FromSeconds(1), Deadline = TimeSpan.FromSeconds(8) };
        var runner = new ScenarioRunner(timing: timing);

        var result = await runner.RunAsync(new MptcpSystem(), Scenario.ClientMove, 20, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);

        Assert.True(result.Survived, $"{result.Outcome} ({result.Notes})");
        Assert.Equal(0, result.BytesLost);
        Assert.Equal(0, result.BytesDuplicated);
        Assert.NotNull(result.StallMs);
    }

    [NetlabFact]
    public async Task Plain_tcp_does_not_survive_a_client_move()
    {
        var timing = new ScenarioTiming { BeforeMove = TimeSpan.FromSeconds(1), AfterMove = TimeSpan.FromSeconds(1), Deadline = TimeSpan.FromSeconds(4) };
        var runner = new ScenarioRunner(timing: timing);

        var result = await runner.RunAsync(new PlainTcpSystem(), Scenario.ClientMove, 20, CancellationToken.None).WithTimeout(NetlabTimeouts.Step);

        Assert.False(result.Survived);
        Assert.True(result.BytesLost > 0);
    }
}
