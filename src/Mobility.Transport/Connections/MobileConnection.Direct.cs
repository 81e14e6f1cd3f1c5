using System.Buffers.Binary;
using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;
using Mobility.Transport.Flows;
using Mobility.Transport.Relay;

namespace Mobility.Transport;

/// <summary>
/// Direct paths (docs/nat.md, "Direct paths"): each end may tell the other, over the established
/// session, where it can be reached directly (a CANDIDATES frame: its local, reflexive and mapped
/// endpoints). A client whose active path runs through a relay dials the server's candidates
/// (<see cref="PathSupervisor"/>'s direct attempts, <see cref="DirectPathPlanner"/>), joins the flow
/// that connects as a standby path (Join/JoinAck: nothing is accepted on it before it proves the
/// session) and makes it the active path; the relayed path stays as a standby (<see cref="PathSet.Swap"/>)
/// and is promoted again at once when the direct one dies. The switch resends from what the peer
/// acknowledged, as every standby promotion does, so no byte is lost or delivered twice.
/// </summary>
public sealed partial class MobileConnection
{
    // Loop-owned: this end's CANDIDATES body and whether the active path still owes it to the peer.
    private byte[]? _candidatesBody;
    private bool _candidatesDue;
    private DirectCandidate[] _peerCandidates = [];

    // This end's punch port (0: none), written by SetDirectCandidates; loop-owned: the PUNCH frame owed
    // to the server (0: none), the last PUNCH attempt the server took, and the server's running punch.
    private int _punchPort;
    private uint _punchDue;
    private uint _lastPeerPunch;
    private Task _punching = Task.CompletedTask;

    // Server, loop-owned: the check of the peer's reflexive candidates (_punchChecked) against its published
    // record, started when they arrive so that the PUNCH that follows finds it done; taken by one PUNCH (a
    // later one checks again). At most one is started between two PUNCHes, so a peer repeating CANDIDATES
    // frames cannot make this end look it up for each.
    private Task<PunchTargets>? _punchCheck;
    private IPEndPoint[] _punchChecked = [];

    /// <summary>Server: how a punched flow is opened and handed to the listener's handshake handling (set by the listener).</summary>
    internal PunchResponder? Punches { get; init; }

    /// <summary>
    /// Tells the peer where this host can be reached directly (at most <see cref="DirectCandidates.MaxCount"/>
    /// endpoints; an empty list withdraws them); <paramref name="punch"/>: this host's NAT maps
    /// independently of the destination. Sent once on the active path, and again after every call.
    /// Ignored when <see cref="MobileTransportOptions.DirectPaths"/> is off.
    /// </summary>
    /// <exception cref="ArgumentException">Too many candidates, or one that cannot be sent (port 0, unspecified or multicast address).</exception>
    public void SetDirectCandidates(bool punch, IReadOnlyList<DirectCandidate> candidates)
    {
        var body = DirectCandidates.Encode(punch, candidates);
        if (!_options.DirectPaths)
        {
            return;
        }

        // This end takes PUNCH frames; it punches from its reflexive endpoint's port (the transport
        // port its NAT maps: masquerade keeps source ports).
        body[0] |= DirectCandidates.PunchFramesFlag | DirectCandidates.FirstFlightGapsFlag | DirectCandidates.StandbyGapsFlag;
        int? port = punch && candidates.FirstOrDefault(c => c.Kind == DirectCandidateKind.Reflexive) is { EndPoint: { } reflexive } ? reflexive.Port : null;
        Volatile.Write(ref _punchPort, port ?? 0);
        _supervisor?.OnLocalCandidates(punch, port);
        Post(new DirectCandidatesSet(body));
    }

    /// <summary>The direct candidates the peer sent last (empty before its first CANDIDATES frame).</summary>
    public IReadOnlyList<DirectCandidate> PeerCandidates => Volatile.Read(ref _peerCandidates);

    /// <summary>What the active path runs over: "direct", "relay IP:PORT", or null while pathless.</summary>
    public string? PathKind => DescribePath(_publishedPath);

