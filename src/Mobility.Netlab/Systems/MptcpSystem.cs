using System.Globalization;
using System.Net.Sockets;
using Mobility.Netlab.Scenarios;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Systems;

/// <summary>
/// Linux MPTCP (RFC 8684) with the in-kernel path manager. Sockets are opened with IPPROTO_MPTCP (262) directly.
/// The harness plays the part mptcpd would play on a real laptop: when an address appears it adds an endpoint for it
/// (<c>subflow</c> on the client, which opens a new subflow on existing connections; <c>signal</c> on the server,
/// which announces it with ADD_ADDR), and when an address is lost it deletes that endpoint (closing its subflows at
/// once). Multihomed clients start with an endpoint for the second address flagged <c>backup</c>, so a backup
/// subflow is up before the loss.
/// </summary>
public sealed class MptcpSystem() : SocketSystem(LabSockets.Mptcp)
{
    /// <summary>Subflows and accepted ADD_ADDRs per connection (kernel maximum is 8).</summary>
    public const int SubflowLimit = 4;

    private readonly Dictionary<(string Ns, string Address), int> _endpoints = [];
    private bool _fullmesh;
    private int _nextId;

    public override string Name => "mptcp";

    public override async Task PrepareAsync(EvaluationTopology topology, Scenario scenario, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topology);
        ArgumentNullException.ThrowIfNull(scenario);
        _endpoints.Clear();
        _nextId = 1;
        foreach (var host in new[] { topology.Client, topology.Server })
        {
            await Ip.SysctlAsync(host.Namespace, "net.mptcp.enabled", "1").ConfigureAwait(false);
            var limit = SubflowLimit.ToString(CultureInfo.InvariantCulture);
            await Ip.InAsync(host.Namespace, "mptcp", "limits", "set", "subflows", limit, "add_addr_accepted", limit).ConfigureAwait(false);
        }

        // An endpoint for the address the first subflow uses, so losing it can be signalled by deleting the endpoint.
        var first = topology.Client.Interface("e1");
        await AddEndpointAsync(topology.Client, first, "subflow").ConfigureAwait(false);
        if (scenario.MultihomedClient)
        {
            await AddEndpointAsync(topology.Client, topology.Client.Interface("e2"), "subflow", "backup").ConfigureAwait(false);
        }

        // Across families the server announces its IPv6 address (ADD_ADDR) and the client's new endpoints are full-mesh:
        // the in-kernel path manager only pairs a new local address with remote addresses of its own family.
        _fullmesh = topology.Network == LabNetwork.CrossFamily;
        if (_fullmesh && topology.Server.Interfaces.FirstOrDefault(i => i.IsAttached && i.Address.AddressFamily == AddressFamily.InterNetworkV6) is { } server6)
        {
            await AddEndpointAsync(topology.Server, server6, "signal").ConfigureAwait(false);
        }
    }

    public override async Task OnMovedAsync(EvaluationTopology topology, MoveRecord move, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topology);
        ArgumentNullException.ThrowIfNull(move);
        var host = move.Host == topology.Client.Role ? topology.Client : topology.Server;
        var isClient = host == topology.Client;
        // One ip process for both changes, as mptcpd would apply them from one netlink event.
        var commands = new List<string>();
        if (move.To is { } to && (move.ToAddress ?? host.Interface(to).Address) is var added && !_endpoints.ContainsKey((host.Namespace, added.ToString())))
        {
            commands.Add(AddEndpointCommand(host, added, to, isClient ? (_fullmesh ? ["subflow", "fullmesh"] : ["subflow"]) : ["signal"]));
        }

        if (move.From is { } from && _endpoints.Remove((host.Namespace, (move.FromAddress ?? host.Interface(from).Address).ToString()), out var id))
        {
            commands.Add($"mptcp endpoint delete id {id.ToString(CultureInfo.InvariantCulture)}");
        }

        if (commands.Count > 0)
        {
            await Ip.BatchAsync(host.Namespace, commands).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// MPTCP counters (<c>nstat</c>) of both ends: prove the connection used MPTCP (no fallback), how many subflows
    /// joined, and whether address announcements went out and arrived.
    /// </summary>
    public override async Task<string?> DescribeRunAsync(EvaluationTopology topology, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topology);
        var client = await CountersAsync(topology.Client.Namespace, ["MPCapableSYNACKRX", "MPFallbackTokenInit", "MPJoinSynTx", "MPJoinSynAckRx", "AddAddr", "RmSubflow", "MPTCPRetrans"], cancellationToken).ConfigureAwait(false);
        var server = await CountersAsync(topology.Server.Namespace, ["MPJoinSynRx", "AddAddrTx", "EchoAdd"], cancellationToken).ConfigureAwait(false);
        return $"client {client}; server {server}";
    }

    private static async Task<string> CountersAsync(string ns, string[] names, CancellationToken cancellationToken)
    {
        var result = await Ip.ExecAsync(ns, "nstat", ["-az"], cancellationToken: cancellationToken).ConfigureAwait(false);
        var values = result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(parts => parts.Length >= 2 && parts[0].StartsWith("MPTcpExt", StringComparison.Ordinal))
            .ToDictionary(parts => parts[0]["MPTcpExt".Length..], parts => parts[1], StringComparer.Ordinal);
        return string.Join(' ', names.Select(n => $"{n}={values.GetValueOrDefault(n, "?")}"));
    }

    private Task AddEndpointAsync(LabHost host, HostInterface iface, params string[] flags) =>
        Ip.BatchAsync(host.Namespace, [AddEndpointCommand(host, iface.Address, iface.Name, flags)]);

    private string AddEndpointCommand(LabHost host, System.Net.IPAddress address, string device, string[] flags)
    {
        var id = _nextId++;
        _endpoints[(host.Namespace, address.ToString())] = id;
        return $"mptcp endpoint add {address} dev {device} id {id.ToString(CultureInfo.InvariantCulture)} {string.Join(' ', flags)}";
    }
}
