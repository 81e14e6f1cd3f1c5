using System.Collections.Concurrent;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Storage;

/// <summary>
/// What the store knows about one GUID: the highest version stored and the live record, or null for a
/// tombstone (or a live row whose bytes are corrupt).
/// </summary>
internal sealed class CachedEntry(ulong version, GnsRecord? record)
{
    public ulong Version { get; } = version;

    public GnsRecord? Record { get; } = record;

    /// <summary>Set on every hit; the clock hand clears it and spares the entry once (second chance).</summary>
    public bool Referenced { get; set; }
}

/// <summary>
/// A bounded read-through cache of <see cref="CachedEntry"/> by GUID. Lookups take no lock. The writer
/// loop stores every committed change (<see cref="Apply"/>); readers fill misses from SQLite
/// (<see cref="TryFill"/>). A fill is refused when a commit touched the same stripe of GUIDs since the
/// reader started, so a slow reader can never put back a version older than a committed one, even if
/// the newer entry was evicted in between. Eviction is CLOCK (second chance) over insertion order.
/// </summary>
internal sealed class RecordCache
{
    /// <summary>Stripes of commit counters; more stripes make a refused fill (a harmless extra miss) rarer.</summary>
    private const int StripeCount = 256;

    private readonly int _capacity;
    private readonly ConcurrentDictionary<HostGuid, CachedEntry> _entries = new();
    private readonly Queue<HostGuid> _clock = new();
    private readonly long[] _stripeCommits = new long[StripeCount];
    private readonly Lock _gate = new();

    public RecordCache(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        _capacity = capacity;
    }

    public int Count => _entries.Count;

    public bool TryGet(HostGuid guid, out CachedEntry entry)
    {
        if (_entries.TryGetValue(guid, out entry!))
        {
            entry.Referenced = true;
            return true;
        }

        return false;
    }

    /// <summary>Call before reading <paramref name="guid"/> from SQLite; pass the stamp to <see cref="TryFill"/>.</summary>
    public long Stamp(HostGuid guid) => Volatile.Read(ref _stripeCommits[Stripe(guid)]);

    /// <summary>Adds what a reader loaded, unless a commit touched the GUID's stripe since <paramref name="stamp"/>.</summary>
    public void TryFill(HostGuid guid, CachedEntry entry, long stamp)
    {
        if (_capacity == 0)
        {
            return;
        }

        lock (_gate)
        {
            if (_stripeCommits[Stripe(guid)] == stamp && !_entries.ContainsKey(guid))
            {
                Insert(guid, entry);
            }
        }
    }

    /// <summary>Stores committed state; called by the single writer after each commit, before completing the writes.</summary>
    public void Apply(IEnumerable<KeyValuePair<HostGuid, CachedEntry>> committed)
    {
        lock (_gate)
        {
            foreach (var (guid, entry) in committed)
            {
                _stripeCommits[Stripe(guid)]++;
                if (_capacity == 0)
                {
                    continue;
                }

                if (_entries.TryGetValue(guid, out var current))
                {
                    // Versions only grow, so the committed entry replaces whatever a reader filled in.
                    entry.Referenced = current.Referenced;
                    _entries[guid] = entry;
                }
                else
                {
                    Insert(guid, entry);
                }
            }
        }
    }

    private void Insert(HostGuid guid, CachedEntry entry)
    {
        while (_entries.Count >= _capacity && _clock.TryDequeue(out var candidate))
        {
            if (_entries.TryGetValue(candidate, out var victim) && victim.Referenced)
            {
                victim.Referenced = false;
                _clock.Enqueue(candidate);
            }
            else
            {
                _entries.TryRemove(candidate, out _);
            }
        }

        _entries[guid] = entry;
        _clock.Enqueue(guid);
    }

    private static int Stripe(HostGuid guid) => (int)((uint)guid.GetHashCode() % StripeCount);
}
