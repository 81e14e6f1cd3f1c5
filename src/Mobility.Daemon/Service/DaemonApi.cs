using System.Collections.Immutable;
using System.Net;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.Challenges;
using Mobility.Daemon.Control;
using Mobility.Daemon.Forwarding;
using Mobility.Daemon.Identity;
using Mobility.Daemon.Peers;
using Mobility.Daemon.Records;
using Mobility.Gns.Client;
using Mobility.Net.EndPoints;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using Mobility.Transport;

namespace Mobility.Daemon.Service;

/// <summary>The daemon's status (what `mob status` shows).</summary>
public sealed record DaemonStatus(
    HostGuid Guid,
    ImmutableArray<IPAddress> Addresses,
    bool AddressesFixed,
    bool GnsReachable,
    ulong RecordVersion,
    DateTimeOffset? PublishedAt,
    IPEndPoint? Observed,
    string? GnsError,
    int PeersVerified,
    ImmutableArray<IPEndPoint> Control,
    int TransportPort,
    DateTimeOffset StartedAt,
    ImmutableArray<MobileConnection> Connections,
    int ConnectionsTotal)
{
    /// <summary>The last NAT check (docs/nat.md, "NAT discovery").</summary>
    public Nat.NatState Nat { get; init; } = Daemon.Nat.NatState.NotYet;

    public PortMapping.PortMappingState PortMapping { get; init; } = Daemon.PortMapping.PortMappingState.NotYet;
}

/// <summary>The ports forwarded to 127.0.0.1 for peers (with their allow-lists), and the transport endpoint.</summary>
public sealed record ExposedView(ImmutableArray<ExposedPort> Entries, IPEndPoint Transport)
{
    public ImmutableArray<int> Ports => [.. Entries.Select(e => e.Port)];

    /// <summary>The exposed UDP ports (ascending) with their allow-lists.</summary>
    public ImmutableArray<ExposedPort> Udp { get; init; } = [];
}

/// <summary>The host's addresses and the last published record version.</summary>
public sealed record AddressesView(ImmutableArray<IPAddress> Addresses, bool Fixed, ulong RecordVersion);

/// <summary>
/// The one definition of the mobilityd API (the paper's get_self_guid, get_ip, get_guid_from_ip and
/// challenge, plus status and address control). The gRPC service, its HTTP/JSON transcoding, the
/// Unix socket and the state files are all views of this class. Arguments are validated here:
/// <see cref="ArgumentException"/> means a bad request.
/// </summary>
public sealed partial class DaemonApi
{
    private readonly MobilitydOptions _options;
    private readonly DaemonIdentity _identity;
    private readonly AddressMonitor _addresses;
    private readonly RecordPublisher _publisher;
    private readonly Challenger _challenger;
    private readonly ControlEndpoint _control;
    private readonly PeerBook _peers;
    private readonly WatchedRecords _records;
    private readonly TimeProvider _time;
    private readonly DateTimeOffset _startedAt;
    private readonly ExposedPorts _exposed;
    private readonly MobileForwarder _forwarder;
    private readonly AddressClaims _claims;
    private readonly Nat.NatDiscovery _nat;
    private readonly PortMapping.PortMapper? _portMapper;

    public DaemonApi(IOptions<MobilitydOptions> options, DaemonIdentity identity, AddressMonitor addresses, RecordPublisher publisher,
        Challenger challenger, ControlEndpoint control, PeerBook peers, WatchedRecords records, TimeProvider time, ExposedPorts exposed, MobileForwarder forwarder,
        AddressClaims claims, Nat.NatDiscovery nat, UdpForwards udpForwards, PortMapping.PortMapper? portMapper = null)
    {
        _nat = nat;
        _portMapper = portMapper;
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        _options = options.Value;
        _identity = identity;
        _addresses = addresses;
        _publisher = publisher;
        _challenger = challenger;
        _control = control;
        _peers = peers;
        _records = records;
        _time = time;
        _startedAt = time.GetUtcNow();
        _exposed = exposed;
        _forwarder = forwarder;
        _claims = claims;
        _udpForwards = udpForwards;
    }

