using System.Net;
using Mobility.Netlab.Emulation;
using Mobility.Netlab.Processes;

namespace Mobility.Netlab.Topology;

/// <summary>What to build.</summary>
public sealed record TopologyOptions
{
    /// <summary>The emulated link between the edge router and the rest; null builds the topology without starting the emulator.</summary>
    public LinkEmulatorOptions? Link { get; init; } = LinkEmulatorOptions.ForRtt(TimeSpan.FromMilliseconds(50));

    /// <summary>Attach the client's second interface at start (multihomed client).</summary>
    public bool MultihomedClient { get; init; }

    /// <summary>How long the emulator process may take to start on a loaded machine.</summary>
    public TimeSpan LinkStartTimeout { get; init; } = TimeSpan.FromSeconds(90);
}

/// <summary>
/// The evaluation topology (all IPv4, private range 10.231.0.0/16, only inside namespaces):
/// <code>
///   client ─e1── 10.231.1.0/24 ──a1─┐                                     ┌─b1── 10.231.9.0/24 ──e1─ server
///          ─e2── 10.231.2.0/24 ──a2─┤ edge router ─tr0── 10.231.254.0/30 ─tr0─┤ core router ─b2── 10.231.10.0/24 ─e2─
///                                   │ (tedge ⇄ emulator ⇄ tcore)             └─g1── 10.231.100.0/24 ─e1─ gns
/// </code>
/// Everything entering the edge router from the client's subnets is policy-routed into TUN <c>tedge</c>; the
/// emulator delays it and writes it to TUN <c>tcore</c>, from where the kernel forwards it to the core router.
/// Traffic from the core router to the client's subnets is routed into <c>tcore</c> and comes out of <c>tedge</c>.
/// So every client⇄server and client⇄gns packet crosses the emulated link once per direction; server⇄gns does not.
/// </summary>
public sealed class EvaluationTopology : IAsyncDisposable
{
    public const string EdgeTun = "tedge";
    public const string CoreTun = "tcore";

    private readonly TopologyOptions _options;

    private EvaluationTopology(Lab lab, TopologyOptions options)
    {
        Lab = lab;
        _options = options;
    }

    public Lab Lab { get; }

    /// <summary>The mobile host behind the emulated link (interfaces e1 on 10.231.1.0/24, e2 on 10.231.2.0/24).</summary>
    public required LabHost Client { get; init; }

    /// <summary>The peer (interfaces e1 on 10.231.9.0/24, e2 on 10.231.10.0/24).</summary>
    public required LabHost Server { get; init; }

    /// <summary>Where the Global Name Service runs (10.231.100.2).</summary>
    public required LabHost Gns { get; init; }

    public required string EdgeRouter { get; init; }

    public required string CoreRouter { get; init; }

    /// <summary>The running emulator, or null when the topology was built without one.</summary>
    public NamespaceProcess? LinkProcess { get; private set; }

    public LinkEmulatorOptions? LinkOptions { get; private set; }

