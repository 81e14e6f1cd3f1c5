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
}
