using System.Collections.Immutable;
using Mobility.Daemon.Forwarding;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Service;

public sealed partial class DaemonApi
{
    private readonly UdpForwards _udpForwards;

    /// <summary>The UDP forwards the daemon runs (<c>mob forward --udp</c>), by local port.</summary>
    public ImmutableArray<UdpForwardView> ListUdpForwards() => _udpForwards.List();

    /// <summary>
    /// Starts a UDP forward: datagrams to 127.0.0.1:<paramref name="localPort"/> (0: a free port) go
    /// to <paramref name="host"/>'s (a GUID or a GNS name, resolved now) UDP <paramref name="port"/>
    /// through the mobile transport, and the replies come back. <see cref="ArgumentException"/>: a bad
    /// port or host, a local port that cannot be bound, or too many forwards. Callers check the
    /// caller's right to do this first.
    /// </summary>
    public async Task<(UdpForwardView Started, ImmutableArray<UdpForwardView> All)> StartUdpForwardAsync(int localPort, string host, int port,
        CancellationToken cancellationToken = default)
    {
        var peer = await ResolvePeerAsync(host, nameof(host), cancellationToken).ConfigureAwait(false);
        var started = _udpForwards.Start(localPort, peer, port);
        return (started, ListUdpForwards());
    }

    /// <summary>Stops the UDP forward on <paramref name="localPort"/>; <see cref="ArgumentException"/> when there is none.</summary>
    public ImmutableArray<UdpForwardView> StopUdpForward(int localPort)
        => _udpForwards.Stop(localPort) ? ListUdpForwards() : throw new ArgumentException($"No UDP forward on port {localPort}.", nameof(localPort));

    /// <summary>A GUID, or a name resolved through the GNS to its GUID. <see cref="ArgumentException"/> (naming <paramref name="parameter"/>) when it is neither, or the GNS knows no such name.</summary>
    private async Task<HostGuid> ResolvePeerAsync(string? item, string parameter, CancellationToken cancellationToken)
    {
        if (HostGuid.TryParse(item, out var guid))
        {
            return guid;
        }

        var name = HostName.Normalize(item ?? "", out var error)
                   ?? throw new ArgumentException($"'{item}' is neither a GUID nor a name: {error}", parameter);
        var record = await _records.LookupNameAsync(name, cancellationToken).ConfigureAwait(false)
                     ?? throw new ArgumentException($"The GNS knows no host named '{name}'.", parameter);
        return record.Guid;
    }
}