    /// <summary>The relayed standby path kept as the fallback of a direct one ("relay IP:PORT"), or null.</summary>
    public string? StandbyRelay => DescribePath(_paths.StandbySnapshot.FirstOrDefault(p => IsRelayed(p) && !p.IsStopped));

    private static string? DescribePath(ConnectionPath? path) => path?.Flow switch
    {
        null => null,
        RelayedFlow relayed => $"relay {relayed.Relay}",
        _ => "direct",
    };

    private static bool IsRelayed(ConnectionPath path) => path.Flow is RelayedFlow;

    /// <summary>On the loop: new candidates of this end, owed to the peer on the active path.</summary>
    private void OnDirectCandidatesSet(byte[] body)
    {
        _candidatesBody = body;
        _candidatesDue = true;
        if (_paths.Active is { Established: true } active)
        {
            SendOn(active);
        }
    }

    /// <summary>Lays out the CANDIDATES frame when one is owed; returns the position after it.</summary>
    private int PlaceCandidates(byte[] output, int position)
    {
        if (!_candidatesDue || _candidatesBody is not { } body)
        {
            return position;
        }

        _candidatesDue = false;
        body.CopyTo(BodyAt(output, position, body.Length));
        return PlaceControl(position, FrameType.Candidates, body.Length);
    }

    /// <summary>On the loop: the peer's CANDIDATES frame (a malformed body fails the path, as any bad frame).</summary>
    private void OnPeerCandidates(ReadOnlySpan<byte> body)
    {
        var (punch, candidates) = DirectCandidates.Read(body);
        // A server that drops a first flight's gap says so here; the client's next first flight may then start where its
        // lost path's bytes stopped leaving the host (BeginResumeOnLoop). Read whatever DirectPaths says.
        _peerDropsFirstFlightGaps = (body[0] & DirectCandidates.FirstFlightGapsFlag) != 0;
        _peerDropsStandbyGaps = (body[0] & DirectCandidates.StandbyGapsFlag) != 0;
        if (!_options.DirectPaths)
        {
            return;
        }

        Volatile.Write(ref _peerCandidates, candidates);
        DirectLog.PeerCandidates(_logger, Token, candidates.Length, punch);
        if (!_isClient && _punchCheck is null && Punches is { Targets: not null } punches && Reflexive(candidates) is { Length: > 0 } reflexive)
        {
            _punchChecked = reflexive;
            _punchCheck = punches.CheckAsync(RemoteGuid, reflexive, Closed);
        }

        // A peer that does not take PUNCH frames would fail the path on one: it gets plain dials only.
        _supervisor?.OnPeerCandidates(punch && (body[0] & DirectCandidates.PunchFramesFlag) != 0, candidates);

        // Server: a client that punches is not dialled by a reversal (docs/transport.md, "Connection reversal").
        OnPeerPunchesForReversal(punch && Punches is not null);
    }

    void ISupervisedConnection.RequestPunch(uint attempt) => Post(new PunchRequested(attempt));

    /// <summary>Client, on the loop: a PUNCH frame is owed to the server on the active path.</summary>
    private void OnPunchRequested(uint attempt)
    {
        _punchDue = attempt;
        if (_paths.Active is { Established: true } active)
        {
            SendOn(active);
        }
    }

    /// <summary>Lays out the PUNCH frame when one is owed; returns the position after it.</summary>
    private int PlacePunch(byte[] output, int position)
    {
        if (_punchDue == 0)
        {
            return position;
        }

        BinaryPrimitives.WriteUInt32BigEndian(BodyAt(output, position, 4), _punchDue);
        _punchDue = 0;
        return PlaceControl(position, FrameType.Punch, 4);
    }

