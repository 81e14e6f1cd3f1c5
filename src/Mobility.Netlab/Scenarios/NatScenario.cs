using System.Globalization;
using System.Text;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.Scenarios;

/// <summary>What is done to the client's NAT in the middle of the transfer.</summary>
public enum NatEvent
{
    None,

    /// <summary><c>conntrack -F</c> in the client's NAT: every mapping forgotten.</summary>
    FlushMappings,

    /// <summary>The client's NAT maps to outside ports 20000-20999 from now on, and forgets its mappings.</summary>
    NewPortRange,
}

/// <summary>
/// One situation of docs/nat.md: where the client and the server sit (public, or behind a NAT of the kit) and what
/// happens to the client's NAT during the transfer. Null site options mean a public host.
/// </summary>
public sealed record NatScenario(string Name, string Description, NatSiteOptions? Client, NatSiteOptions? Server, NatEvent Event = NatEvent.None)
{
    /// <summary>What a server behind a NAT with a port forward forwards: mobilityd's transport (TCP) and control (UDP) ports.</summary>
    public static readonly IReadOnlyList<PortForward> DaemonPorts = [PortForward.Tcp(7391), PortForward.Udp(7390)];

    public static readonly NatScenario ClientNat = new("client-nat", "client behind masquerade, public server",
        new NatSiteOptions { Role = "client" }, null);

    public static readonly NatScenario ClientNatFlush = new("client-nat-flush", "client behind masquerade, its NAT's mappings flushed (conntrack -F) mid-transfer",
        new NatSiteOptions { Role = "client" }, null, NatEvent.FlushMappings);

    public static readonly NatScenario ClientNatNewPorts = new("client-nat-new-ports", "client behind masquerade, its NAT's port range changed and mappings flushed mid-transfer",
        new NatSiteOptions { Role = "client" }, null, NatEvent.NewPortRange);

    public static readonly NatScenario ClientSymmetric = new("client-symmetric", "client behind masquerade random-fully (symmetric), public server",
        new NatSiteOptions { Role = "client", Kind = NatKind.Symmetric }, null);

    public static readonly NatScenario ClientDoubleNat = new("client-double-nat", "client behind a carrier-grade NAT and a home router, public server",
        new NatSiteOptions { Role = "client", Kind = NatKind.Double }, null);

    public static readonly NatScenario ServerNatForward = new("server-nat-forward", "server behind masquerade with a port forward of its transport and control ports",
        null, new NatSiteOptions { Role = "server", Forwards = DaemonPorts });

    public static readonly NatScenario BothNatForward = new("both-nat-forward", "client behind masquerade, server behind another with a port forward",
        new NatSiteOptions { Role = "client" }, new NatSiteOptions { Role = "server", Forwards = DaemonPorts });

    public static readonly NatScenario ServerNat = new("server-nat", "server behind masquerade without a port forward",
        null, new NatSiteOptions { Role = "server" });

    public static IReadOnlyList<NatScenario> All { get; } =
        [ClientNat, ClientNatFlush, ClientNatNewPorts, ClientSymmetric, ClientDoubleNat, ServerNatForward, BothNatForward, ServerNat];
}

/// <summary>One run of a <see cref="NatScenario"/> (a row of nat.json, snake_case names).</summary>
public sealed record NatScenarioResult
{
    public required string Scenario { get; init; }

    /// <summary><c>survived</c>, <c>connected</c> (no event), or how it failed (<c>connect failed: ...</c>, <c>reset (RST)</c>, <c>hang ...</c>).</summary>
    public required string Outcome { get; init; }

    public bool Connected { get; init; }

    /// <summary>Every byte arrived once, in order, and the connection was still open at the end.</summary>
    public bool Intact { get; init; }

    /// <summary>From the SOCKS5 request to the daemon's "succeeded" reply (GNS lookup, mobile handshake, open header).</summary>
    public double? ConnectMs { get; init; }

    /// <summary>Longest gap between chunk arrivals that ends after the NAT event; null without an event or when bytes were lost.</summary>
    public double? StallMs { get; init; }

    /// <summary>The noise floor of the same run: 99th percentile of the gaps between arrivals before the event (after warm-up).</summary>
    public double? BaselineGapP99Ms { get; init; }

    public long BytesLost { get; init; }

    public long BytesDuplicated { get; init; }

    /// <summary>The client's addresses as the server's daemon resolves them from the GNS (the observed one is the NAT's).</summary>
    public string? ClientAddresses { get; init; }

    /// <summary>What <c>mob connect</c> printed when the connection could not be made.</summary>
    public string? MobConnectError { get; init; }

    public string? Notes { get; init; }

    /// <summary>One line per scenario: the outcomes of its runs, the median stall and bytes lost.</summary>
    public static string FormatTable(IReadOnlyList<NatScenarioResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{"scenario",-22} {"runs",4} {"outcomes",-34} {"connect ms (median)",19} {"stall ms (median, min-max)",26} {"gap p99 ms",10} {"bytes lost",10}");
        foreach (var group in results.GroupBy(r => r.Scenario))
        {
            var outcomes = string.Join(", ", group.GroupBy(r => r.Outcome).Select(g => g.Count() == 1 ? g.Key : $"{g.Count()}x {g.Key}"));
            var stalls = group.Where(r => r.StallMs is not null).Select(r => r.StallMs!.Value).ToList();
            var connects = group.Where(r => r.ConnectMs is not null).Select(r => r.ConnectMs!.Value).ToList();
            var stall = stalls.Count == 0 ? "-" : $"{Median(stalls):0} ({stalls.Min():0}-{stalls.Max():0})";
            var connect = connects.Count == 0 ? "-" : $"{Median(connects):0}";
            var floors = group.Where(r => r.BaselineGapP99Ms is not null).Select(r => r.BaselineGapP99Ms!.Value).ToList();
            var floor = floors.Count == 0 ? "-" : $"{Median(floors):0.0}";
            text.AppendLine(CultureInfo.InvariantCulture, $"{group.Key,-22} {group.Count(),4} {outcomes,-34} {connect,19} {stall,26} {floor,10} {string.Join('/', group.Select(r => r.BytesLost)),10}");
        }

        return text.ToString();
    }

    public static double Median(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return Spread.Quantile([.. values.Order()], 0.5);
    }
}