    public static async Task<EvaluationTopology> CreateAsync(TopologyOptions? options = null, TextWriter? log = null)
    {
        options ??= new TopologyOptions();
        var lab = Lab.Create(log);
        try
        {
            var client = await lab.AddNamespaceAsync("client").ConfigureAwait(false);
            var server = await lab.AddNamespaceAsync("server").ConfigureAwait(false);
            var gns = await lab.AddNamespaceAsync("gns").ConfigureAwait(false);
            var edge = await lab.AddNamespaceAsync("redge", router: true).ConfigureAwait(false);
            var core = await lab.AddNamespaceAsync("rcore", router: true).ConfigureAwait(false);

            await Lab.AddVethAsync(client, "e1", edge, "a1").ConfigureAwait(false);
            await Lab.AddVethAsync(client, "e2", edge, "a2").ConfigureAwait(false);
            await Lab.AddVethAsync(edge, "tr0", core, "tr0").ConfigureAwait(false);
            await Lab.AddVethAsync(server, "e1", core, "b1").ConfigureAwait(false);
            await Lab.AddVethAsync(server, "e2", core, "b2").ConfigureAwait(false);
            await Lab.AddVethAsync(gns, "e1", core, "g1").ConfigureAwait(false);

            await RouterInterfaceAsync(edge, "a1", "10.231.1.1/24").ConfigureAwait(false);
            await RouterInterfaceAsync(edge, "a2", "10.231.2.1/24").ConfigureAwait(false);
            await RouterInterfaceAsync(edge, "tr0", "10.231.254.1/30").ConfigureAwait(false);
            await RouterInterfaceAsync(core, "tr0", "10.231.254.2/30").ConfigureAwait(false);
            await RouterInterfaceAsync(core, "b1", "10.231.9.1/24").ConfigureAwait(false);
            await RouterInterfaceAsync(core, "b2", "10.231.10.1/24").ConfigureAwait(false);
            await RouterInterfaceAsync(core, "g1", "10.231.100.1/24").ConfigureAwait(false);

            // The emulated link: persistent TUN devices, so routes exist before and after the emulator process.
            foreach (var tun in new[] { EdgeTun, CoreTun })
            {
                await Ip.InAsync(edge, "tuntap", "add", "dev", tun, "mode", "tun").ConfigureAwait(false);
                await Ip.InAsync(edge, "link", "set", tun, "mtu", "1500", "up").ConfigureAwait(false);
            }

            await Ip.InAsync(edge, "route", "add", "default", "dev", EdgeTun, "table", "100").ConfigureAwait(false);
            await Ip.InAsync(edge, "rule", "add", "iif", "a1", "lookup", "100", "priority", "100").ConfigureAwait(false);
            await Ip.InAsync(edge, "rule", "add", "iif", "a2", "lookup", "100", "priority", "100").ConfigureAwait(false);
            await Ip.InAsync(edge, "route", "add", "10.231.1.0/24", "dev", CoreTun, "table", "101").ConfigureAwait(false);
            await Ip.InAsync(edge, "route", "add", "10.231.2.0/24", "dev", CoreTun, "table", "101").ConfigureAwait(false);
            await Ip.InAsync(edge, "rule", "add", "iif", "tr0", "lookup", "101", "priority", "101").ConfigureAwait(false);
            await Ip.InAsync(edge, "route", "add", "default", "via", "10.231.254.2").ConfigureAwait(false);
            await Ip.InAsync(core, "route", "add", "10.231.1.0/24", "via", "10.231.254.1").ConfigureAwait(false);
            await Ip.InAsync(core, "route", "add", "10.231.2.0/24", "via", "10.231.254.1").ConfigureAwait(false);

            var clientHost = new LabHost("client", client,
            [
                new HostInterface("e1", IPAddress.Parse("10.231.1.2"), 24, IPAddress.Parse("10.231.1.1"), 201),
                new HostInterface("e2", IPAddress.Parse("10.231.2.2"), 24, IPAddress.Parse("10.231.2.1"), 202),
            ]);
            var serverHost = new LabHost("server", server,
            [
                new HostInterface("e1", IPAddress.Parse("10.231.9.2"), 24, IPAddress.Parse("10.231.9.1"), 201),
                new HostInterface("e2", IPAddress.Parse("10.231.10.2"), 24, IPAddress.Parse("10.231.10.1"), 202),
            ]);
            var gnsHost = new LabHost("gns", gns, [new HostInterface("e1", IPAddress.Parse("10.231.100.2"), 24, IPAddress.Parse("10.231.100.1"), 201)]);

            await clientHost.AttachAsync(clientHost.Interfaces[0]).ConfigureAwait(false);
            if (options.MultihomedClient)
            {
                await clientHost.AttachAsync(clientHost.Interfaces[1], makeDefault: false).ConfigureAwait(false);
            }

            await serverHost.AttachAsync(serverHost.Interfaces[0]).ConfigureAwait(false);
            await gnsHost.AttachAsync(gnsHost.Interfaces[0]).ConfigureAwait(false);

            var topology = new EvaluationTopology(lab, options) { Client = clientHost, Server = serverHost, Gns = gnsHost, EdgeRouter = edge, CoreRouter = core };
            if (options.Link is { } link)
            {
                await topology.StartLinkAsync(link).ConfigureAwait(false);
            }

            return topology;
        }
        catch
        {
            await lab.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Starts (or restarts with new characteristics) the emulator process in the edge router.</summary>
    public async Task StartLinkAsync(LinkEmulatorOptions link)
    {
        ArgumentNullException.ThrowIfNull(link);
        link.Validate();
        if (LinkProcess is { } running)
        {
            await running.DisposeAsync().ConfigureAwait(false);
            LinkProcess = null;
        }

        var (fileName, prefix) = NetlabTool.Command();
        var process = Lab.StartProcess(EdgeRouter, fileName, [.. prefix, "link", "--tun-a", EdgeTun, "--tun-b", CoreTun, .. link.ToArguments()], readyLine: "ready");
        await process.WaitReadyAsync(_options.LinkStartTimeout).ConfigureAwait(false);
        LinkProcess = process;
        LinkOptions = link;
    }

    private static async Task RouterInterfaceAsync(string ns, string name, string cidr)
    {
        await Ip.InAsync(ns, "addr", "add", cidr, "dev", name).ConfigureAwait(false);
        await Ip.InAsync(ns, "link", "set", name, "up").ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => Lab.DisposeAsync();
}
