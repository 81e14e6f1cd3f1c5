namespace Mobility.Relay;

/// <summary>
/// The relay's limits (configuration section <c>Relay:Limits</c>), each default with its reason, as
/// Kestrel's <c>KestrelServerLimits</c>. docs/protocol.md ("Relay") lists them.
/// </summary>
public sealed class RelayLimits
{
    /// <summary>Hosts registered at once. A registration beyond it is answered Full. 10,000 control connections cost a few MiB.</summary>
    public int MaxHosts { get; set; } = 10_000;

    /// <summary>Spliced pairs at once (two TCP connections each). 20,000 pairs at well under 32 KiB each stay under 640 MiB.</summary>
    public int MaxSplices { get; set; } = 20_000;

    /// <summary>Dials waiting for their host's data connection. A dial beyond it is answered Full.</summary>
    public int MaxPendingSplices { get; set; } = 1_000;

    /// <summary>
    /// Connections whose first message (and, for a registration, its proof) has not been handled yet.
    /// A connection beyond it is closed at once, so a flood of idle connections holds at most this many
    /// sockets for at most <see cref="FirstMessageTimeout"/>.
    /// </summary>
    public int MaxUnidentified { get; set; } = 1_000;

    /// <summary>
    /// Of <see cref="MaxUnidentified"/>, how many one source (an IPv4 address or an IPv6 /64) may hold: a connection
    /// beyond it is closed at once, so one flooding source cannot take every place and lock out other hosts'
    /// registrations and every dial. 64 covers the hosts behind one NAT reconnecting at once after a relay restart.
    /// </summary>
    public int MaxUnidentifiedPerSource { get; set; } = 64;

    /// <summary>Time a new connection has for its first message, and a registering host for its proof. A host on a slow link needs one round trip.</summary>
    public TimeSpan FirstMessageTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Time a dial waits for the host's data connection (a round trip to the host and a TCP connect).</summary>
    public TimeSpan PendingSpliceTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>A control connection that sends nothing (no ping) for this long is closed. Hosts ping every 25 s: three pings lost.</summary>
    public TimeSpan ControlIdleTimeout { get; set; } = TimeSpan.FromSeconds(75);

    /// <summary>
    /// Bytes buffered per connection and direction (Kestrel's read and write buffer limits): a slow
    /// reader stops its writer's reads through TCP flow control instead of growing a buffer. 64 KiB
    /// keeps a loopback splice near line rate; an idle connection holds none of it.
    /// </summary>
    public int BufferBytes { get; set; } = 64 * 1024;

    /// <summary>Registrations per second per source (IPv4 address or IPv6 /64); a host re-registers after a move or a relay restart.</summary>
    public double RegistrationsPerSecond { get; set; } = 1;

    /// <summary>Registrations a source may make at once (hosts behind one NAT after a restart of the relay).</summary>
    public int RegistrationBurst { get; set; } = 20;

    /// <summary>Registrations per second per GUID: a key that registers in a loop (two daemons with one key) is slowed.</summary>
    public double GuidRegistrationsPerSecond { get; set; } = 0.2;

    /// <summary>Registrations a GUID may make at once.</summary>
    public int GuidRegistrationBurst { get; set; } = 5;

    /// <summary>Dials per second per source: a dialler proves nothing to the relay, so it is only rate-limited.</summary>
    public double DialsPerSecond { get; set; } = 20;

    /// <summary>Dials a source may make at once (an application opening many connections).</summary>
    public int DialBurst { get; set; } = 100;

    /// <summary>Dials per second to one GUID, whatever their source: each costs the host a TCP connection to the relay.</summary>
    public double GuidDialsPerSecond { get; set; } = 50;

    /// <summary>Dials to one GUID at once.</summary>
    public int GuidDialBurst { get; set; } = 200;

    /// <summary>Sources (and GUIDs) with a rate-limit bucket of their own; beyond it they share one (Mobility.Net's SourceRateLimiter).</summary>
    public int MaxRateLimitedSources { get; set; } = 10_000;
}

/// <summary>What the relay admits and which endpoints are its own (configuration section <c>Relay</c>).</summary>
public sealed class RelayOptions
{
    public const string SectionName = "Relay";

    /// <summary>
    /// GUIDs admitted to register (40 hex digits each); null admits every GUID that proves its key.
    /// The host reads them from the <c>--allow</c> file.
    /// </summary>
    public IReadOnlySet<Mobility.Protocol.Identity.HostGuid>? Allowed { get; set; }

    /// <summary>
    /// Endpoints a host may name in its proof besides the local endpoint of its connection: the
    /// relay's public addresses when it sits behind a port forward or a load balancer.
    /// </summary>
    public IReadOnlyList<System.Net.IPEndPoint> Advertised { get; set; } = [];

    public RelayLimits Limits { get; set; } = new();
}
