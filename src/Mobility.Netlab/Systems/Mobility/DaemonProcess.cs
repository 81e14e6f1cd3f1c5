using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Mobility.Net.Processes;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Systems.Mobility;

/// <summary>
/// A real <c>mobilityd</c> in a host namespace, started through <see cref="Lab.StartProcess"/> (so the lab kills it).
/// It uses the namespace's own interface addresses and follows them through OS address events; nothing tells it about
/// moves. Its log lines are dated as the harness reads them, which gives when it noticed an address change
/// (<c>Host addresses are now [...]</c>) and when its mobile connections resumed.
/// </summary>
public sealed partial class DaemonProcess
{
    /// <summary>How long a daemon may take to start on a loaded machine (JIT, key generation, Kestrel).</summary>
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly Lock _lock = new();
    private readonly List<long> _addressChanges = [];
    private readonly List<(long At, double StallMs)> _resumes = [];
    private readonly TaskCompletionSource _watchConnected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _pathsLost;
    private int _resumeFailures;

    private DaemonProcess(LabHost host, NamespaceProcess process, string stateDirectory)
    {
        Host = host;
        Process = process;
        StateDirectory = stateDirectory;
        ApiSocket = Path.Combine(stateDirectory, "api.sock");
        process.LineReceived += OnLine;
    }

    public LabHost Host { get; }

    public NamespaceProcess Process { get; }

    public string StateDirectory { get; }

    /// <summary>The HTTP/JSON API's Unix socket (reachable from any network namespace: it lives in the file system).</summary>
    public string ApiSocket { get; }

    /// <summary>The daemon's GUID (from its ready line).</summary>
    public string Guid { get; private set; } = "";

    /// <summary>The SOCKS5 endpoint inside the host namespace (from the ready line), or null when off.</summary>
    public IPEndPoint? Socks { get; private set; }

    /// <summary>The mobile transport listener (from the ready line).</summary>
    public string Transport { get; private set; } = "";

    /// <summary>
    /// Starts mobilityd in <paramref name="host"/>'s namespace with state in <paramref name="stateDirectory"/>; returns once it
    /// printed its ready line. <paramref name="extraArguments"/> go last (e.g. <c>--transport [::]:7391</c> on IPv6-only hosts).
    /// </summary>
    public static async Task<DaemonProcess> StartAsync(Lab lab, LabHost host, string stateDirectory, GnsProcess gns, bool socks, CancellationToken cancellationToken,
        IReadOnlyList<string>? extraArguments = null)
    {
        ArgumentNullException.ThrowIfNull(lab);
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(gns);
        Directory.CreateDirectory(stateDirectory);
        var (file, prefix) = MobilityExecutables.Mobilityd();
        string[] arguments =
        [
            .. prefix,
            "--state-dir", stateDirectory,
            "--gns", gns.GnsArgument,
            "--gns-grpc", gns.Grpc.ToString(),
            "--socket", Path.Combine(stateDirectory, "api.sock"),
            "--grpc-socket", "off",
            "--http", "off",
            "--grpc", "off",
            "--socks", socks ? "127.0.0.1:1080" : "off",
            // Debug for the transport only: its "lost its path" / "resumed ... after N ms" lines date the recovery.
            "--Logging:LogLevel:Mobility.Transport", "Debug",
            // The GNS watch (pushes of the peer's new address) and the forwarder, for NETLAB_LOGS.
            "--Logging:LogLevel:Mobility.Gns.Client", "Debug",
            "--Logging:LogLevel:Mobility.Daemon.Forwarding", "Debug",
            .. extraArguments ?? [],
        ];
        var process = lab.StartProcess(host.Namespace, file, arguments, readyLine: "mobilityd ready ", workingDirectory: stateDirectory);
        var daemon = new DaemonProcess(host, process, stateDirectory);
        await process.WaitReadyAsync(StartTimeout, cancellationToken).ConfigureAwait(false);
        var ready = ReadyLine.Find(process.StandardOutput, "mobilityd ready");
        daemon.Guid = ready["guid"] ?? throw new CommandFailedException("mobilityd's ready line has no guid: " + ready.Text);
        daemon.Transport = ready["transport"] ?? "";
        daemon.Socks = ready.EndPoint("socks");
        return daemon;
    }

    /// <summary>The first address change the daemon reported at or after <paramref name="since"/> (Stopwatch timestamp), or null.</summary>
    public long? AddressChangeAfter(long since)
    {
        lock (_lock)
        {
            return _addressChanges.Where(t => t >= since).Cast<long?>().FirstOrDefault();
        }
    }

    /// <summary>
    /// Waits until the daemon logged that its GNS watch is connected (it starts with the first lookup of a peer), so a
    /// push of the peer's new address can reach it; false when that did not happen within <paramref name="timeout"/>.
    /// </summary>
    public async Task<bool> WaitForWatchAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await _watchConnected.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>A one-line summary of what the daemon logged about its mobile connections.</summary>
    public string Describe(long since)
    {
        lock (_lock)
        {
            var resumes = _resumes.Where(r => r.At >= since).ToList();
            var changes = _addressChanges.Count(t => t >= since);
            var stalls = resumes.Count == 0 ? "" : " transport-stall-ms=" + string.Join('/', resumes.Select(r => r.StallMs.ToString("0", CultureInfo.InvariantCulture)));
            return $"{Host.Role}: address-events={changes} paths-lost={_pathsLost} resumes={resumes.Count} resume-failures={_resumeFailures}{stalls}";
        }
    }

