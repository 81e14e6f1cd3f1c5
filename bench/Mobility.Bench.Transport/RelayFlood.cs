using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Identity;
using Mobility.Transport.Relay;

namespace Mobility.Bench.Transport;

/// <summary>
/// What a flood of unauthenticated connections costs a relay: <c>count</c> TCP connections that send nothing
/// (as a flooder that completes handshakes would), opened 64 at a time; the relay's CPU and RSS growth, how
/// many it holds (the rest it closes at once: <c>MaxUnidentified</c>), and whether a new host registers and a
/// dial gets through while the flood is held.
/// </summary>
internal static class RelayFlood
{
    public static async Task<object> RunAsync(int relayPid, IPEndPoint relay, RelayFlowListener registration, HostGuid host, int count)
    {
        await Task.Delay(TimeSpan.FromSeconds(2));
        var rssBefore = Measure.StatusField(relayPid, "VmRSS");
        var cpuBefore = Measure.CpuSeconds(relayPid);
        var sockets = new List<Socket>(count);
        using var gate = new SemaphoreSlim(64);
        await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            await gate.WaitAsync();
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(relay);
                lock (sockets)
                {
                    sockets.Add(socket);
                }
            }
            catch (SocketException)
            {
                socket.Dispose();
            }
            finally
            {
                gate.Release();
            }
        }));
        await Task.Delay(TimeSpan.FromSeconds(1));
        var cpu = Measure.CpuSeconds(relayPid) - cpuBefore;
        var rss = Measure.StatusField(relayPid, "VmRSS");
        var closed = sockets.Count(s => s.Poll(0, SelectMode.SelectRead) && s.Available == 0);

        // While the flood is held: a new host's registration and a dial to a registered host.
        string registered;
        using (var key = HostKey.Generate())
        {
            try
            {
                await using var newcomer = await RelayFlowListener.RegisterAsync(key, relay);
                registered = "registered";
            }
            catch (IOException e)
            {
                registered = "failed: " + e.Message;
            }
        }

        string dialled;
        try
        {
            var accept = registration.AcceptAsync(CancellationToken.None).AsTask();
            await using var flow = await RelayFlows.DialAsync(relay, host);
            await using var accepted = await accept;
            dialled = "spliced";
        }
        catch (IOException e)
        {
            dialled = "failed: " + e.Message;
        }

        Console.WriteLine($"flood: {sockets.Count} silent connections ({count} tried): relay closed {closed} at once and holds {sockets.Count - closed}; " +
                          $"relay CPU {Measure.F(cpu, "0.000")} s ({Measure.F(cpu / Math.Max(1, sockets.Count) * 1e6, "0")} us per connection), " +
                          $"RSS {rssBefore / 1024.0:0.0} -> {rss / 1024.0:0.0} MiB; meanwhile a new host: {registered}; a dial: {dialled}");
        foreach (var socket in sockets)
        {
            socket.Dispose();
        }

        return new
        {
            tried = count,
            connected = sockets.Count,
            closedAtOnce = closed,
            held = sockets.Count - closed,
            relayCpuSeconds = cpu,
            relayRssKibBefore = rssBefore,
            relayRssKibAfter = rss,
            registrationDuringFlood = registered,
            dialDuringFlood = dialled,
        };
    }
}
