using System.Net;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Storage;

/// <summary>
/// Where the GNS keeps records. Implementations check versions, name ownership and indexes
/// atomically; callers have already verified signatures. A successful put or remove is durable
/// (per the store's documented durability) before its task completes.
/// </summary>
public interface IGnsStore : IAsyncDisposable
{
    /// <summary>
    /// Stores <paramref name="record"/> if its version is higher than any stored version of the GUID
    /// (live or tombstone) and its name, if any, is free or already the GUID's. Updates the name and
    /// reverse (address) indexes in the same transaction.
    /// </summary>
    /// <param name="requireExisting">When true, fail with <see cref="StoreStatus.NotFound"/> unless a live record exists.</param>
    ValueTask<StoreResult> PutAsync(GnsRecord record, bool requireExisting, CancellationToken cancellationToken = default);

    /// <summary>
    /// <see cref="PutAsync(GnsRecord, bool, CancellationToken)"/> for a record that arrived from
    /// <paramref name="source"/> (the datagram's source address, the gRPC peer): the reverse index
    /// ranks and bounds the record's address claims by it (<see cref="Claims.ClaimRules"/>). Null is an
    /// in-process caller. A store without claim rules (a test double) may ignore the source.
    /// </summary>
    ValueTask<StoreResult> PutAsync(GnsRecord record, bool requireExisting, IPAddress? source, CancellationToken cancellationToken = default)
        => PutAsync(record, requireExisting, cancellationToken);

    /// <summary>
    /// Replaces the GUID's live record with a tombstone of <paramref name="version"/> if that version
    /// is higher than the stored one; frees the name and the index entries.
    /// </summary>
    ValueTask<StoreResult> RemoveAsync(HostGuid guid, ulong version, CancellationToken cancellationToken = default);

    /// <summary>The live record, or null (absent or removed).</summary>
    ValueTask<GnsRecord?> GetAsync(HostGuid guid, CancellationToken cancellationToken = default);

    /// <summary>The live record bound to the canonical (lowercase) <paramref name="name"/>, or null.</summary>
    ValueTask<GnsRecord?> GetByNameAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>
    /// Up to <paramref name="limit"/> GUIDs whose live records carry <paramref name="address"/> (any port,
    /// any kind), from an index, ranked by <see cref="Claims.AddressClaim.CompareRank"/>: attested claims
    /// first, each kind in GUID order. Claims over the limits of <see cref="Claims.ClaimLimits"/> are not indexed,
    /// and expired unattested claims are not listed.
    /// </summary>
    ValueTask<ReverseResult> ReverseAsync(IPAddress address, int limit, CancellationToken cancellationToken = default);

    /// <summary>The highest version ever stored for the GUID (live or tombstone), or null if never seen.</summary>
    ValueTask<ulong?> GetVersionAsync(HostGuid guid, CancellationToken cancellationToken = default);
}

public enum StoreStatus
{
    Stored,
    /// <summary>The version is not higher than the stored version (replay or rollback).</summary>
    Stale,
    /// <summary>The name belongs to another GUID.</summary>
    NameTaken,
    /// <summary>No live record (update that requires one, or remove of an unknown GUID).</summary>
    NotFound,
}

/// <param name="Status">What happened.</param>
/// <param name="StoredVersion">The version stored for the GUID after the call (0 when there is none).</param>
public readonly record struct StoreResult(StoreStatus Status, ulong StoredVersion);

/// <param name="Guids">GUIDs in rank order: attested claims first, each kind in ascending GUID order.</param>
/// <param name="Truncated">More GUIDs carry the address than <c>limit</c> allowed.</param>
public sealed record ReverseResult(IReadOnlyList<HostGuid> Guids, bool Truncated);
