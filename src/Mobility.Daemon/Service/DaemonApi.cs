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
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

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
    DateTimeOffset StartedAt);

/// <summary>A GNS claim that was not verified at the address, and why.</summary>
public sealed record RefusedClaim(HostGuid Guid, string Reason);

/// <summary>The answer of get_guid_from_ip: only <see cref="Verified"/> GUIDs are to be trusted.</summary>
public sealed record GuidsAtAddress(IPAddress Address, ImmutableArray<HostGuid> Verified, ImmutableArray<RefusedClaim> Refused, bool Truncated);

/// <summary>The ports forwarded to 127.0.0.1 for peers, and the transport endpoint.</summary>
public sealed record ExposedView(ImmutableArray<int> Ports, IPEndPoint Transport);

/// <summary>The host's addresses and the last published record version.</summary>
public sealed record AddressesView(ImmutableArray<IPAddress> Addresses, bool Fixed, ulong RecordVersion);

/// <summary>
/// The one definition of the mobilityd API (the paper's get_self_guid, get_ip, get_guid_from_ip and
/// challenge, plus status and address control). The gRPC service, its HTTP/JSON transcoding, the
/// Unix socket and the state files are all views of this class. Arguments are validated here:
/// <see cref="ArgumentException"/> means a bad request.
/// </summary>
public sealed class DaemonApi
{
    private readonly MobilitydOptions _options;
    private readonly DaemonIdentity _identity;
    private readonly AddressMonitor _addresses;
    private readonly RecordPublisher _publisher;
    private readonly Challenger _challenger;
    private readonly ControlEndpoint _control;
    private readonly PeerBook _peers;
    private readonly IGnsClient _gns;
    private readonly TimeProvider _time;
    private readonly DateTimeOffset _startedAt;
    private readonly ExposedPorts _exposed;
    private readonly MobileForwarder _forwarder;

    public DaemonApi(IOptions<MobilitydOptions> options, DaemonIdentity identity, AddressMonitor addresses, RecordPublisher publisher,
        Challenger challenger, ControlEndpoint control, PeerBook peers, IGnsClient gns, TimeProvider time, ExposedPorts exposed, MobileForwarder forwarder)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        _options = options.Value;
        _identity = identity;
        _addresses = addresses;
        _publisher = publisher;
        _challenger = challenger;
        _control = control;
        _peers = peers;
        _gns = gns;
        _time = time;
        _startedAt = time.GetUtcNow();
        _exposed = exposed;
        _forwarder = forwarder;
    }

    /// <summary>The exposed ports (ascending) and where the transport listens.</summary>
    public ExposedView ListExposed() => new([.. _exposed.Current], _forwarder.LocalEndPoint);

    /// <summary>Exposes a local port to peers. Callers check the caller's right to do this first.</summary>
    public ExposedView Expose(int port)
    {
        _exposed.Expose(port);
        return ListExposed();
    }

    /// <summary>Stops exposing a port. Callers check the caller's right to do this first.</summary>
    public ExposedView Unexpose(int port)
    {
        _exposed.Unexpose(port);
        return ListExposed();
    }

    /// <summary>get_self_guid.</summary>
    public HostGuid GetSelfGuid() => _identity.Guid;

    /// <summary>get_ip: the GUID's (or name's) verified record, or null when the GNS has none. Throws <see cref="GnsException"/> when the GNS cannot be asked.</summary>
    public async Task<GnsRecord?> GetIpAsync(string target, CancellationToken cancellationToken = default)
    {
        var record = HostGuid.TryParse(target, out var guid)
            ? await _gns.LookupAsync(guid, cancellationToken).ConfigureAwait(false)
            : await _gns.LookupNameAsync(
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
    public async Task<GuidsAtAddress> GetGuidFromIpAsync(IPAddress address, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        var normalized = Locator.Normalize(address);
        var claims = await _gns.ReverseAsync(normalized, cancellationToken).ConfigureAwait(false);
        var max = _options.Challenge.MaxReverseCandidates;
        var candidates = claims.Distinct().Take(max).ToArray();
        var verdicts = await Task.WhenAll(candidates.Select(g => _challenger.ChallengeAsync(normalized, g, cancellationToken))).ConfigureAwait(false);
        return new GuidsAtAddress(
            normalized,
            [.. verdicts.Where(v => v.Verified).Select(v => v.Guid)],
            [.. verdicts.Where(v => !v.Verified).Select(v => new RefusedClaim(v.Guid, v.Reason))],
            claims.Count > max);
    }

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

        if (EndPoints.TryParse(text, out var endPoint) && endPoint.Port > 0)
        {
            return new IPEndPoint(Locator.Normalize(endPoint.Address), endPoint.Port);
        }

        throw new ArgumentException($"'{text}' is not an IP address or IP:PORT.", nameof(text));
    }

    public DaemonStatus GetStatus()
    {
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
            _startedAt);
    }

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
