using System.Collections.Immutable;
using System.Net;
using Microsoft.Extensions.Options;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Peers;

/// <summary>A peer this daemon knows: its addresses from the GNS and those where it proved itself.</summary>
public sealed record KnownPeer(HostGuid Guid, string? Name, ImmutableArray<IPAddress> Addresses, ImmutableArray<IPAddress> VerifiedAt, DateTimeOffset LastSeen);

/// <summary>
/// Peers learnt from lookups (verified GNS records) and challenges, for the hosts file and the
/// status. Bounded by <see cref="MobilitydOptions.MaxKnownPeers"/> (the least recently seen go first).
/// </summary>
public sealed class PeerBook
{
    private readonly Lock _gate = new();
    private readonly Dictionary<HostGuid, KnownPeer> _peers = [];
    private readonly int _max;
    private long _version;

    public PeerBook(IOptions<MobilitydOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _max = options.Value.MaxKnownPeers;
    }

    /// <summary>Raised after any change (handlers must be quick).</summary>
    public event Action? Changed;

    /// <summary>Increases with every change.</summary>
    public long Version => Interlocked.Read(ref _version);

    /// <summary>Peers that proved themselves at one address at least.</summary>
    public int VerifiedCount
    {
        get
        {
            lock (_gate)
            {
                return _peers.Values.Count(p => !p.VerifiedAt.IsEmpty);
            }
        }
    }

    public IReadOnlyList<KnownPeer> Snapshot()
    {
        lock (_gate)
        {
            return [.. _peers.Values.OrderBy(p => p.Guid)];
        }
    }

    /// <summary>Records the addresses of a verified GNS record.</summary>
    public void Learned(GnsRecord record, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(record);
        var addresses = record.Locators.Select(l => Locator.Normalize(l.Address)).Distinct().ToImmutableArray();
        Update(record.Guid, existing => existing with
        {
            Name = record.Name ?? existing.Name,
            Addresses = addresses,
            // A proof at an address the host has left is no longer worth showing.
            VerifiedAt = [.. existing.VerifiedAt.Where(addresses.Contains)],
            LastSeen = now,
        });
    }

    /// <summary>
    /// A newer record of a peer already in the book (a GNS watch push): its addresses replace the old
    /// ones, as <see cref="Learned"/> does. A GUID not in the book is not added.
    /// </summary>
    public void Refreshed(GnsRecord record, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(record);
        lock (_gate)
        {
            if (!_peers.ContainsKey(record.Guid))
            {
                return;
            }
        }

        Learned(record, now);
    }

    /// <summary>
    /// The GNS has no record of a peer in the book any more (removed, or lost by a GNS restart): its
    /// addresses are dropped, so the hosts file lists it no more, but it stays known, so a record it
    /// publishes later is followed again by <see cref="Refreshed"/>.
    /// </summary>
    public void Unpublished(HostGuid guid, DateTimeOffset now)
    {
        lock (_gate)
        {
            if (!_peers.ContainsKey(guid))
            {
                return;
            }
        }

        Update(guid, existing => existing with { Addresses = [], VerifiedAt = [], LastSeen = now });
    }

    /// <summary>Records that <paramref name="guid"/> proved itself at <paramref name="address"/>.</summary>
    public void Verified(HostGuid guid, IPAddress address, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(address);
        var normalized = Locator.Normalize(address);
        Update(guid, existing => existing with
        {
            Addresses = existing.Addresses.Contains(normalized) ? existing.Addresses : existing.Addresses.Add(normalized),
            VerifiedAt = existing.VerifiedAt.Contains(normalized) ? existing.VerifiedAt : existing.VerifiedAt.Add(normalized),
            LastSeen = now,
        });
    }

    private void Update(HostGuid guid, Func<KnownPeer, KnownPeer> change)
    {
        lock (_gate)
        {
            var existing = _peers.TryGetValue(guid, out var peer) ? peer : new KnownPeer(guid, null, [], [], DateTimeOffset.MinValue);
            var updated = change(existing);
            if (peer is not null && Same(peer, updated))
            {
                _peers[guid] = updated;
                return;
            }

            _peers[guid] = updated;
            if (_peers.Count > _max)
            {
                _peers.Remove(_peers.Values.MinBy(p => p.LastSeen)!.Guid);
            }
        }

        Interlocked.Increment(ref _version);
        Changed?.Invoke();
    }

    private static bool Same(KnownPeer a, KnownPeer b)
        => a.Name == b.Name && a.Addresses.SequenceEqual(b.Addresses) && a.VerifiedAt.SequenceEqual(b.VerifiedAt);
}