    /// <summary>The exposed ports (ascending) and where the transport listens.</summary>
    public ExposedView ListExposed() => new(_exposed.Entries, _forwarder.LocalEndPoint) { Udp = _exposed.UdpEntries };

    /// <summary>Exposes a local port to every authenticated peer. Callers check the caller's right to do this first.</summary>
    public ExposedView Expose(int port)
    {
        _exposed.Expose(port);
        return ListExposed();
    }

    /// <summary>
    /// Exposes a local port to the peers in <paramref name="allow"/> (GUIDs, or names resolved through
    /// the GNS now and kept as GUIDs), or to every authenticated peer when it is empty; replaces the
    /// port's allow-list. <see cref="ArgumentException"/>: a bad port, GUID or name, or a name the GNS
    /// does not know; <see cref="GnsException"/>: the GNS cannot be asked. Callers check the caller's
    /// right to do this first.
    /// </summary>
    public Task<ExposedView> ExposeAsync(int port, IReadOnlyList<string> allow, CancellationToken cancellationToken = default)
        => ExposeAsync(port, allow, udp: false, cancellationToken);

    /// <summary>Like <see cref="ExposeAsync(int, IReadOnlyList{string}, CancellationToken)"/>; with <paramref name="udp"/>, the UDP port (a table apart).</summary>
    public Task<ExposedView> ExposeAsync(int port, IReadOnlyList<string> allow, bool udp, CancellationToken cancellationToken = default)
        => ExposeAsync(port, allow, udp, Inbound.InboundSource.Auto, cancellationToken);

    /// <summary>Like <see cref="ExposeAsync(int, IReadOnlyList{string}, bool, CancellationToken)"/>, with the <paramref name="source"/> address the application sees for a peer.</summary>
    public async Task<ExposedView> ExposeAsync(int port, IReadOnlyList<string> allow, bool udp, Inbound.InboundSource source,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(allow);
        if (allow.Count > ExposedPorts.MaxAllowed)
        {
            throw new ArgumentException($"At most {ExposedPorts.MaxAllowed} peers may be allowed on one port.", nameof(allow));
        }

        var guids = new List<HostGuid>(allow.Count);
        foreach (var item in allow)
        {
            guids.Add(await ResolvePeerAsync(item, nameof(allow), cancellationToken).ConfigureAwait(false));
        }

        _exposed.Expose(port, guids, udp, source);
        return ListExposed();
    }

    /// <summary>Stops exposing a port. Callers check the caller's right to do this first.</summary>
    public ExposedView Unexpose(int port, bool udp = false)
    {
        _exposed.Unexpose(port, udp);
        return ListExposed();
    }

    /// <summary>get_self_guid.</summary>
    public HostGuid GetSelfGuid() => _identity.Guid;

    /// <summary>
    /// get_ip: the GUID's (or name's) verified record, or null when the GNS has none. Throws
    /// <see cref="GnsException"/> when the GNS cannot be asked. The GUID is watched from then on
    /// (<see cref="WatchedRecords"/>), so a cached answer follows the peer's moves push by push.
    /// </summary>
    public async Task<GnsRecord?> GetIpAsync(string target, CancellationToken cancellationToken = default)
    {
        var record = HostGuid.TryParse(target, out var guid)
            ? await _records.LookupAsync(guid, fresh: false, cancellationToken).ConfigureAwait(false)
            : await _records.LookupNameAsync(
                HostName.Normalize(target, out var error) ?? throw new ArgumentException($"'{target}' is neither a GUID nor a name: {error}", nameof(target)),
                cancellationToken).ConfigureAwait(false);
        if (record is not null && record.Guid != _identity.Guid)
        {
            _peers.Learned(record, _time.GetUtcNow());
        }

        return record;
    }

    /// <summary>
    /// get_guid_from_ip: the GUIDs the GNS index lists for <paramref name="address"/>, each
    /// challenged there; only those that prove themselves are returned as verified.
    /// </summary>
    public Task<GuidsAtAddress> GetGuidFromIpAsync(IPAddress address, CancellationToken cancellationToken = default)
        => _claims.VerifyAsync(address, cancellationToken);

