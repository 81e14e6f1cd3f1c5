using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Transport;
using Mobility.Transport.Connections;
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
        if (_options.DirectPaths)
        {
            Post(new DirectCandidatesSet(body));
        }
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
        if (!_options.DirectPaths)
        {
            return;
        }

        Volatile.Write(ref _peerCandidates, candidates);
        DirectLog.PeerCandidates(_logger, Token, candidates.Length, punch);
        _supervisor?.OnPeerCandidates(punch, candidates);
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
    }
}

/// <summary>This end's direct candidates changed (<see cref="MobileConnection.SetDirectCandidates"/>): the CANDIDATES body to send.</summary>
internal sealed class DirectCandidatesSet(byte[] body) : ConnectionEvent
{
    public byte[] Body { get; } = body;
}

/// <summary>Client: a direct path joined as a standby; the loop makes it the active path (<see cref="PathSupervisor"/>).</summary>
internal sealed class DirectJoined(ConnectionPath path) : ConnectionEvent
{
    public ConnectionPath Path { get; } = path;
}