    /// <summary>
    /// Server, on the loop: the client's PUNCH frame. Connects from this end's punch port to the
    /// client's reflexive candidates for one attempt's time (<see cref="SimultaneousOpen"/>); a flow that
    /// connects goes to the listener's handshake handling like an accepted one, so nothing is accepted
    /// on it before its Join proves the session. One punch at a time, attempts only increasing: a peer
    /// cannot make this end connect more than once per attempt window, and with a
    /// <see cref="MobileListenerOptions.PunchTargetLocator"/> only to addresses it publishes.
    /// </summary>
    private void OnPeerPunch(uint attempt)
    {
        var port = Volatile.Read(ref _punchPort);
        var targets = Reflexive(_peerCandidates);
        string? ignored = _isClient ? "this end is the client"
            : !_options.DirectPaths ? "direct paths are off"
            : Punches is null ? "no listener to hand a punched flow to"
            : port == 0 ? "this end has no reflexive endpoint to punch from"
            : targets.Length == 0 ? "the peer sent no reflexive candidate"
            : attempt <= _lastPeerPunch ? $"attempt {attempt} after {_lastPeerPunch}"
            : !_punching.IsCompleted ? "a punch is running"
            : null;
        if (ignored is not null)
        {
            DirectLog.PunchIgnored(_logger, Token, attempt, ignored);
            return;
        }

        _lastPeerPunch = attempt;
        var deadline = _time.GetTimestamp() + (long)(_options.DirectAttemptTimeout.TotalSeconds * _time.TimestampFrequency);
        var punches = Punches!;
        // The check started when these candidates came (no lookup left to wait for), or a fresh one.
        var check = _punchCheck is { } started && _punchChecked.SequenceEqual(targets) ? started : punches.CheckAsync(RemoteGuid, targets, Closed);
        _punchCheck = null;
        DirectLog.Punching(_logger, Token, attempt, port, string.Join(' ', (IEnumerable<IPEndPoint>)targets));
        _punching = Task.Run(() => PunchForPeerAsync(punches, attempt, port, check, deadline), CancellationToken.None);
    }

    private static IPEndPoint[] Reflexive(DirectCandidate[] candidates)
        => [.. candidates.Where(c => c.Kind == DirectCandidateKind.Reflexive).Select(c => c.EndPoint)];

    private async Task PunchForPeerAsync(PunchResponder punches, uint attempt, int port, Task<PunchTargets> check, long deadline)
    {
        var (targets, error) = await check.ConfigureAwait(false);
        if (error is not null)
        {
            // The locator's lookup failed (or the connection closed): no target is known to be the peer's.
            if (!Closed.IsCancellationRequested)
            {
                DirectLog.PunchIgnored(_logger, Token, attempt, $"the peer's endpoints could not be looked up: {error}");
            }

            return;
        }

        if (targets.Length == 0)
        {
            DirectLog.PunchIgnored(_logger, Token, attempt, "none of the peer's reflexive candidates is an address it publishes");
            return;
        }

        var flow = await SimultaneousOpen.RunAsync(punches.Flows, port, targets, deadline, _time, () => DirectPathPlanner.PunchGap(Random.Shared.NextDouble()),
            (target, why) => PunchLog.TryFailed(_logger, Token, port, target, why), Closed).ConfigureAwait(false);
        if (flow is null)
        {
            PunchLog.NoConnection(_logger, Token, "the peer's", attempt);
            return;
        }

        PunchLog.Connected(_logger, Token, "the peer's", attempt, flow.LocalEndPoint, flow.RemoteEndPoint);
        punches.Serve(flow);
    }

    /// <summary>Server, promoting <paramref name="path"/>: a direct path taking over from a live relayed one keeps the relayed one as a standby.</summary>
    private bool KeepsRelayAsStandby(ConnectionPath path)
        => _options.DirectPaths && !IsRelayed(path) && _paths.Active is { IsStopped: false } active && IsRelayed(active);

    void ISupervisedConnection.PromoteDirect(ConnectionPath path) => Post(new DirectJoined(path));

    /// <summary>Client, on the loop: a direct path joined; it becomes the active path while the relayed one stays as a standby.</summary>
    private void OnDirectJoined(ConnectionPath path)
    {
        if (_failure is not null || _completed || !_paths.IsStandby(path) || !path.Established
            || _paths.Active is not { Established: true, IsStopped: false } active || !IsRelayed(active))
        {
            return;
        }

        _paths.Swap(path);
        _keepAlive.OnPathActivated(active, _time.GetTimestamp());
        _stats.DirectUpgrades++;
        DirectLog.Upgraded(_logger, Token, path.Flow.RemoteEndPoint, DescribePath(active));
        OnPromoted(path, $"direct path to {path.Flow.RemoteEndPoint}, {DescribePath(active)} kept as standby");
    }

