namespace Mobility.Daemon.Addresses;

/// <summary>When a subscriber of <see cref="AddressMonitor"/> is told of an address change, relative to the others.</summary>
public enum AddressChangeOrder
{
    /// <summary>
    /// First, on the thread that saw the change: work that must leave the host at once and is short (the record
    /// publisher signs and sends the update: a peer that moved at the same time learns the new address from it).
    /// </summary>
    Publish,

    /// <summary>Next, on that thread: hand-overs that only post work to other loops (the transport's connections).</summary>
    Transport,

    /// <summary>Last: setting the flags of background loops (NAT check, state files, port mapping, GNS watch).</summary>
    Background,
}
