using System.Net;
using Mobility.Protocol.Transport;

namespace Mobility.Transport.Connections;

/// <summary>What the planner asks for now.</summary>
internal enum DirectAttemptKind
{
    /// <summary>Nothing to try (no peer candidates, a direct path is up, or waiting for the back-off).</summary>
    None,

    /// <summary>
    /// Connect to the peer's candidates as an ordinary client (connection reversal: the peer is reachable
    /// at a mapped, reflexive or local endpoint).
    /// </summary>
    Dial,

    /// <summary>
    /// TCP simultaneous open from the local transport port to the peer's reflexive endpoint, both ends
    /// at once; repeated with randomised gaps (<see cref="DirectPathPlanner.NextPunchGap"/>) until the
    /// attempt's deadline.
    /// </summary>
    Punch,
}

/// <summary>One direct attempt: the kind, the endpoints (best first) and when it gives up.</summary>
internal readonly record struct DirectAttempt(DirectAttemptKind Kind, IPEndPoint[] Targets, long Deadline);

/// <summary>
/// A connection's direct-path choice while it runs through a relay, a plain type driven by the loop
/// with the time (as <see cref="KeepAlivePolicy"/>): the peer's candidates (its CANDIDATES frame) and
/// whether both NATs map independently of the destination decide between dialling the peer
/// (connection reversal, its mapped and reflexive endpoints first, local ones last) and a coordinated
/// simultaneous open; a failed attempt, or a direct path that dies, waits a capped exponential
/// back-off with jitter (<see cref="ReconnectBackoff"/>) before the next; new candidates from the
/// peer start over at once. Only the connection's loop calls it.
/// </summary>
internal sealed class DirectPathPlanner
{
    private readonly TimeProvider _time;
    private readonly Func<double> _random;
    private readonly TimeSpan _attemptWindow;
    private readonly TimeSpan _backoffMin;
    private readonly TimeSpan _backoffMax;
    private DirectCandidate[] _peer = [];
    private bool _peerPunch;
    private bool _localPunch;
    private int _failures;
    private long _notBefore;
    private bool _inFlight;
    private bool _direct;

    /// <param name="attemptWindow">How long one attempt (all its dials, or its punch retries) may take.</param>
    /// <param name="backoffMin">The pause after the first failure (then doubled up to <paramref name="backoffMax"/>, × U(0.5, 1.5)).</param>
    /// <param name="random">Uniform in [0, 1): the jitter of back-offs and punch gaps.</param>
    public DirectPathPlanner(TimeProvider time, TimeSpan attemptWindow, TimeSpan backoffMin, TimeSpan backoffMax, Func<double> random)
    {
        _time = time;
        _attemptWindow = attemptWindow;
        _backoffMin = backoffMin;
        _backoffMax = backoffMax;
        _random = random;
    }

    /// <summary>Failed attempts (and lost direct paths) since the peer's candidates last changed.</summary>
    public int Failures => _failures;

    /// <summary>True while a direct path is up (nothing is tried then).</summary>
    public bool IsDirect => _direct;

    /// <summary>Whether this host's NAT maps endpoint-independently (sent as the punch flag).</summary>
    /// <remarks>A change starts over as new peer candidates do: an attempt is due at once (it may be a punch now).</remarks>
    public void SetLocalPunch(bool punch)
    {
        if (punch == _localPunch)
        {
            return;
        }

        _localPunch = punch;
        _failures = 0;
        _notBefore = _time.GetTimestamp();
    }

    /// <summary>The peer sent its candidates: the back-off starts over and an attempt is due at once.</summary>
    public void OnPeerCandidates(bool punch, DirectCandidate[] candidates)
    {
        _peer = candidates;
        _peerPunch = punch;
        _failures = 0;
        _notBefore = _time.GetTimestamp();
    }

