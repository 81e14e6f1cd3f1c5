using System.Net;
using Mobility.Daemon.Peers;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using Mobility.Transport;
using Mobility.Transport.Relay;

namespace Mobility.Daemon.Forwarding;

/// <summary>
/// Finds peers' transport endpoints in the GNS: <see cref="LocateAsync"/> looks the record up (fresh,
/// not from the cache: it is asked when a path was lost) and returns its Host locators; <see cref="LocateForConnectAsync"/>
/// (a new connection) uses the cached record while its watch keeps it current. Lookups go
/// through <see cref="WatchedRecords"/>, which watches every GUID looked up (bounded by
/// <see cref="ForwardingOptions.MaxWatchedPeers"/>); its pushes of newer records raise <see cref="EndpointsChanged"/>.
/// </summary>
public sealed class GnsPeerLocator : IPeerLocator, IAsyncDisposable
{
    private readonly WatchedRecords _records;

    public GnsPeerLocator(WatchedRecords records)
    {
        ArgumentNullException.ThrowIfNull(records);
        _records = records;
        _records.Changed += OnChanged;
    }

    public event EventHandler<PeerEndpointsChangedEventArgs>? EndpointsChanged;

    public async ValueTask<IReadOnlyList<IPEndPoint>> LocateAsync(HostGuid guid, CancellationToken cancellationToken)
    {
        var record = await _records.LookupAsync(guid, fresh: true, cancellationToken).ConfigureAwait(false);
        return record is null ? [] : Endpoints(record);
    }

    /// <summary>
    /// A new connection's endpoints: from the cached record while a live watch keeps it current
    /// (<see cref="WatchedRecords.IsCurrent"/>: no GNS round trip per connect), else a fresh lookup as <see cref="LocateAsync"/>.
    /// The connector falls back to <see cref="LocateAsync"/> when the cached endpoints fail or stay silent.
    /// </summary>
    public async ValueTask<LocatedEndpoints> LocateForConnectAsync(HostGuid guid, CancellationToken cancellationToken)
    {
        var (record, cached) = await _records.LookupForConnectAsync(guid, cancellationToken).ConfigureAwait(false);
        return new LocatedEndpoints(record is null ? [] : Endpoints(record), cached);
    }

    /// <summary>
    /// The host's addresses changed (the forwarder's move loop calls this right after telling the
    /// connections): the GNS watches ran over a connection from the old address, which is dead without
    /// anyone noticing, so they re-open at once from the new one, and every watched peer is looked up
    /// once, so a change published while the watch was down is not missed. Only records newer than the
    /// last one seen raise <see cref="EndpointsChanged"/>. Returns at once; the lookups run in the background.
    /// </summary>
    public void NotifyLocalAddressChanged() => _records.NotifyLocalAddressChanged();

    /// <summary>The host's addresses are changing: see <see cref="WatchedRecords.DistrustCached"/>.</summary>
    public void DistrustCached() => _records.DistrustCached();

    /// <summary>
    /// The transport endpoints of a record: its Host locators, then Observed ones (port-preserving NAT), then
    /// its Relay locators as <see cref="RelayEndPoint"/>s (dialled through the relay by the connector's flow factory).
    /// </summary>
    public static IReadOnlyList<IPEndPoint> Endpoints(GnsRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return [.. record.Locators.Where(l => l.Kind == LocatorKind.Host).Concat(record.Locators.Where(l => l.Kind == LocatorKind.Observed))
            .Select(l => new IPEndPoint(l.Address, l.Port))
            .Concat(record.Locators.Where(l => l.Kind == LocatorKind.Relay).Select(l => new RelayEndPoint(l.Address, l.Port, record.Guid)))];
    }

    /// <summary>Stops raising <see cref="EndpointsChanged"/>; the watches belong to <see cref="WatchedRecords"/>.</summary>
    public ValueTask DisposeAsync()
    {
        _records.Changed -= OnChanged;
        return ValueTask.CompletedTask;
    }

    private void OnChanged(object? sender, PeerRecordChangedEventArgs e)
    {
        // A lost record tells a connection nothing new: its paths fail over on their own.
        if (e.Record is { } record)
        {
            EndpointsChanged?.Invoke(this, new PeerEndpointsChangedEventArgs(e.Guid, Endpoints(record)));
        }
    }
}
