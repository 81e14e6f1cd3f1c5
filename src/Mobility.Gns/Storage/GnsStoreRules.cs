using System.Net;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Storage;

/// <summary>What a store holds for one GUID: the highest version seen and whether it is live or a tombstone.</summary>
internal readonly record struct StoredVersion(ulong Version, bool Live);

/// <summary>
/// The version, existence and name rules of <see cref="IGnsStore"/>, shared by every store so that
/// the in-memory and SQLite stores cannot drift apart. Each store supplies its own state lookups and
/// applies the result inside its own atomic section (lock or transaction).
/// </summary>
internal static class GnsStoreRules
{
    /// <summary>
    /// The failure for putting <paramref name="record"/> over <paramref name="existing"/>, or null when
    /// the version and existence rules allow it (the name must still be checked with <see cref="CheckName"/>).
    /// </summary>
    public static StoreResult? CheckPut(StoredVersion? existing, GnsRecord record, bool requireExisting)
    {
        if (requireExisting && existing is not { Live: true })
        {
            return new StoreResult(StoreStatus.NotFound, existing?.Version ?? 0);
        }

        // Versions are compared as unsigned 64-bit numbers everywhere; a tombstone counts like a live record,
        // so a record older than a removal cannot bring the GUID back.
        if (existing is { } current && record.Version <= current.Version)
        {
            return new StoreResult(StoreStatus.Stale, current.Version);
        }

        return null;
    }

    /// <summary>NameTaken when <paramref name="nameOwner"/> (the GUID that holds the record's name) is another GUID; otherwise null.</summary>
    public static StoreResult? CheckName(StoredVersion? existing, GnsRecord record, Protocol.Identity.HostGuid? nameOwner)
        => nameOwner is { } owner && owner != record.Guid
            ? new StoreResult(StoreStatus.NameTaken, existing?.Version ?? 0)
            : null;

    /// <summary>
    /// The failure for removing at <paramref name="version"/>, or null when the removal may be applied.
    /// A removal needs a live record (its signature is checked against the live record's key); an equal
    /// or lower version is a replay.
    /// </summary>
    public static StoreResult? CheckRemove(StoredVersion? existing, ulong version)
    {
        if (existing is not { } current)
        {
            return new StoreResult(StoreStatus.NotFound, 0);
        }

        if (version <= current.Version)
        {
            return new StoreResult(StoreStatus.Stale, current.Version);
        }

        return current.Live ? null : new StoreResult(StoreStatus.NotFound, current.Version);
    }

    /// <summary>The distinct, normalized addresses of a record's locators: the keys of the reverse index.</summary>
    public static IEnumerable<IPAddress> IndexedAddresses(GnsRecord record)
        => record.Locators.Select(l => Locator.Normalize(l.Address)).Distinct();

    /// <summary>The canonical (lowercase) form of a queried name, or null when no record can carry it.</summary>
    public static string? CanonicalName(string name) => HostName.Normalize(name, out _);

    public static void ValidateReverseLimit(int limit)
        => ArgumentOutOfRangeException.ThrowIfNegative(limit);
}