    /// <summary>The next attempt when one is due now and none is running; else <see cref="DirectAttemptKind.None"/>.</summary>
    public DirectAttempt Next()
    {
        var now = _time.GetTimestamp();
        if (_direct || _inFlight || _peer.Length == 0 || now < _notBefore)
        {
            return new DirectAttempt(DirectAttemptKind.None, [], 0);
        }

        var deadline = now + (long)(_attemptWindow.TotalSeconds * _time.TimestampFrequency);
        var reflexive = _peer.Where(c => c.Kind == DirectCandidateKind.Reflexive).Select(c => c.EndPoint).ToArray();
        _inFlight = true;
        if (_localPunch && _peerPunch && reflexive.Length > 0 && !_peer.Any(c => c.Kind == DirectCandidateKind.Mapped))
        {
            return new DirectAttempt(DirectAttemptKind.Punch, reflexive, deadline);
        }

        var ordered = _peer.OrderBy(c => c.Kind switch
        {
            DirectCandidateKind.Mapped => 0,
            DirectCandidateKind.Reflexive => 1,
            _ => 2,
        }).Select(c => c.EndPoint).Distinct().ToArray();
        return new DirectAttempt(DirectAttemptKind.Dial, ordered, deadline);
    }

    /// <summary>When <see cref="Next"/> will have an attempt (null: not until something changes).</summary>
    public TimeSpan? DueIn()
    {
        if (_direct || _inFlight || _peer.Length == 0)
        {
            return null;
        }

        var wait = _time.GetElapsedTime(_time.GetTimestamp(), _notBefore);
        return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
    }

    /// <summary>The running attempt ended without a direct path: the next waits the back-off.</summary>
    public void OnAttemptFailed()
    {
        _inFlight = false;
        Backoff();
    }

    /// <summary>The running attempt gave a direct path (joined and active).</summary>
    public void OnDirectUp()
    {
        _inFlight = false;
        _direct = true;
    }

    /// <summary>The direct path died (the connection fell back to the relay): try again after the back-off.</summary>
    public void OnDirectLost()
    {
        _direct = false;
        Backoff();
    }

    /// <summary>
    /// A randomised gap between two simultaneous-open tries, uniform in [<see cref="PunchGapMin"/>,
    /// <see cref="PunchGapMin"/> + <see cref="PunchGapSpread"/>): fixed gaps can keep two ends' SYNs apart
    /// for ever when a NAT answers an unsolicited SYN with a RST, random ones meet (issue 16's feasibility
    /// notes). Two tries meet when they leave within the NAT-to-NAT one-way delay of each other, so the
    /// shorter the cycle (a refused try's round trip plus the gap), the sooner they do.
    /// </summary>
    public TimeSpan NextPunchGap() => PunchGap(_random());

    /// <summary>
    /// The shortest gap: at most one try per 20 ms from one end even where the refusal comes back at once
    /// (a NAT next door), so an attempt window sends at most 150 SYNs, to an address the peer publishes.
    /// </summary>
    public static readonly TimeSpan PunchGapMin = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// The width of the gaps' range. 100 ms (before: 50-250 ms gaps): with 20 ms one way between the
    /// NATs, a model of both ends' tries (each refused after one round trip, the server starting
    /// 50-300 ms after the client) puts the first meeting within 1 s in 96% of draws instead of 66%
    /// (median 0.32 s instead of 0.66 s); docs/nat.md, "Masquerade NATs 20 ms apart".
    /// </summary>
    public static readonly TimeSpan PunchGapSpread = TimeSpan.FromMilliseconds(100);

    /// <summary>The gap of <see cref="NextPunchGap"/> for <paramref name="uniform"/> in [0, 1) (the server's side draws its own).</summary>
    public static TimeSpan PunchGap(double uniform) => PunchGapMin + (PunchGapSpread * uniform);

    private void Backoff()
    {
        _failures++;
        var delay = ReconnectBackoff.Delay(_failures, _backoffMin, _backoffMax, _random());
        _notBefore = _time.GetTimestamp() + (long)(delay.TotalSeconds * _time.TimestampFrequency);
    }
}
