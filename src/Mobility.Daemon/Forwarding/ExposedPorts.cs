using System.Collections.Immutable;
using System.Globalization;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Inbound;
using Mobility.Protocol.Identity;

namespace Mobility.Daemon.Forwarding;

/// <summary>An exposed port and who may open it: <see cref="Allowed"/> GUIDs only, or every authenticated peer when empty.</summary>
public sealed record ExposedPort(int Port, ImmutableSortedSet<HostGuid> Allowed)
{
    /// <summary>The source address the application sees for a peer's connection (docs/transparent.md, "Inbound").</summary>
    public InboundSource Source { get; init; }

    public bool OpenToAll => Allowed.IsEmpty;

    public bool Allows(HostGuid peer) => Allowed.IsEmpty || Allowed.Contains(peer);
}

/// <summary>
/// The local ports the transport listener forwards to (on 127.0.0.1), each with an optional
/// allow-list of GUIDs. Nothing unless exposed. The forwarder asks <see cref="Allows"/> after the
/// handshake proved the peer's GUID; a port that is not exposed and a port the peer is not allowed
/// to open get the same answer.
/// </summary>
public sealed class ExposedPorts
{
    /// <summary>Most GUIDs on one port's allow-list: an API request cannot grow the table without bound.</summary>
    public const int MaxAllowed = 1024;

    private readonly Lock _gate = new();
    private ImmutableSortedDictionary<int, ExposedPort> _ports;
    private ImmutableSortedDictionary<int, ExposedPort> _udpPorts = ImmutableSortedDictionary<int, ExposedPort>.Empty;

    public ExposedPorts(IOptions<MobilitydOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var forwarding = options.Value.Forwarding;
        var builder = ImmutableSortedDictionary.CreateBuilder<int, ExposedPort>();
        foreach (var port in forwarding.Exposed)
        {
            var allowed = forwarding.Allow.TryGetValue(port.ToString(CultureInfo.InvariantCulture), out var guids)
                ? guids.Select(g => HostGuid.Parse(g, CultureInfo.InvariantCulture))
                : [];
            builder[port] = Entry(port, allowed);
        }

        _ports = builder.ToImmutable();
    }

    /// <summary>The exposed port numbers, ascending.</summary>
    public ImmutableSortedSet<int> Current => [.. Snapshot.Keys];

    /// <summary>Every exposed port with its allow-list, ascending.</summary>
    public ImmutableArray<ExposedPort> Entries => [.. Snapshot.Values];

    private ImmutableSortedDictionary<int, ExposedPort> Snapshot
    {
        get
        {
            lock (_gate)
            {
                return _ports;
            }
        }
    }

    /// <summary>Every exposed UDP port with its allow-list, ascending (a table apart from the TCP ports').</summary>
    public ImmutableArray<ExposedPort> UdpEntries
    {
        get
        {
            lock (_gate)
            {
                return [.. _udpPorts.Values];
            }
        }
    }

    public bool Contains(int port) => Snapshot.ContainsKey(port);

    /// <summary>May <paramref name="peer"/> (a GUID the handshake proved) open <paramref name="port"/> (TCP, or with <paramref name="udp"/> the UDP port)?</summary>
    public bool Allows(int port, HostGuid peer, bool udp = false) => Find(port, peer, udp) is not null;

    /// <summary>The exposed <paramref name="port"/> (TCP, or with <paramref name="udp"/> the UDP port) when <paramref name="peer"/> may open it; null otherwise.</summary>
    public ExposedPort? Find(int port, HostGuid peer, bool udp = false)
    {
        ImmutableSortedDictionary<int, ExposedPort> table;
        lock (_gate)
        {
            table = udp ? _udpPorts : _ports;
        }

        return table.TryGetValue(port, out var entry) && entry.Allows(peer) ? entry : null;
    }

    /// <summary>
    /// Exposes <paramref name="port"/> (TCP, or with <paramref name="udp"/> the UDP port) to
    /// <paramref name="allowed"/> GUIDs only, or to every authenticated peer when none is given.
    /// Exposing a port again replaces its allow-list and its <paramref name="source"/>.
    /// </summary>
    public ExposedPort Expose(int port, IEnumerable<HostGuid>? allowed = null, bool udp = false, InboundSource source = InboundSource.Auto)
    {
        Check(port);
        var entry = Entry(port, allowed ?? []) with { Source = source };
        lock (_gate)
        {
            ref var table = ref udp ? ref _udpPorts : ref _ports;
            table = table.SetItem(port, entry);
        }

        return entry;
    }

    /// <summary>Stops exposing <paramref name="port"/> (TCP, or with <paramref name="udp"/> the UDP port); returns the ports of that kind still exposed.</summary>
    public ImmutableSortedSet<int> Unexpose(int port, bool udp = false)
    {
        Check(port);
        lock (_gate)
        {
            ref var table = ref udp ? ref _udpPorts : ref _ports;
            table = table.Remove(port);
            return [.. table.Keys];
        }
    }

    private static ExposedPort Entry(int port, IEnumerable<HostGuid> allowed)
    {
        var set = allowed.ToImmutableSortedSet();
        if (set.Contains(HostGuid.Empty))
        {
            throw new ArgumentException("The empty GUID cannot be allowed.", nameof(allowed));
        }

        if (set.Count > MaxAllowed)
        {
            throw new ArgumentException($"At most {MaxAllowed} GUIDs may be allowed on one port.", nameof(allowed));
        }

        return new ExposedPort(port, set);
    }

    private static void Check(int port)
    {
        if (port is < 1 or > ushort.MaxValue)
        {
            throw new ArgumentException($"{port} is not a port (1 to 65535).", nameof(port));
        }
    }
}
