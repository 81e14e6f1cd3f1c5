using System.Net;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Processes;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.FunctionalTests.Addresses;

/// <summary>
/// A namespace with IPv6 on (DAD on, as on a real host), a veth pair <c>a0</c>/<c>a1</c> inside it, and a real
/// mobilityd (embedded GNS, nothing else) that follows the namespace's addresses; every "Host addresses are now [...]"
/// line it logs is kept in order, so a test can wait for a change and count the changes in between.
/// </summary>
internal sealed class AddressWatchingDaemon : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly List<IPAddress[]> _changes = [];
    private readonly SemaphoreSlim _changed = new(0);

    private AddressWatchingDaemon(Lab lab, string ns, NamespaceProcess process)
    {
        Lab = lab;
        Namespace = ns;
        Process = process;
        process.LineReceived += OnLine;
    }

    public Lab Lab { get; }

    public string Namespace { get; }

    public NamespaceProcess Process { get; }

    /// <summary>The address sets the daemon published, in order.</summary>
    public IReadOnlyList<IPAddress[]> Changes
    {
        get
        {
            lock (_gate)
            {
                return [.. _changes];
            }
        }
    }

    public static async Task<AddressWatchingDaemon> StartAsync()
    {
        var lab = Lab.Create();
        try
        {
            var ns = await lab.AddNamespaceAsync("v6");
            await Ip.SysctlAsync(ns, "net.ipv6.conf.all.disable_ipv6", "0");
            await Ip.SysctlAsync(ns, "net.ipv6.conf.default.disable_ipv6", "0");
            await Ip.BatchAsync(ns, ["link add a0 type veth peer name a1", "link set a0 up", "link set a1 up"]);
            var state = lab.CreateTemporaryDirectory("daemon");
            var (file, prefix) = MobilityExecutables.Mobilityd();
            string[] arguments =
            [
                .. prefix,
                "--state-dir", state,
                "--embedded-gns", "--embedded-gns-udp", "127.0.0.1:7353",
                "--socket", Path.Combine(state, "api.sock"), "--grpc-socket", "off", "--http", "off", "--grpc", "off", "--socks", "off",
                "--transport", "[::]:7391",
                "--Logging:LogLevel:Mobility.Daemon.Addresses", "Debug",
            ];
            var process = lab.StartProcess(ns, file, arguments, readyLine: "mobilityd ready ", workingDirectory: state);
            var daemon = new AddressWatchingDaemon(lab, ns, process);
            await process.WaitReadyAsync(TimeSpan.FromSeconds(60));
            return daemon;
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs iproute2 commands in the namespace (one batch).</summary>
    public Task IpAsync(params string[] commands) => Ip.BatchAsync(Namespace, commands);

    /// <summary>Waits for a published set that satisfies <paramref name="condition"/> (one already published counts); returns its index in <see cref="Changes"/>.</summary>
    public async Task<int> WaitForAsync(Func<IPAddress[], bool> condition, string what, int from = 0)
    {
        using var timeout = new CancellationTokenSource(NetlabTimeouts.Step);
        while (true)
        {
            lock (_gate)
            {
                for (var i = from; i < _changes.Count; i++)
                {
                    if (condition(_changes[i]))
                    {
                        return i;
                    }
                }
            }

            try
            {
                await _changed.WaitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"mobilityd never published {what}; it published: {Describe()}\n{Process.StandardError}");
            }
        }
    }

    /// <summary>
    /// Adds then removes a fence address (IPv4, never otherwise used) and waits for both changes: every change the
    /// kernel had told the daemon of before the fence has been published by then.
    /// </summary>
    public async Task<int> FenceAsync()
    {
        var fence = IPAddress.Parse("192.0.2.250");
        var start = Changes.Count;
        await IpAsync("addr add 192.0.2.250/32 dev a1");
        var added = await WaitForAsync(s => s.Contains(fence), "the fence address", start);
        await IpAsync("addr del 192.0.2.250/32 dev a1");
        await WaitForAsync(s => !s.Contains(fence), "the fence address removed", added + 1);
        return added;
    }

    public string Describe() => string.Join(" | ", Changes.Select(s => "[" + string.Join(' ', s.Select(a => a.ToString())) + "]"));

    public async ValueTask DisposeAsync()
    {
        Process.LineReceived -= OnLine;
        await Lab.DisposeAsync();
        _changed.Dispose();
    }

    private void OnLine(object? sender, OutputLine line)
    {
        const string Marker = "Host addresses are now [";
        var start = line.Text.IndexOf(Marker, StringComparison.Ordinal);
        var end = start < 0 ? -1 : line.Text.IndexOf(']', start);
        if (end < 0)
        {
            return;
        }

        var list = line.Text[(start + Marker.Length)..end].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(IPAddress.Parse).ToArray();
        lock (_gate)
        {
            _changes.Add(list);
        }

        _changed.Release();
    }
}
