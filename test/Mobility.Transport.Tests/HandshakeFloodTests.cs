namespace Mobility.Transport.Tests;

/// <summary>The flood tests hold thousands of descriptors each: they run alone, not beside other tests.</summary>
[CollectionDefinition(nameof(FloodCollection), DisableParallelization = true)]
public sealed class FloodCollection;

/// <summary>
/// Issue 13, "Handshakes under flood", on real loopback sockets: floods of idle and half-done
/// flows, and a new handshake and a resume that must still complete. The times are printed (and
/// measured properly by <c>Mobility.Bench.Transport flood</c> for docs/benchmarks.md), never asserted.
/// </summary>
[Collection(nameof(FloodCollection))]
public sealed class HandshakeFloodTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The attack as the issue states it: about 4,400 idle connections from one host, renewed as the
    /// listener drops them, fill the 256 slots and the 4,096 queued handshakes. The listener of the
    /// first release reset every new handshake at once, and resumes waited in the same queue.
    /// </summary>
    [Fact]
    public async Task Idle_flows_from_one_host_filling_the_queue_keep_out_neither_a_new_handshake_nor_a_resume()
    {
        var net = LoopbackScenario.NextSubnet();
        var (listener, client, server, locator) = await SetUpAsync(net);
        await using var _l = listener;
        await using var _c = client;
        await using var _s = server;

        var attacker = IPAddress.Parse($"127.{net}.0.1");
        await using var flood = new LoopbackFlood(listener.LocalEndPoint, idle: 4_400, halfDone: 0, _ => attacker, TimeSpan.FromSeconds(5));
        await TestTimeout.Eventually(() => listener.AdmittedFlows >= 256 + 4_096, "the idle flows fill the listener's handshake queue", Generous);

        var (handshake, resume) = await NewHandshakeAndResumeAsync(net, listener, client, server, locator);
        output.WriteLine($"idle flood from one host ({flood.Open} open, {flood.Connects} connects): new handshake {handshake.TotalMilliseconds:0.0} ms, resume {resume.TotalMilliseconds:0.0} ms");
    }

    /// <summary>
    /// 10,000 attackers from 10,000 other sources (7,000 idle, 3,000 half-done), each renewing its
    /// connection every 5 s (2,000 connects a second): a legitimate handshake and a resume still complete (the issue asks for within 1 s; the
    /// measured times are in docs/benchmarks.md).
    /// </summary>
    [Fact]
    public async Task A_handshake_and_a_resume_complete_during_a_flood_of_10000_idle_and_half_done_flows_from_other_sources()
    {
        // Each attacker costs a descriptor here and one in the listener (at most MaxPending + MaxQueued
        // of those at once); keep 2,000 for the rest of the process. With the usual 20,000 that is all 10,000.
        var size = Math.Min(10_000, LoopbackFlood.DescriptorLimit() - 256 - 4_096 - 2_000);
        Assert.True(size >= 1_000, $"the descriptor limit ({LoopbackFlood.DescriptorLimit()}) leaves room for a flood of only {size}");
        var net = LoopbackScenario.NextSubnet();
        var (listener, client, server, locator) = await SetUpAsync(net);
        await using var _l = listener;
        await using var _c = client;
        await using var _s = server;

        var idle = size * 7 / 10;
        await using var flood = new LoopbackFlood(listener.LocalEndPoint, idle, size - idle,
            i => IPAddress.Parse($"127.{net}.{i / 250}.{1 + (i % 250)}"), TimeSpan.FromSeconds(5));
        await TestTimeout.Eventually(() => flood.Connects >= size, $"the {size} attackers have all connected", Generous);

        var (handshake, resume) = await NewHandshakeAndResumeAsync(net, listener, client, server, locator);
        output.WriteLine($"flood of {size} ({idle} idle, {size - idle} half-done, {flood.Open} open, {flood.Connects} connects, {flood.Refused} refused): "
            + $"new handshake {handshake.TotalMilliseconds:0.0} ms, resume {resume.TotalMilliseconds:0.0} ms, admitted {listener.AdmittedFlows}, slots {listener.PendingHandshakes}");
    }

    private static async Task<(MobileListener Listener, MobileConnection Client, MobileConnection Server, TestLocator Locator)> SetUpAsync(int net)
    {
        var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Parse($"127.{net}.250.1"), 0));
        var locator = new TestLocator();
        locator.Set(Keys.Server.Guid, listener.LocalEndPoint);
        var accept = listener.AcceptAsync().AsTask();
        var connector = new MobileConnector(Keys.Client, new MobileConnectionOptions { LocalAddress = IPAddress.Parse($"127.{net}.200.1") });
        var client = await connector.ConnectAsync(Keys.Server.Guid, locator).WithTimeout();
        var server = await accept.WithTimeout();
        return (listener, client, server, locator);
    }

    /// <summary>While the flood runs: a new connection from a fresh source, and the established one moves and resumes; both carry data.</summary>
    private static async Task<(TimeSpan Handshake, TimeSpan Resume)> NewHandshakeAndResumeAsync(int net, MobileListener listener,
        MobileConnection client, MobileConnection server, TestLocator locator)
    {
        var resumed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Diagnostic += (_, e) =>
        {
            if (e.Kind == MobileConnectionEventKind.Resumed)
            {
                resumed.TrySetResult();
            }
        };

        var resumeClock = Stopwatch.StartNew();
        client.NotifyLocalAddressChanged(IPAddress.Parse($"127.{net}.200.2"));
        await resumed.Task.WithTimeout(Generous);
        var resume = resumeClock.Elapsed;

        var accept = listener.AcceptAsync().AsTask();
        var fresh = new MobileConnector(Keys.Other, new MobileConnectionOptions { LocalAddress = IPAddress.Parse($"127.{net}.201.1") });
        var handshakeClock = Stopwatch.StartNew();
        await using var newClient = await fresh.ConnectAsync(Keys.Server.Guid, locator).WithTimeout(Generous);
        var handshake = handshakeClock.Elapsed;
        await using var newServer = await accept.WithTimeout(Generous);

        await ExchangeAsync(client, server);
        await ExchangeAsync(newClient, newServer);
        return (handshake, resume);
    }

    private static async Task ExchangeAsync(MobileConnection client, MobileConnection server)
    {
        var sent = new byte[] { 1, 2, 3, 4 };
        await client.Stream.WriteAsync(sent).WithTimeout(Generous);
        var received = new byte[sent.Length];
        await server.Stream.ReadExactlyAsync(received).WithTimeout(Generous);
        Assert.Equal(sent, received);
        await server.Stream.WriteAsync(received).WithTimeout(Generous);
        await client.Stream.ReadExactlyAsync(received).WithTimeout(Generous);
        Assert.Equal(sent, received);
    }
}
