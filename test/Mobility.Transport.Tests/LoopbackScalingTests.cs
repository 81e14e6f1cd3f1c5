namespace Mobility.Transport.Tests;

/// <summary>How the time to resume every connection grows with their number (printed, not asserted).</summary>
[Collection("Timing")]
public class LoopbackScalingTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(100)]
    public async Task All_connections_between_two_hosts_survive_a_simultaneous_move(int count)
    {
        var net = LoopbackScenario.NextSubnet();
        var locator = new TestLocator();
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Parse($"127.{net}.2.1"), 0));
        locator.Set(Keys.Server.Guid, listener.LocalEndPoint);
        var connector = new MobileConnector(Keys.Client, new MobileConnectionOptions { LocalAddress = IPAddress.Parse($"127.{net}.1.1") });
        var clients = await Task.WhenAll(Enumerable.Range(0, count).Select(_ => connector.ConnectAsync(Keys.Server.Guid, locator))).WithTimeout();
        var servers = new List<MobileConnection>();
        for (var i = 0; i < count; i++)
        {
            servers.Add(await listener.AcceptAsync().WithTimeout());
        }

        try
        {
            // Round 0 warms up (JIT, pools); round 1 is measured.
            for (var round = 0; round < 2; round++)
            {
                var newClientAddress = IPAddress.Parse($"127.{net}.1.{2 + round}");
                var newServerAddress = IPAddress.Parse($"127.{net}.2.{2 + round}");
                var resumed = 0;
                var seen = new System.Collections.Concurrent.ConcurrentDictionary<object, bool>();
                var stamps = new System.Collections.Concurrent.ConcurrentBag<long>();
                var all = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
                foreach (var client in clients)
                {
                    client.Diagnostic += (sender, e) =>
                    {
                        // Count each connection once, when it resumed between the two new addresses.
                        if (e.Kind == MobileConnectionEventKind.Resumed && newClientAddress.Equals(e.LocalEndPoint?.Address)
                            && newServerAddress.Equals(e.RemoteEndPoint?.Address) && seen.TryAdd(sender!, true))
                        {
                            stamps.Add(e.Timestamp);
                            if (Interlocked.Increment(ref resumed) == count)
                            {
                                all.TrySetResult(e.Timestamp);
                            }
                        }
                    };
                }

                var t0 = Stopwatch.GetTimestamp();
                var endpoint = await listener.RebindAsync(new IPEndPoint(newServerAddress, 0)).WithTimeout();
                var tRebind = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                locator.Push(Keys.Server.Guid, endpoint);
                var tPush = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                connector.NotifyLocalAddressChanged(newClientAddress);
                var tNotify = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                var done = await all.Task.WithTimeout();
                var elapsed = Stopwatch.GetElapsedTime(t0, done);
                var sorted = stamps.Select(t => Stopwatch.GetElapsedTime(t0, t).TotalMilliseconds).Order().ToArray();
                if (round == 0)
                {
                    continue;
                }

                output.WriteLine($"loopback, {count} connections, simultaneous move: all resumed in {elapsed.TotalMilliseconds:0.0} ms " +
                    $"(rebind {tRebind:0.0}, push {tPush:0.0}, notify {tNotify:0.0} ms; first {sorted[0]:0.0} ms, median {sorted[count / 2]:0.0} ms; {elapsed.TotalMilliseconds / count:0.00} ms per connection)");
            }

            await Task.WhenAll(clients.Select(async client =>
            {
                await client.Stream.WriteAsync(new byte[] { 7 });
                var server = servers.Single(s => s.Token == client.Token);
                var b = new byte[1];
                await server.Stream.ReadExactlyAsync(b);
                Assert.Equal(7, b[0]);
            })).WithTimeout();
            Assert.All(clients, c => Assert.True(c.Statistics.Moves >= 2));
        }
        finally
        {
            foreach (var c in clients.Concat(servers))
            {
                await c.DisposeAsync();
            }
        }
    }
}