    /// <summary>challenge: does the holder of <paramref name="guid"/>'s key answer at <paramref name="target"/>?</summary>
    public Task<ChallengeVerdict> ChallengeAsync(IPEndPoint target, HostGuid guid, CancellationToken cancellationToken = default)
        => _challenger.ChallengeAsync(target, guid, cancellationToken);

    /// <summary>Parses "IP", "IP:PORT" or "[IPv6]:PORT"; the default control port when none is given.</summary>
    public IPEndPoint ParseChallengeTarget(string text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new ArgumentException("An address is required.", nameof(text));
        }

        if (IPAddress.TryParse(text, out var address) && !text.StartsWith('['))
        {
            return new IPEndPoint(Locator.Normalize(address), _challenger.DefaultPort);
        }

        if (EndPointParser.TryParse(text, out var endPoint))
        {
            return new IPEndPoint(Locator.Normalize(endPoint.Address), endPoint.Port);
        }

        throw new ArgumentException($"'{text}' is not an IP address or IP:PORT.", nameof(text));
    }

    /// <summary>Connections listed in the status at most (each carries up to 8 moves of up to 64 events).</summary>
    public const int MaxStatusConnections = 64;

    /// <param name="includeConnections">False: no connection list (the state file, rewritten on every change).</param>
    public DaemonStatus GetStatus(bool includeConnections = true)
    {
        var outgoing = _forwarder.OutgoingConnections;
        var incoming = _forwarder.IncomingConnections;
        var connections = includeConnections ? [.. outgoing.Concat(incoming).Take(MaxStatusConnections)] : ImmutableArray<MobileConnection>.Empty;
        var addresses = _addresses.Current;
        var published = _publisher.State;
        return new DaemonStatus(
            _identity.Guid,
            addresses.Addresses,
            addresses.Fixed,
            published.GnsReachable,
            published.Version,
            published.PublishedAt,
            published.Observed,
            published.Error,
            _peers.VerifiedCount,
            _control.LocalEndPoints,
            _options.TransportPort,
            _startedAt,
            connections,
            includeConnections ? outgoing.Count + incoming.Count : 0)
        {
            Nat = _nat.State,
            PortMapping = PortMapping,
        };
    }

    /// <summary>Checks the NAT now (<c>mob netcheck</c>): the reflexive address and the mapping and filtering per family.</summary>
    public Task<Nat.NatState> NetcheckAsync(CancellationToken cancellationToken = default) => _nat.CheckNowAsync(cancellationToken);

    /// <summary>The mappings held at the home gateway (PCP / NAT-PMP).</summary>
    public PortMapping.PortMappingState PortMapping => _portMapper?.State ?? Daemon.PortMapping.PortMappingState.NotYet;

    public AddressesView GetAddresses()
    {
        var current = _addresses.Current;
        return new AddressesView(current.Addresses, current.Fixed, _publisher.State.Version);
    }

    /// <summary>
    /// Fixes the address list (empty: follow the interfaces) and waits, up to
    /// <see cref="RecordOptions.SetAddressesWait"/>, for the new record to be stored in the GNS.
    /// Callers check the caller's right to do this first.
    /// </summary>
    public async Task<AddressesView> SetAddressesAsync(IReadOnlyList<IPAddress> addresses, CancellationToken cancellationToken = default)
    {
        var snapshot = _addresses.SetFixed(addresses);
        await _publisher.WaitPublishedAsync(snapshot.Generation, _options.Record.SetAddressesWait, cancellationToken).ConfigureAwait(false);
        return new AddressesView(snapshot.Addresses, snapshot.Fixed, _publisher.State.Version);
    }

    /// <summary>Parses a list of address texts; <see cref="ArgumentException"/> names the first bad one.</summary>
    public static IReadOnlyList<IPAddress> ParseAddresses(IEnumerable<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var list = new List<IPAddress>();
        foreach (var text in texts)
        {
            if (!IPAddress.TryParse(text, out var address))
            {
                throw new ArgumentException($"'{text}' is not an IP address.", nameof(texts));
            }

            list.Add(Locator.Normalize(address));
        }

        return list;
    }
}
