namespace Mobility.Daemon.Nat;

/// <summary>NAT discovery (section <c>Nat</c>; docs/nat.md, "NAT discovery").</summary>
public sealed class NatOptions
{
    /// <summary>Learn the reflexive address and the NAT's behaviour from the GNS endpoints of <c>--gns</c>. Off: no probe is ever sent.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// A check runs at start, after every address change, on <c>mob netcheck</c>, and this long after the last check.
    /// Five minutes: a NAT's behaviour rarely changes while the host's addresses stay the same (a change of network
    /// raises an address event, which checks at once), so the periodic check only catches a router that was replaced
    /// or rebooted behind the host's back. Each check costs a handful of 16-byte datagrams.
    /// </summary>
    public TimeSpan RecheckInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long one probe waits for its answer before it is sent again. 500 ms: several round trips on any real path.</summary>
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Sends of one probe before it counts as unanswered. Three: a lost datagram must not read as "filtered"; the
    /// filtering probe, which goes unanswered behind most NATs, so costs Attempts x ProbeTimeout (1.5 s).
    /// </summary>
    public int Attempts { get; set; } = 3;

    /// <summary>GNS addresses of one family probed for the mapping test, the first included. Four: a few answers, never a scan of a long list.</summary>
    public int MaxServersPerFamily { get; set; } = 4;

    /// <summary>
    /// Ask the default gateway to map the transport (TCP) and control (UDP) ports with PCP, or NAT-PMP when the gateway
    /// does not speak PCP (docs/nat.md, "Port mapping"). On by default, as in Tailscale: a home router that offers
    /// port mapping makes the host reachable directly, without a relay and without anyone configuring a port forward;
    /// the daemon asks only for its own two ports and only its default gateway, and without an answering gateway this
    /// costs a few datagrams per address change (and at most one retry round per <see cref="PortMappingMaxRetryDelay"/>).
    /// Off where network policy forbids asking the router for inbound ports.
    /// </summary>
    public bool PortMapping { get; set; } = true;

    /// <summary>
    /// The lifetime asked for; the gateway may grant less. Renewed at half of what it granted. Two hours: what
    /// Tailscale asks for, and short enough that a mapping left behind by a crashed daemon soon expires.
    /// </summary>
    public TimeSpan PortMappingLifetime { get; set; } = TimeSpan.FromHours(2);

    /// <summary>
    /// The gateway to ask: <c>auto</c> (the default route's gateway, IPv4) or <c>IP</c> / <c>IP:PORT</c> (port 5351
    /// when left out).
    /// </summary>
    public string PortMappingGateway { get; set; } = "auto";

    /// <summary>
    /// After a failed request the daemon asks again after 30 s, doubling up to this (an address change asks at once).
    /// Thirty minutes: a gateway without PCP or NAT-PMP costs a handful of datagrams twice an hour.
    /// </summary>
    public TimeSpan PortMappingMaxRetryDelay { get; set; } = TimeSpan.FromMinutes(30);
}
