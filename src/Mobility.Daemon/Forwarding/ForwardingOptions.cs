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

    /// <summary>Hosts whose GNS records are watched at once for endpoint pushes; the oldest watch stops beyond it.</summary>
    public int MaxWatchedPeers { get; set; } = 256;
}
