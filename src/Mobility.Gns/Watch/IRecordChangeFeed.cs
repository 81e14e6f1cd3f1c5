using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Watch;

/// <summary>
/// A GUID's new state after a stored update or removal. <see cref="Version"/> orders the states of
/// one GUID (record versions and tombstone versions share one sequence).
/// </summary>
/// <param name="Record">The live record, or null when the GUID has none (removed or never registered).</param>
public sealed record RecordChange(HostGuid Guid, GnsRecord? Record, ulong Version)
{
    public bool Removed => Record is null;
}

/// <summary>
/// Carries record changes from the servers that store them to the watch hubs that deliver them. The
/// local feed connects one process; a pub/sub feed (Redis) will connect several GNS processes that
/// share a store.
/// </summary>
public interface IRecordChangeFeed
{
    /// <summary>Announces a change that has been stored (durably).</summary>
    ValueTask PublishAsync(RecordChange change, CancellationToken cancellationToken = default);

    /// <summary>
    /// Calls <paramref name="handler"/> for every change announced from now on, until the returned
    /// object is disposed. The handler must not block: it is called on the publisher's thread.
    /// </summary>
    IDisposable Subscribe(Action<RecordChange> handler);
}
