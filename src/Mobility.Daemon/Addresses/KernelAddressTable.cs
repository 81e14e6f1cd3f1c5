using System.Collections.Immutable;
using System.Net;
using Mobility.Net.Netlink;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Addresses;

/// <summary>
/// The kernel's addresses and links as the netlink messages told them, and which of the addresses are
/// usable: not tentative (unless optimistic), not failed duplicate detection, on a link that is up and
/// running, not deprecated (preferred lifetime 0) while an address of the same family is preferred, and
/// accepted by <see cref="AddressMonitor.Accept"/>. Owned by the monitor's loop (not thread-safe).
/// </summary>
public sealed class KernelAddressTable
{
    /// <summary>
    /// At most this many addresses are kept: a host with more is misconfigured or hostile, and only
    /// <see cref="GnsRecord.MaxLocators"/> are published anyway. The excess is dropped, not buffered.
    /// </summary>
    public const int MaxEntries = 1024;

    /// <summary>At most this many links are kept (the same reasoning).</summary>
    public const int MaxLinks = 1024;

    private readonly Dictionary<(int Index, IPAddress Address), NetlinkEvent> _addresses = [];
    private readonly Dictionary<int, uint> _links = [];

    public int Count => _addresses.Count;

    /// <summary>Forgets everything (before a new dump).</summary>
    public void Clear()
    {
        _addresses.Clear();
        _links.Clear();
    }

    /// <summary>Applies one message; true when it changed the table.</summary>
    public bool Apply(NetlinkEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        switch (e.Kind)
        {
            case NetlinkEventKind.AddressAdded when e.Address is { } address:
                var key = (e.InterfaceIndex, Locator.Normalize(address));
                if (_addresses.Count >= MaxEntries && !_addresses.ContainsKey(key))
                {
                    return false;
                }

                _addresses[key] = e;
                return true;
            case NetlinkEventKind.AddressRemoved when e.Address is { } address:
                return _addresses.Remove((e.InterfaceIndex, Locator.Normalize(address)));
            case NetlinkEventKind.LinkChanged:
                if (_links.Count >= MaxLinks && !_links.ContainsKey(e.InterfaceIndex))
                {
                    return false;
                }

                _links[e.InterfaceIndex] = e.LinkFlags;
                return true;
            case NetlinkEventKind.LinkRemoved:
                _links.Remove(e.InterfaceIndex);
                // The kernel removes a vanished link's addresses without a message for each.
                return _addresses.Keys.Where(k => k.Index == e.InterfaceIndex).ToList().Count(_addresses.Remove) > 0;
            default:
                return false;
        }
    }

    /// <summary>The usable addresses, sorted as <see cref="AddressMonitor.ReadInterfaces"/> sorts them and capped the same way.</summary>
    public ImmutableArray<IPAddress> Usable(bool allowLoopback, bool allowLinkLocal)
    {
        var candidates = new List<(IPAddress Address, bool Deprecated)>();
        foreach (var ((index, address), e) in _addresses)
        {
            if ((e.Flags & NetlinkRouteReader.IfaFDadFailed) != 0
                || ((e.Flags & NetlinkRouteReader.IfaFTentative) != 0 && (e.Flags & NetlinkRouteReader.IfaFOptimistic) == 0)
                || (_links.TryGetValue(index, out var link) && (link & (NetlinkRouteReader.IffUp | NetlinkRouteReader.IffRunning)) != (NetlinkRouteReader.IffUp | NetlinkRouteReader.IffRunning))
                || !AddressMonitor.Accept(address, allowLoopback, allowLinkLocal))
            {
                continue;
            }

            candidates.Add((address, (e.Flags & NetlinkRouteReader.IfaFDeprecated) != 0 || e.PreferredLifetime == 0));
        }

        var usable = candidates
            .Where(c => !c.Deprecated || !candidates.Any(p => !p.Deprecated && p.Address.AddressFamily == c.Address.AddressFamily))
            .Select(c => c.Address);
        return AddressMonitor.Order(usable);
    }
}