    private static partial class DirectLog
    {
        [LoggerMessage(9100, LogLevel.Debug, "Connection {Token:x32}: the peer sent {Count} direct candidates (punch: {Punch})")]
        public static partial void PeerCandidates(ILogger logger, UInt128 token, int count, bool punch);

        [LoggerMessage(9101, LogLevel.Information, "Connection {Token:x32}: direct path to {Remote} is active, {Relay} kept as standby")]
        public static partial void Upgraded(ILogger logger, UInt128 token, IPEndPoint? remote, string? relay);

        [LoggerMessage(9153, LogLevel.Debug, "Connection {Token:x32}: the peer's punch {Attempt} ignored: {Reason}")]
        public static partial void PunchIgnored(ILogger logger, UInt128 token, uint attempt, string reason);

        [LoggerMessage(9154, LogLevel.Debug, "Connection {Token:x32}: punch {Attempt} for the peer from port {Port} to {Targets}")]
        public static partial void Punching(ILogger logger, UInt128 token, uint attempt, int port, string targets);
    }
}

/// <summary>This end's direct candidates changed (<see cref="MobileConnection.SetDirectCandidates"/>): the CANDIDATES body to send.</summary>
internal sealed class DirectCandidatesSet(byte[] body) : ConnectionEvent
{
    public byte[] Body { get; } = body;
}

/// <summary>Client: a PUNCH frame with this attempt number is owed to the server (<see cref="PathSupervisor"/>).</summary>
internal sealed class PunchRequested(uint attempt) : ConnectionEvent
{
    public uint Attempt { get; } = attempt;
}

/// <summary>
/// Server: how a connection takes part in a simultaneous open: <see cref="Flows"/> opens the punched
/// flow, <see cref="Serve"/> hands it to the listener's handshake handling (as an accepted flow),
/// <see cref="Targets"/> (when set) names the addresses the client may be punched at
/// (<see cref="MobileListenerOptions.PunchTargetLocator"/>).
/// </summary>
internal sealed record PunchResponder(IFlowFactory Flows, Action<IFlow> Serve, IPeerLocator? Targets = null)
{
    /// <summary>
    /// The candidates whose address the locator lists for <paramref name="peer"/> (all of them without a
    /// locator): an authenticated peer must not make this end send SYNs to addresses that are not its own.
    /// </summary>
    public async Task<IPEndPoint[]> AllowedAsync(HostGuid peer, IPEndPoint[] candidates, CancellationToken ct)
    {
        if (Targets is null)
        {
            return candidates;
        }

        var published = await Targets.LocateAsync(peer, ct).ConfigureAwait(false);
        var addresses = published.Where(e => e is not RelayEndPoint).Select(e => Locator.Normalize(e.Address)).ToHashSet();
        return [.. candidates.Where(c => addresses.Contains(Locator.Normalize(c.Address)))];
    }

    /// <summary><see cref="AllowedAsync"/> that never throws: the targets, or none and why the lookup failed.</summary>
    public async Task<PunchTargets> CheckAsync(HostGuid peer, IPEndPoint[] candidates, CancellationToken ct)
    {
        try
        {
            return new PunchTargets(await AllowedAsync(peer, candidates, ct).ConfigureAwait(false), null);
        }
#pragma warning disable CA1031 // Whatever the lookup throws, the punch is ignored with the reason in the log.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return new PunchTargets([], e.Message);
        }
    }
}

/// <summary>The candidates a server may punch (<see cref="PunchResponder.CheckAsync"/>), or why none is known to be the peer's.</summary>
internal readonly record struct PunchTargets(IPEndPoint[] Targets, string? Error);

/// <summary>Client: a direct path joined as a standby; the loop makes it the active path (<see cref="PathSupervisor"/>).</summary>
internal sealed class DirectJoined(ConnectionPath path) : ConnectionEvent
{
    public ConnectionPath Path { get; } = path;
}
