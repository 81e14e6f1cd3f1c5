using System.Diagnostics;
using System.Net;
using Mobility.Protocol.Identity;
using Mobility.Transport;
using Mobility.Transport.Tests;

namespace Mobility.Bench.Transport;

/// <summary>
/// Handshakes under flood (issue 13): a listener with default options on 127.N.250.1; one mobile
/// connection established first; then <c>attackers</c> loopback attackers from as many 127.N.x.y
/// sources (a share of them half-done: a genuine ClientHello, never a ClientFinish; the rest idle),
/// each renewing its connection every <c>renew</c> seconds (<c>LoopbackFlood</c>, shared with the
/// functional tests). While it runs, <c>samples</c> times each: a new connection from a fresh source
/// (TCP + ClientHello/ServerHello, plus a cookie round trip when the listener is under load) and a
/// resume of the established connection after a client move (TCP + Resume/ResumeAck). The same
/// samples are first taken with no flood. Attackers and the listener share this process and its cores.
/// </summary>
internal static class Flood
{
    public static async Task<int> RunAsync(int attackers, int halfDonePercent, int renewSeconds, int samples, string? json)
    {
        var limit = (int)Math.Min(int.MaxValue, Limits.FileLimit());
        var fit = Math.Min(attackers, limit - 256 - 4096 - 2000);
        if (fit < attackers)
        {
            Console.WriteLine($"descriptor limit {limit}: flood sized down from {attackers} to {fit} attackers");
            attackers = fit;
        }

        using var serverKey = HostKey.Generate();
        using var clientKey = HostKey.Generate();
        const int net = 77;
        await using var listener = new MobileListener(serverKey, new MobileListenerOptions());
        listener.Start(new IPEndPoint(IPAddress.Parse($"127.{net}.250.1"), 0));
        using var stop = new CancellationTokenSource();
        var accepted = AcceptAllAsync(listener, stop.Token);

        var connector = new MobileConnector(clientKey, new MobileConnectionOptions { LocalAddress = IPAddress.Parse($"127.{net}.200.1") });
        await using var client = await connector.ConnectAsync(listener.LocalEndPoint, serverKey.Guid);
        var resumed = new SemaphoreSlim(0);
        client.Diagnostic += (_, e) =>
        {
            if (e.Kind == MobileConnectionEventKind.Resumed)
            {
                resumed.Release();
            }
        };

        var move = 1;
        async Task<(double Handshake, double Resume)> SampleAsync(int i)
        {
            var fresh = new MobileConnector(clientKey, new MobileConnectionOptions { LocalAddress = IPAddress.Parse($"127.{net}.{201 + (i / 250)}.{1 + (i % 250)}") });
            var clock = Stopwatch.StartNew();
            await using (var connection = await fresh.ConnectAsync(listener.LocalEndPoint, serverKey.Guid).WaitAsync(TimeSpan.FromSeconds(60)))
            {
                var handshake = clock.Elapsed.TotalMilliseconds;
                clock.Restart();
                client.NotifyLocalAddressChanged(IPAddress.Parse($"127.{net}.200.{1 + (move++ % 250)}"));
                if (!await resumed.WaitAsync(TimeSpan.FromSeconds(60)))
                {
                    throw new TimeoutException("the established connection did not resume within 60 s");
                }

                return (handshake, clock.Elapsed.TotalMilliseconds);
            }
        }

        async Task<(List<double> Handshakes, List<double> Resumes)> SeriesAsync(int offset)
        {
            List<double> handshakes = [], resumes = [];
            for (var i = 0; i < samples; i++)
            {
                var (h, r) = await SampleAsync(offset + i);
                handshakes.Add(h);
                resumes.Add(r);
                await Task.Delay(200);
            }

            handshakes.Sort();
            resumes.Sort();
            return (handshakes, resumes);
        }

        var quiet = await SeriesAsync(0);
        var halfDone = attackers * halfDonePercent / 100;
        var cpuBefore = Measure.OwnCpuSeconds();
        var floodClock = Stopwatch.StartNew();
        (List<double> Handshakes, List<double> Resumes) loaded;
        long connects;
        await using (var flood = new LoopbackFlood(listener.LocalEndPoint, attackers - halfDone, halfDone,
            i => IPAddress.Parse($"127.{net}.{i / 250}.{1 + (i % 250)}"), TimeSpan.FromSeconds(renewSeconds)))
        {
            while (flood.Connects < attackers)
            {
                await Task.Delay(100);
            }

            loaded = await SeriesAsync(samples);
            connects = flood.Connects;
            Console.WriteLine($"flood: {attackers} attackers ({attackers - halfDone} idle, {halfDone} half-done) from {attackers} sources, renewing every {renewSeconds} s; "
                + $"{connects} connects in {floodClock.Elapsed.TotalSeconds:0.0} s ({connects / floodClock.Elapsed.TotalSeconds:0} /s), {flood.Refused} refused, {flood.Open} open at the end; "
                + $"process CPU {(Measure.OwnCpuSeconds() - cpuBefore) / floodClock.Elapsed.TotalSeconds:0.00} cores; load {Measure.LoadAverage()}");
        }

        Console.WriteLine();
        Console.WriteLine("| | quiet p50 | quiet p90 | quiet max | flood p50 | flood p90 | flood max | flood within 1 s |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        Row("new connection (ms)", quiet.Handshakes, loaded.Handshakes);
        Row("resume after a move (ms)", quiet.Resumes, loaded.Resumes);
        Measure.WriteJson(json, new
        {
            attackers,
            halfDone,
            renewSeconds,
            samples,
            connects,
            quiet = new { handshakeMs = quiet.Handshakes, resumeMs = quiet.Resumes },
            flood = new { handshakeMs = loaded.Handshakes, resumeMs = loaded.Resumes },
        });

        await stop.CancelAsync();
        await accepted;
        return 0;

        static void Row(string name, List<double> quiet, List<double> flood)
            => Console.WriteLine($"| {name} | {Measure.F(Measure.Percentile(quiet, 50), "0.0")} | {Measure.F(Measure.Percentile(quiet, 90), "0.0")} | {Measure.F(quiet[^1], "0.0")} | "
                + $"{Measure.F(Measure.Percentile(flood, 50), "0.0")} | {Measure.F(Measure.Percentile(flood, 90), "0.0")} | {Measure.F(flood[^1], "0.0")} | {flood.Count(ms => ms <= 1000)}/{flood.Count} |");
    }

    private static async Task AcceptAllAsync(MobileListener listener, CancellationToken ct)
    {
        var open = new List<MobileConnection>();
        try
        {
            while (true)
            {
                open.Add(await listener.AcceptAsync(ct));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
        }

        foreach (var connection in open)
        {
            await connection.DisposeAsync();
        }
    }
}
