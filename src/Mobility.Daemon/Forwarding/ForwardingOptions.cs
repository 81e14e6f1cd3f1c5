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

    /// <summary>Ports exposed at start (more with Expose); none by default, so nothing is reachable unless asked.</summary>
    public int[] Exposed { get; set; } = [];

    /// <summary>
    /// Allow-lists of ports exposed at start: port (as text) to the GUIDs that may open it
    /// (<c>"Allow": { "22": ["&lt;guid&gt;"] }</c>, or <c>--Forwarding:Allow:22:0 &lt;guid&gt;</c>). A port
    /// without an entry is open to every authenticated peer. Keys must be ports listed in <see cref="Exposed"/>.
    /// </summary>
    public Dictionary<string, string[]> Allow { get; set; } = [];

    /// <summary>Hosts whose GNS records are watched at once for endpoint pushes; the oldest watch stops beyond it.</summary>
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
}
