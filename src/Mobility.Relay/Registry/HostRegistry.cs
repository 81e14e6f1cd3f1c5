using System.Buffers.Binary;
using Microsoft.AspNetCore.Connections;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Relay;

namespace Mobility.Relay.Registry;

/// <summary>
/// The registered hosts (GUID -> control session) and the dials waiting for their host's data
/// connection (splice id -> pending splice), both bounded by <see cref="RelayLimits"/>. Nothing is
/// kept on disk: a relay that restarts starts empty and hosts register again.
/// </summary>
internal sealed class HostRegistry(RelayLimits limits, RelayCounters counters)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<HostGuid, HostSession> _hosts = [];
    private readonly Dictionary<UInt128, PendingSplice> _pending = [];

    /// <summary>
    /// Registers <paramref name="session"/>; a session already registered for the GUID (the same host
    /// after a move, whose old connection the relay has not seen die) is returned to be closed.
    /// False when the relay holds <see cref="RelayLimits.MaxHosts"/> other hosts.
    /// </summary>
    public bool TryRegister(HostSession session, out HostSession? replaced)
    {
        lock (_gate)
        {
            _hosts.TryGetValue(session.Guid, out replaced);
            if (replaced is null && _hosts.Count >= limits.MaxHosts)
            {
                return false;
            }

            _hosts[session.Guid] = session;
            Volatile.Write(ref counters.HostsGauge, _hosts.Count);
            return true;
        }
    }

    /// <summary>Removes <paramref name="session"/> if it is still the GUID's registration.</summary>
    public void Unregister(HostSession session)
    {
        lock (_gate)
        {
            if (_hosts.TryGetValue(session.Guid, out var current) && ReferenceEquals(current, session))
            {
                _hosts.Remove(session.Guid);
            }

            Volatile.Write(ref counters.HostsGauge, _hosts.Count);
        }
    }

    public HostSession? Find(HostGuid guid)
    {
        lock (_gate)
        {
            return _hosts.GetValueOrDefault(guid);
        }
    }

    /// <summary>A new pending splice for a dial to <paramref name="host"/>, with a fresh random id; null when <see cref="RelayLimits.MaxPendingSplices"/> wait.</summary>
    public PendingSplice? AddPending(HostGuid host)
    {
        lock (_gate)
        {
            if (_pending.Count >= limits.MaxPendingSplices)
            {
                return null;
            }

            PendingSplice splice;
            do
            {
                splice = new PendingSplice(host, RelayMessage.NewRandom(RelayMessage.SpliceIdSize));
            }
            while (!_pending.TryAdd(Key(splice.Id), splice));

            Volatile.Write(ref counters.PendingGauge, _pending.Count);
            return splice;
        }
    }

    /// <summary>Takes the pending splice with <paramref name="id"/> if it was made for <paramref name="host"/>: a splice id is good once.</summary>
    public PendingSplice? TakePending(HostGuid host, ReadOnlySpan<byte> id)
    {
        lock (_gate)
        {
            var key = Key(id);
            if (!_pending.TryGetValue(key, out var splice) || splice.Host != host)
            {
                return null;
            }

            _pending.Remove(key);
            Volatile.Write(ref counters.PendingGauge, _pending.Count);
            return splice;
        }
    }

    /// <summary>Forgets <paramref name="splice"/> (its dial gave up).</summary>
    public void RemovePending(PendingSplice splice)
    {
        lock (_gate)
        {
            if (_pending.TryGetValue(Key(splice.Id), out var current) && ReferenceEquals(current, splice))
            {
                _pending.Remove(Key(splice.Id));
            }

            Volatile.Write(ref counters.PendingGauge, _pending.Count);
        }
    }

    private static UInt128 Key(ReadOnlySpan<byte> id) => BinaryPrimitives.ReadUInt128BigEndian(id);
}

/// <summary>
/// A dial waiting for its host: the dialler's handler waits on <see cref="Acceptor"/>; the host's
/// Accept handler completes it with its connection and then waits on <see cref="Done"/>, which the
/// dialler's handler completes when the splice ends (Kestrel closes a connection when its handler returns).
/// </summary>
internal sealed class PendingSplice(HostGuid host, byte[] id)
{
    public HostGuid Host { get; } = host;

    public byte[] Id { get; } = id;

    public TaskCompletionSource<ConnectionContext> Acceptor { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
