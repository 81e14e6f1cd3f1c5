using System.Net;
using Mobility.Gns.Claims;
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
    private readonly ClaimIndex _claims = new();
    private readonly ClaimLimits _limits;
    private readonly TimeProvider _time;
    private bool _disposed;

    /// <param name="limits">Bounds of the reverse index; the defaults when null.</param>
    /// <param name="time">The clock that dates and expires claims; the system clock when null.</param>
    public InMemoryGnsStore(ClaimLimits? limits = null, TimeProvider? time = null)
    {
        _limits = limits ?? new ClaimLimits();
        _limits.Validate();
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Entries in the reverse index, expired ones not yet purged included (for tests of its bounds).</summary>
    public int ClaimCount
    {
        get
        {
            lock (_gate)
            {
                return _claims.Count;
            }
        }
    }

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
        => PutAsync(record, requireExisting, null, cancellationToken);

    public ValueTask<StoreResult> PutAsync(GnsRecord record, bool requireExisting, IPAddress? source, CancellationToken cancellationToken = default)
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

            if (_records.TryGetValue(record.Guid, out var old) && old.Record is { Name: { } oldName })
            {
                _names.Remove(oldName);
            }

            _records[record.Guid] = new Entry(record.Version, record);
            if (record.Name is { } name)
            {
                _names[name] = record.Guid;
            }

            ClaimRules.Index(_claims, record, source, _time.GetUtcNow().ToUnixTimeMilliseconds(), _limits);
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

            if (_records[guid].Record!.Name is { } name)
            {
                _names.Remove(name);
            }

            _claims.RemoveClaimsOf(guid);
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
            var claims = _claims.Listed(Locator.Normalize(address), _time.GetUtcNow().ToUnixTimeMilliseconds());
            return ValueTask.FromResult(new ReverseResult(claims.Take(limit).Select(c => c.Guid).ToArray(), claims.Count > limit));
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
            _claims.Clear();
        }

        return ValueTask.CompletedTask;
    }

    private StoredVersion? StateOf(HostGuid guid)
        => _records.TryGetValue(guid, out var entry) ? new StoredVersion(entry.Version, entry.Record is not null) : null;

    private HostGuid? NameOwner(string name) => _names.TryGetValue(name, out var owner) ? owner : null;

    /// <summary>The highest version and, when live, the record (null for a tombstone).</summary>
    private readonly record struct Entry(ulong Version, GnsRecord? Record);

    /// <summary>The reverse index: claims by address, by GUID and by source. Used only under <see cref="_gate"/>.</summary>
    private sealed class ClaimIndex : IClaimIndex
    {
        private readonly Dictionary<IPAddress, Dictionary<HostGuid, AddressClaim>> _byAddress = [];
        private readonly Dictionary<HostGuid, List<AddressClaim>> _byGuid = [];
        private readonly Dictionary<IPAddress, HashSet<(IPAddress Address, HostGuid Guid)>> _bySource = [];

        public int Count { get; private set; }

        /// <summary>The unexpired claims of <paramref name="address"/> in rank order.</summary>
        public List<AddressClaim> Listed(IPAddress address, long now)
        {
            if (!_byAddress.TryGetValue(address, out var claims))
            {
                return [];
            }

            var listed = claims.Values.Where(c => c.Expires > now).ToList();
            listed.Sort(AddressClaim.CompareRank);
            return listed;
        }

        public IReadOnlyList<AddressClaim> ClaimsOf(HostGuid guid) => _byGuid.TryGetValue(guid, out var claims) ? claims : [];

        public void RemoveClaimsOf(HostGuid guid)
        {
            if (_byGuid.Remove(guid, out var claims))
            {
                foreach (var claim in claims)
                {
                    Unlink(claim);
                }
            }
        }

        public void PurgeExpiredAt(IPAddress address, long now)
        {
            if (_byAddress.TryGetValue(address, out var claims))
            {
                foreach (var claim in claims.Values.Where(c => c.Expires <= now).ToArray())
                {
                    Remove(claim);
                }
            }
        }

        public void PurgeExpiredFrom(IPAddress source, long now)
        {
            if (_bySource.TryGetValue(source, out var keys))
            {
                foreach (var (address, guid) in keys.ToArray())
                {
                    var claim = _byAddress[address][guid];
                    if (claim.Expires <= now)
                    {
                        Remove(claim);
                    }
                }
            }
        }

        public int CountAt(IPAddress address, bool attested)
            => _byAddress.TryGetValue(address, out var claims) ? claims.Values.Count(c => c.Attested == attested) : 0;

        public int CountFrom(IPAddress source) => _bySource.TryGetValue(source, out var keys) ? keys.Count : 0;

        public void Add(AddressClaim claim)
        {
            if (!_byAddress.TryGetValue(claim.Address, out var claims))
            {
                claims = [];
                _byAddress.Add(claim.Address, claims);
            }

            claims.Add(claim.Guid, claim);
            if (!_byGuid.TryGetValue(claim.Guid, out var ofGuid))
            {
                ofGuid = [];
                _byGuid.Add(claim.Guid, ofGuid);
            }

            ofGuid.Add(claim);
            if (claim.Source is { } source)
            {
                if (!_bySource.TryGetValue(source, out var keys))
                {
                    keys = [];
                    _bySource.Add(source, keys);
                }

                keys.Add((claim.Address, claim.Guid));
            }

            Count++;
        }

        public void Clear()
        {
            _byAddress.Clear();
            _byGuid.Clear();
            _bySource.Clear();
            Count = 0;
        }

        private void Remove(AddressClaim claim)
        {
            if (_byGuid.TryGetValue(claim.Guid, out var ofGuid))
            {
                ofGuid.Remove(claim);
                if (ofGuid.Count == 0)
                {
                    _byGuid.Remove(claim.Guid);
                }
            }

            Unlink(claim);
        }

        /// <summary>Removes <paramref name="claim"/> from the address and source maps (not from the GUID map).</summary>
        private void Unlink(AddressClaim claim)
        {
            if (_byAddress.TryGetValue(claim.Address, out var claims) && claims.Remove(claim.Guid))
            {
                Count--;
                if (claims.Count == 0)
                {
                    _byAddress.Remove(claim.Address);
                }
            }

            if (claim.Source is { } source && _bySource.TryGetValue(source, out var keys) && keys.Remove((claim.Address, claim.Guid)) && keys.Count == 0)
            {
                _bySource.Remove(source);
            }
        }
    }
}
