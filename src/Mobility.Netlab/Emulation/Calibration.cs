using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Mobility.Netlab.Systems;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Emulation;

/// <summary>Measured RTT across the emulated link for one requested RTT (client → server, through both routers).</summary>
public sealed record CalibrationResult
{
    public required int RttMs { get; init; }

    public double PingMinMs { get; init; }

    public double PingAvgMs { get; init; }

    public double PingMaxMs { get; init; }

    /// <summary>Time for <c>connect()</c> to complete: SYN → SYN-ACK, one RTT.</summary>
    public double TcpConnectMs { get; init; }

    /// <summary>Median of 1-byte echo round trips over an established TCP connection.</summary>
    public double TcpEchoMedianMs { get; init; }

    /// <summary>Fastest echo round trip: what the emulator adds when the machine does not get in the way.</summary>
    public double TcpEchoMinMs { get; init; }

    /// <summary>Ping average and TCP echo median both within <see cref="Calibration.Tolerance"/> of the request.</summary>
    public bool WithinTolerance { get; init; }

    public int Attempts { get; init; }
}

/// <summary>Measures what RTT the emulator really gives, with ping and with a TCP connect/echo.</summary>
public static partial class Calibration
{
    /// <summary>±30%: the machines this runs on are shared and loaded; this is a sanity bound, not a benchmark.</summary>
    public const double Tolerance = 0.30;

    /// <summary>Measurements are repeated (on a loaded machine one may be disturbed) up to this many times.</summary>
    public const int MaxAttempts = 5;

    public const int Port = 5002;

    public const int EchoRounds = 10;

    public static async Task<IReadOnlyList<CalibrationResult>> RunAsync(IReadOnlyList<int> rttsMs, TextWriter? log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(rttsMs);
        var results = new List<CalibrationResult>();
        foreach (var rtt in rttsMs)
        {
            var topology = await EvaluationTopology.CreateAsync(new TopologyOptions { Link = LinkEmulatorOptions.ForRtt(TimeSpan.FromMilliseconds(rtt)) }, log).ConfigureAwait(false);
            await using (topology.ConfigureAwait(false))
            {
                results.Add(await MeasureAsync(topology, rtt, cancellationToken).ConfigureAwait(false));
            }
        }

        return results;
    }

    /// <summary>Measures up to <see cref="MaxAttempts"/> times and returns the first result within tolerance, else the closest.</summary>
    public static async Task<CalibrationResult> MeasureAsync(EvaluationTopology topology, int rttMs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topology);
        CalibrationResult? best = null;
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            var (min, avg, max) = await PingAsync(topology.Client.Namespace, topology.Server.PrimaryAddress, cancellationToken).ConfigureAwait(false);
            var (connect, echo, echoMin) = await TcpAsync(topology, cancellationToken).ConfigureAwait(false);
            var result = new CalibrationResult
            {
                RttMs = rttMs,
                PingMinMs = min,
                PingAvgMs = avg,
                PingMaxMs = max,
                TcpConnectMs = Math.Round(connect, 2),
                TcpEchoMedianMs = Math.Round(echo, 2),
                TcpEchoMinMs = Math.Round(echoMin, 2),
                WithinTolerance = Within(avg, rttMs) && Within(echo, rttMs),
                Attempts = attempt,
            };
            if (result.WithinTolerance)
            {
                return result;
            }

            if (best is null || Math.Abs(result.PingAvgMs - rttMs) < Math.Abs(best.PingAvgMs - rttMs))
            {
                best = result;
            }
        }

        return best! with { Attempts = MaxAttempts };
    }

    public static bool Within(double measured, double requested) => Math.Abs(measured - requested) <= requested * Tolerance;

    /// <summary>10 pings, 200 ms apart; returns min/avg/max in ms.</summary>
    public static async Task<(double Min, double Avg, double Max)> PingAsync(string ns, IPAddress target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var result = await Ip.ExecAsync(ns, "ping", ["-n", "-q", "-c", "10", "-i", "0.2", "-W", "2", target.ToString()], TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        var match = PingSummary().Match(result.StandardOutput);
        if (!match.Success)
        {
            throw new InvalidOperationException($"ping {target} from {ns} gave no RTT summary: {result.StandardOutput} {result.StandardError}");
        }

        static double D(Group g) => double.Parse(g.Value, CultureInfo.InvariantCulture);
        return (D(match.Groups[1]), D(match.Groups[2]), D(match.Groups[3]));
    }

    /// <summary>Connect time and median 1-byte echo RTT over plain TCP from client to server.</summary>
    public static async Task<(double ConnectMs, double EchoMedianMs, double EchoMinMs)> TcpAsync(EvaluationTopology topology, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topology);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        using var listener = LabSockets.Create(topology.Server.Namespace, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(new IPEndPoint(IPAddress.Any, Port));
        listener.Listen(4);
        var echo = EchoOnceAsync(listener, timeout.Token);

        using var client = LabSockets.Create(topology.Client.Namespace, ProtocolType.Tcp);
        client.NoDelay = true;
        var start = Stopwatch.GetTimestamp();
        await client.ConnectAsync(new IPEndPoint(topology.Server.PrimaryAddress, Port), timeout.Token).ConfigureAwait(false);
        var connectMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;

        var samples = new List<double>();
        var one = new byte[1];
        for (var i = 0; i < EchoRounds; i++)
        {
            start = Stopwatch.GetTimestamp();
            await client.SendAsync(one, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            if (await client.ReceiveAsync(one, SocketFlags.None, timeout.Token).ConfigureAwait(false) != 1)
            {
                throw new IOException("echo server closed early");
            }

            samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        client.Shutdown(SocketShutdown.Send);
        await echo.ConfigureAwait(false);
        samples.Sort();
        return (connectMs, samples[samples.Count / 2], samples[0]);
    }

    private static async Task EchoOnceAsync(Socket listener, CancellationToken cancellationToken)
    {
        using var peer = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
        peer.NoDelay = true;
        var buffer = new byte[1];
        for (var i = 0; i < EchoRounds; i++)
        {
            if (await peer.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false) != 1)
            {
                return;
            }

            await peer.SendAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
    }

    public static string FormatTable(IEnumerable<CalibrationResult> results)
    {
        var text = new StringBuilder();
        text.AppendLine("requested_rtt  ping_min  ping_avg  ping_max  tcp_connect  tcp_echo_min  tcp_echo_median  within_30%  attempts");
        foreach (var r in results)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{r.RttMs,10} ms  {r.PingMinMs,8:0.00}  {r.PingAvgMs,8:0.00}  {r.PingMaxMs,8:0.00}  {r.TcpConnectMs,11:0.00}  {r.TcpEchoMinMs,12:0.00}  {r.TcpEchoMedianMs,15:0.00}  {(r.WithinTolerance ? "yes" : "NO"),10}  {r.Attempts,8}");
        }

        return text.ToString();
    }

    [GeneratedRegex(@"= ([0-9.]+)/([0-9.]+)/([0-9.]+)/")]
    private static partial Regex PingSummary();
}
