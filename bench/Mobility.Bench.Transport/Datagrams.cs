using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Identity;
using Mobility.Transport;

namespace Mobility.Bench.Transport;

/// <summary>
/// Datagram rate and loss, one direction, both ends in this process on 127.0.0.1: plain UDP (one
/// socket pair) against DATAGRAM frames of one mobile connection (encrypted), alternating round by
/// round. The sender sends <c>size</c>-byte datagrams for a fixed time, as fast as it can or paced
/// at <c>rate</c> per second; the receiver counts what arrives until nothing has come for 200 ms.
/// Loss = 1 - received / sent (for the mobile connection, "sent" counts every SendDatagram call,
/// including those its full queue dropped).
/// </summary>
internal static class Datagrams
{
    private static readonly string[] Systems = ["udp", "mobile"];

    public static async Task<int> RunAsync(int seconds, int rounds, int size, int rate, string? json)
    {
        using var serverKey = HostKey.Generate();
        using var clientKey = HostKey.Generate();
        await using var listener = new MobileListener(serverKey);
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var pace = rate > 0 ? $"{rate}/s" : "unpaced";
        Console.WriteLine($"datagrams: {seconds} s per run, {size}-byte datagrams, {pace}, {rounds} rounds of (udp, mobile), load average {Measure.LoadAverage()}");
        Console.WriteLine($"{"round",-6} {"system",-8} {"sent/s",10} {"recv/s",10} {"loss %",7}  load average");
        await RunOneAsync("udp", 1, size, rate, listener, clientKey);
        await RunOneAsync("mobile", 1, size, rate, listener, clientKey);
        var results = new List<Row>();
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var system in Systems)
            {
                var (sent, received, elapsed) = await RunOneAsync(system, seconds, size, rate, listener, clientKey);
                var row = new Row(round, system, sent / elapsed, received / elapsed, sent == 0 ? 0 : 100.0 * (sent - received) / sent, Measure.LoadAverage());
                results.Add(row);
                Console.WriteLine($"{round,-6} {system,-8} {Measure.F(row.SentPerSecond, "0"),10} {Measure.F(row.ReceivedPerSecond, "0"),10} {Measure.F(row.LossPercent),7}  {row.Load}");
            }
        }

        var ratios = Enumerable.Range(1, rounds)
            .Select(r => results.Single(x => x.Round == r && x.System == "mobile").ReceivedPerSecond / results.Single(x => x.Round == r && x.System == "udp").ReceivedPerSecond)
            .Order().ToList();
        Console.WriteLine();
        foreach (var system in Systems)
        {
            var rows = results.Where(r => r.System == system).ToList();
            Console.WriteLine($"median {system}: {Measure.F(Median(rows.Select(r => r.ReceivedPerSecond)), "0")} received/s, loss {Measure.F(Median(rows.Select(r => r.LossPercent)))} %");
        }

        Console.WriteLine($"median mobile/udp received rate: {Measure.F(Median(ratios))}");
        Measure.WriteJson(json, new { seconds, rounds, size, rate, results });
        return 0;
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return Measure.Percentile(sorted, 50);
    }

    private static async Task<(long Sent, long Received, double Seconds)> RunOneAsync(string system, int seconds, int size, int rate,
        MobileListener listener, HostKey clientKey)
    {
        Func<ReadOnlyMemory<byte>, ValueTask> send;
        Func<Memory<byte>, CancellationToken, ValueTask<int>> receive;
        Func<ValueTask> dispose;
        if (system == "udp")
        {
            var server = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            server.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            client.Connect(server.LocalEndPoint!);
            send = async d => await client.SendAsync(d, SocketFlags.None);
            receive = (b, ct) => server.ReceiveAsync(b, SocketFlags.None, ct);
            dispose = () =>
            {
                client.Dispose();
                server.Dispose();
                return ValueTask.CompletedTask;
            };
        }
        else
        {
            var connector = new MobileConnector(clientKey);
            var accept = listener.AcceptAsync();
            var client = await connector.ConnectAsync(listener.LocalEndPoint, listener.Guid);
            var server = await accept;
            send = d =>
            {
                client.SendDatagram(d.Span);
                return ValueTask.CompletedTask;
            };
            receive = server.ReceiveDatagramAsync;
            dispose = async () =>
            {
                await client.DisposeAsync();
                await server.DisposeAsync();
            };
        }

        long received = 0;
        using var stop = new CancellationTokenSource();
        var lastArrival = Stopwatch.StartNew();
        var reading = Task.Run(async () =>
        {
            var buffer = new byte[65536];
            try
            {
                while (true)
                {
                    await receive(buffer, stop.Token);
                    Interlocked.Increment(ref received);
                    lastArrival.Restart();
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException or MobileConnectionException)
            {
            }
        });

        var data = new byte[size];
        Random.Shared.NextBytes(data);
        long sent = 0;
        var clock = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(seconds);
        await Task.Run(async () =>
        {
            while (clock.Elapsed < end)
            {
                if (rate > 0 && sent >= clock.Elapsed.TotalSeconds * rate)
                {
                    // Paced: the next datagram is not due yet.
                    Thread.Yield();
                    continue;
                }

                await send(data);
                sent++;
            }
        });
        var elapsed = clock.Elapsed.TotalSeconds;
        while (lastArrival.ElapsedMilliseconds < 200)
        {
            await Task.Delay(50);
        }

        await stop.CancelAsync();
        await dispose();
        await reading;
        return (sent, Interlocked.Read(ref received), elapsed);
    }

    private sealed record Row(int Round, string System, double SentPerSecond, double ReceivedPerSecond, double LossPercent, string Load);
}