    private void OnLine(object? sender, OutputLine line)
    {
        if (!line.IsError)
        {
            return;
        }

        lock (_lock)
        {
            if (IsLoopbackLine(line.Text))
            {
                // The daemon's start-up rehearsal of a move over loopback (MoveRehearsal): not a connection of the lab's.
                return;
            }

            if (line.Text.Contains("Host addresses are now [", StringComparison.Ordinal))
            {
                _addressChanges.Add(line.At);
            }
            else if (ResumedPattern().Match(line.Text) is { Success: true } m)
            {
                _resumes.Add((line.At, double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)));
            }
            else if (line.Text.Contains("GUIDs connected to", StringComparison.Ordinal))
            {
                _watchConnected.TrySetResult();
            }
            else if (line.Text.Contains("lost its path to", StringComparison.Ordinal))
            {
                _pathsLost++;
            }
            else if (line.Text.Contains(": resume via ", StringComparison.Ordinal))
            {
                _resumeFailures++;
            }
        }
    }

    /// <summary>A field of mobilityd's ready line (<see cref="ReadyLine"/>), or null.</summary>
    internal static string? Field(string line, string name)
        => ReadyLine.TryFind(line, "mobilityd ready", out var ready) ? ready[name] : null;

    [GeneratedRegex(@"resumed via \S+ after ([0-9.]+) ms")]
    private static partial Regex ResumedPattern();

    /// <summary>Whether a log line names a loopback endpoint (the start-up rehearsal's connection: the lab's hosts have none).</summary>
    internal static bool IsLoopbackLine(string text) => LoopbackEndpointPattern().IsMatch(text);

    [GeneratedRegex(@"(?<![0-9.])127\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+|\[::1\]:[0-9]+")]
    private static partial Regex LoopbackEndpointPattern();
}

/// <summary>A real <c>gns serve --memory</c> in the GNS namespace, with its reflect port for NAT discovery (docs/nat.md).</summary>
public sealed class GnsProcess
{
    public const int UdpPort = 7353;
    public const int ReflectPort = 7354;
    public const int GrpcPort = 7381;

    private GnsProcess(NamespaceProcess process) => Process = process;

    public NamespaceProcess Process { get; }

    public required IPEndPoint Udp { get; init; }

    /// <summary>What a daemon's <c>--gns</c> gets: every address of the GNS host (IPv4 and IPv6 when dual-stack), comma-separated.</summary>
    public required string GnsArgument { get; init; }

    public required Uri Grpc { get; init; }

    /// <summary>The port of the GNS's TLS endpoint when <see cref="StartAsync"/> is given a certificate (HTTPS-only networks).</summary>
    public const int TlsPort = 443;

    /// <summary>The GNS's TLS endpoint (<c>tls://IP:443</c>), or null when it serves none.</summary>
    public string? Tls { get; init; }

    /// <param name="tls">A certificate and key (PEM files): the GNS also serves its datagram protocol over TLS on port 443.</param>
    public static async Task<GnsProcess> StartAsync(Lab lab, LabHost host, string workingDirectory, CancellationToken cancellationToken,
        (string Certificate, string Key)? tls = null)
    {
        ArgumentNullException.ThrowIfNull(lab);
        ArgumentNullException.ThrowIfNull(host);
        var address = host.PrimaryAddress;
        var (file, prefix) = MobilityExecutables.Gns();
        var udp = new IPEndPoint(address, UdpPort);
        // A dual-stack GNS host serves both families on the IPv6 wildcard; the watch URL names its first address.
        var dualStack = host.AttachedAddresses.Select(a => a.AddressFamily).Distinct().Count() > 1;
        var bind = dualStack ? IPAddress.IPv6Any : address;
        var grpcEndPoint = new IPEndPoint(bind, GrpcPort);
        // UriBuilder and IPEndPoint put an IPv6 address in brackets.
        var grpc = new UriBuilder(Uri.UriSchemeHttp, address.ToString(), GrpcPort).Uri;
        string[] arguments = [.. prefix, "serve", "--memory", "--udp", new IPEndPoint(bind, UdpPort).ToString(), "--udp-reflect", new IPEndPoint(bind, ReflectPort).ToString(),
            "--http", "127.0.0.1:7380", "--grpc", grpcEndPoint.ToString(),
            .. tls is { } pem ? (string[])["--tls-listen", new IPEndPoint(address, TlsPort).ToString(), "--tls-cert", pem.Certificate, "--tls-key", pem.Key] : []];
        Directory.CreateDirectory(workingDirectory);
        var process = lab.StartProcess(host.Namespace, file, arguments, readyLine: "gns listening ", workingDirectory: workingDirectory);
        await process.WaitReadyAsync(DaemonProcess.StartTimeout, cancellationToken).ConfigureAwait(false);
        var all = string.Join(',', host.AttachedAddresses.Select(a => new IPEndPoint(a, UdpPort).ToString()));
        return new GnsProcess(process)
        {
            Udp = udp, Grpc = grpc, GnsArgument = all, Tls = tls is null ? null : "tls://" + new IPEndPoint(address, TlsPort),
        };
    }
}
