using System.Net;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Storage;

/// <summary>
/// A non-durable <see cref="IGnsStore"/> for tests and <c>gns serve --memory</c>: the same rules as
/// <see cref="SqliteGnsStore"/> (shared through <see cref="GnsStoreRules"/>), kept in dictionaries under
/// one lock. Everything is lost when the process ends.
/// </summary>
public sealed class InMemoryGnsStore : IGnsStore
{
    private readonly Lock _gate = new();
    private readonly Dictionary<HostGuid, Entry> _records = [];
    private readonly Dictionary<string, HostGuid> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<IPAddress, SortedSet<HostGuid>> _addresses = [];
    private bool _disposed;

    /// <summary>Live records and tombstones held (for diagnostics).</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _records.Count;
            }
        }
    }

    public ValueTask<StoreResult> PutAsync(GnsRecord record, bool requireExisting, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var existing = StateOf(record.Guid);
            var failure = GnsStoreRules.CheckPut(existing, record, requireExisting)
                ?? GnsStoreRules.CheckName(existing, record, record.Name is null ? null : NameOwner(record.Name));
            if (failure is { } refused)
            {
                return ValueTask.FromResult(refused);
            }

            if (_records.TryGetValue(record.Guid, out var old) && old.Record is { } previous)
            {
                Unindex(previous);
            }

            _records[record.Guid] = new Entry(record.Version, record);
            if (record.Name is { } name)
            {
                _names[name] = record.Guid;
            }

            foreach (var address in GnsStoreRules.IndexedAddresses(record))
            {
                if (!_addresses.TryGetValue(address, out var guids))
                {
                    guids = [];
                    _addresses.Add(address, guids);
                }

                guids.Add(record.Guid);
            }

            return ValueTask.FromResult(new StoreResult(StoreStatus.Stored, record.Version));
        }
    }

    public ValueTask<StoreResult> RemoveAsync(HostGuid guid, ulong version, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (GnsStoreRules.CheckRemove(StateOf(guid), version) is { } refused)
            {
                return ValueTask.FromResult(refused);
            }

            Unindex(_records[guid].Record!);
            _records[guid] = new Entry(version, null);
            return ValueTask.FromResult(new StoreResult(StoreStatus.Stored, version));
        }
    }

    public ValueTask<GnsRecord?> GetAsync(HostGuid guid, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return ValueTask.FromResult(_records.TryGetValue(guid, out var entry) ? entry.Record : null);
        }
    }

    public ValueTask<GnsRecord?> GetByNameAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return ValueTask.FromResult(
                GnsStoreRules.CanonicalName(name) is { } canonical && NameOwner(canonical) is { } owner ? _records[owner].Record : null);
        }
    }

    public ValueTask<ReverseResult> ReverseAsync(IPAddress address, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        GnsStoreRules.ValidateReverseLimit(limit);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_addresses.TryGetValue(Locator.Normalize(address), out var guids))
            {
                return ValueTask.FromResult(new ReverseResult([], false));
            }

            // SortedSet enumerates in HostGuid order, which is the byte order SQLite uses.
            return ValueTask.FromResult(new ReverseResult(guids.Take(limit).ToArray(), guids.Count > limit));
        }
    }

    public ValueTask<ulong?> GetVersionAsync(HostGuid guid, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return ValueTask.FromResult(_records.TryGetValue(guid, out var entry) ? entry.Version : (ulong?)null);
        }
    }

    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposed = true;
            _records.Clear();
            _names.Clear();
            _addresses.Clear();
        }

        return ValueTask.CompletedTask;
    }

    private StoredVersion? StateOf(HostGuid guid)
        => _records.TryGetValue(guid, out var entry) ? new StoredVersion(entry.Version, entry.Record is not null) : null;

    private HostGuid? NameOwner(string name) => _names.TryGetValue(name, out var owner) ? owner : null;

    private void Unindex(GnsRecord record)
    {
        if (record.Name is { } name)
        {
            _names.Remove(name);
        }

        foreach (var address in GnsStoreRules.IndexedAddresses(record))
        {
            if (_addresses.TryGetValue(address, out var guids) && guids.Remove(record.Guid) && guids.Count == 0)
            {
                _addresses.Remove(address);
            }
        }
    }

    /// <summary>The highest version and, when live, the record (null for a tombstone).</summary>
    private readonly record struct Entry(ulong Version, GnsRecord? Record);
}
