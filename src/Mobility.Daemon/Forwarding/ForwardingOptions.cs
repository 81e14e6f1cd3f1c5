namespace Mobility.Daemon.Forwarding;

/// <summary>Limits of the forwarder (mobile transport listener and SOCKS5 endpoint).</summary>
public sealed class ForwardingOptions
{
    /// <summary>
    /// A relay with no byte moving either way for this long is closed. 2 h: the Linux TCP keepalive
    /// default, so an idle SSH session lives as long as it would without the forwarder.
    /// </summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromHours(2);

    /// <summary>Time a peer has to send its open header or SOCKS5 handshake. 10 s: many round trips, and a slow-loris holds little.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Time allowed to reach the target (the local port, or the remote host through the mobile transport).</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Relays at once, per endpoint; more are refused. Each holds two 64 KiB buffers while it copies.</summary>
    public int MaxRelays { get; set; } = 1024;

    /// <summary>
    /// A UDP session (a forwarded source, or an exposed UDP port's session for one peer connection)
    /// with no datagram either way for this long ends, and its mobile connection is closed. 120 s:
    /// the Linux conntrack timeout of a UDP flow that has seen replies, so a session lives as long as
    /// the kernel would keep its NAT mapping.
    /// </summary>
    public TimeSpan UdpIdleTimeout { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>UDP forwards (<c>mob forward --udp</c>) at once; each is one UDP socket and its sessions (which count as relays).</summary>
    public int MaxUdpForwards { get; set; } = 64;

    /// <summary>Ports exposed at start (more with Expose); none by default, so nothing is reachable unless asked.</summary>
    public int[] Exposed { get; set; } = [];

    /// <summary>
    /// Allow-lists of ports exposed at start: port (as text) to the GUIDs that may open it
    /// (<c>"Allow": { "22": ["&lt;guid&gt;"] }</c>, or <c>--Forwarding:Allow:22:0 &lt;guid&gt;</c>). A port
    /// without an entry is open to every authenticated peer. Keys must be ports listed in <see cref="Exposed"/>.
    /// </summary>
    public Dictionary<string, string[]> Allow { get; set; } = [];

    /// <summary>
    /// Hosts whose GNS records are watched at once (every GUID looked up: get_ip, SOCKS5 targets, address
    /// owners, mobile connections' peers); beyond it the least recently looked-up one stops being watched
    /// and its cached record is dropped (<see cref="Peers.WatchedRecords"/>).
    /// </summary>
    public int MaxWatchedPeers { get; set; } = 256;

    /// <summary>
    /// How long a verified owner of an address (with a transport endpoint) is remembered for
    /// connections to that address. 10 s: a third of the challenger's positive verdict time, so an
    /// address that changed hands is re-checked soon; a failed mobile attempt forgets it at once.
    /// </summary>
    public TimeSpan OwnerCacheTime { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long "no verified owner" (plain TCP) is remembered for an address. 5 s: a burst of
    /// connections to a plain server costs one GNS reverse lookup, and a host that arrives at the
    /// address is found within seconds.
    /// </summary>
    public TimeSpan NoOwnerCacheTime { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Addresses whose owner (or lack of one) is remembered; the entry expiring first goes beyond it.</summary>
    public int MaxCachedOwners { get; set; } = 4096;

    /// <summary>Keepalive policy and listener limits of the mobile transport (<c>Forwarding:Transport:*</c>).</summary>
    public TransportSettings Transport { get; set; } = new();
}

/// <summary>
/// The mobile transport's tunables as mobilityd exposes them (defaults and reasons: see
/// <see cref="Mobility.Transport.MobileTransportOptions"/> and <see cref="Mobility.Transport.MobileListenerOptions"/>).
/// </summary>
public sealed class TransportSettings
{
    /// <summary>Probe interval of an active connection (data in flight or moved in the last 2 × DeadPathTimeout).</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>An idle connection's client sends one keepalive after this long without receiving (×0.75–1.25 jitter).</summary>
    public TimeSpan IdleKeepAliveInterval { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>An active flow with nothing received for this long is dead.</summary>
    public TimeSpan DeadPathTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>A connection without a working flow for this long fails.</summary>
    public TimeSpan PathlessTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Flows in the handshake at once.</summary>
    public int MaxPendingHandshakes { get; set; } = 256;

    /// <summary>Accepted flows waiting for a handshake slot (each within its handshake timeout); more are reset.</summary>
    public int MaxQueuedHandshakes { get; set; } = 4096;

    /// <summary>Listen backlog of the transport socket (capped by net.core.somaxconn).</summary>
    public int ListenBacklog { get; set; } = 4096;

    /// <summary>
    /// TCP Fast Open for resumes (docs/transport.md, "Resume: the first flight"): outgoing resume flows
    /// carry their Resume in the SYN, and the listener takes such SYNs (only with the host's
    /// net.ipv4.tcp_fastopen server bit 0x2, which mobilityd never sets).
    /// </summary>
    public bool FastOpen { get; set; } = true;

    /// <summary>SYNs with data the listener holds before their handshake completes (with <see cref="FastOpen"/>).</summary>
    public int FastOpenQueue { get; set; } = 256;

    /// <summary>
    /// Standby paths a connection keeps besides its active one (docs/transport.md, "Standby paths"): the
    /// client joins them from its other addresses, the server accepts that many per connection; 0 turns
    /// them off (a dead path is then replaced by a resume).
    /// </summary>
    public int MaxStandbyPaths { get; set; } = 1;

    /// <summary>
    /// Direct paths (docs/nat.md, "Direct paths"): the daemon sends its direct candidates on every incoming
    /// connection, and a connection it opened through a relay dials the peer's and moves to a direct path
    /// that joins, keeping the relayed one as a standby (needs <see cref="MaxStandbyPaths"/> above 0).
    /// False: no candidates sent, those received ignored, relayed connections stay relayed.
    /// </summary>
    public bool DirectPaths { get; set; } = true;

    /// <summary>
    /// Rehearse one move over loopback in the background at start (<see cref="Mobility.Transport.MoveRehearsal"/>), so
    /// that the first real move runs code that has run before: a process's first move otherwise pays tens of
    /// milliseconds per step for code run the first time (docs/evaluation.md, "Cold code on the first move").
    /// </summary>
    public bool RehearseMove { get; set; } = true;

    /// <summary>
    /// Call backs (docs/transport.md, "Call back"): when this host's address changes, each incoming connection whose
    /// path died opens a flow from the new address to its client's listener (the client's published endpoints and
    /// its old address) and sends an authenticated CallBack, and an outgoing connection called back so resumes on
    /// the flow it was called on, without waiting for the GNS push. False: neither.
    /// </summary>
    public bool CallBack { get; set; } = true;

    /// <summary>
    /// Connection reversal (docs/transport.md, "Connection reversal"): an incoming connection that arrived through this
    /// host's relay dials its client's published transport listener (a Host or Observed locator of the client's GNS
    /// record) from an ephemeral port and sends an authenticated Reverse; the client joins on that flow and moves to
    /// it as a direct path, keeping the relayed one as a standby. This daemon's outgoing connections join on the
    /// reversals that reach its transport listener. Needs <see cref="DirectPaths"/>. False: neither.
    /// </summary>
    public bool ConnectionReversal { get; set; } = true;

    /// <summary>Copies the keepalive policy, <see cref="FastOpen"/>, <see cref="MaxStandbyPaths"/>, <see cref="DirectPaths"/>, <see cref="CallBack"/> and <see cref="ConnectionReversal"/> into <paramref name="options"/>.</summary>
    public T Apply<T>(T options)
        where T : Mobility.Transport.MobileTransportOptions
    {
        ArgumentNullException.ThrowIfNull(options);
        options.KeepAliveInterval = KeepAliveInterval;
        options.IdleKeepAliveInterval = IdleKeepAliveInterval;
        options.DeadPathTimeout = DeadPathTimeout;
        options.PathlessTimeout = PathlessTimeout;
        options.FastOpen = FastOpen;
        options.MaxStandbyPaths = MaxStandbyPaths;
        options.DirectPaths = DirectPaths;
        options.CallBack = CallBack;
        options.ConnectionReversal = ConnectionReversal;
        return options;
    }
}
