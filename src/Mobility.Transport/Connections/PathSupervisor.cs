using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Transport;
using Mobility.Transport.Flows;
using Mobility.Transport.Internal;
using Mobility.Net.Threading;

namespace Mobility.Transport.Connections;

/// <summary>What the client's <see cref="PathSupervisor"/> needs from its connection.</summary>
internal interface ISupervisedConnection
{
    HostGuid RemoteGuid { get; }

    UInt128 Token { get; }

    MobileConnectionState State { get; }

    /// <summary>Cancelled when the connection ends: the supervisor stops.</summary>
    CancellationToken Closed { get; }

    /// <summary>The path frames go on now (null: pathless).</summary>
    ConnectionPath? ActivePath { get; }

    /// <summary>
    /// True while the connection has no working path (none, or a dead attempt) and is within its
    /// pathless deadline; starts the pathless clock if it was not running.
    /// </summary>
    bool NeedsPath();

    void CountResumeAttempt();

    /// <summary>The last RTT measured on the connection (null before the first), for the connect race's delay.</summary>
    TimeSpan? LastRtt { get; }

    /// <summary>Adds an event to the connection's move timeline.</summary>
    void RecordMove(MoveEventKind kind, string? detail);

    void OnFlowConnected(IFlow flow);

    /// <summary>Makes a new path on <paramref name="flow"/> that starts with a Resume and carries data optimistically; null once the connection ended.</summary>
    ConnectionPath? BeginResume(IFlow flow);

    /// <summary>The path failed or its attempt was given up.</summary>
    void PathFailed(ConnectionPath path, string reason);

    /// <summary>The server at <paramref name="endpoint"/> does not know the connection: it completes if our close was done, else it fails.</summary>
    void OnUnknownToPeer(IPEndPoint endpoint);

    void Fail(Exception reason, uint? resetCode = null);

    /// <summary>The standby paths (joining or joined), as last changed by the connection's loop.</summary>
    ConnectionPath[] StandbyPaths => [];

    /// <summary>Makes a new path on <paramref name="flow"/> that joins as a standby (Join/JoinAck); null once the connection ended.</summary>
    ConnectionPath? BeginJoin(IFlow flow) => null;

    /// <summary>A direct path joined as a standby: the connection makes it the active path, the relayed one a standby.</summary>
    void PromoteDirect(ConnectionPath path)
    {
    }

    /// <summary>Sends a PUNCH frame with <paramref name="attempt"/> on the active path: the server connects to this end now.</summary>
    void RequestPunch(uint attempt)
    {
    }
}

/// <summary>
/// The client's path supervisor: keeps the connection on a working path. Connected -> (path lost)
/// -> Pathless: attempt a resume, back off (<see cref="ReconnectBackoff"/>), retry; a local address
/// change or a pushed endpoint change cancels the back-off and the attempt in progress and tries
/// again at once. Chooses endpoints: the last known ones, a lookup first after a failed attempt,
/// and after a local move or a silent death a lookup racing the attempt on the known ones (happy-
/// eyeballs style: when the lookup names other endpoints, the attempt switches to them at once
/// instead of waiting out <see cref="MobileConnectionOptions.ResumeAttemptTimeout"/>). Bounded: one
/// flow attempt and one lookup at a time. Every deadline and pause runs on the injected clock.
/// </summary>
internal sealed partial class PathSupervisor
{
    private readonly ISupervisedConnection _connection;
    private readonly MobileConnectionOptions _options;
    private readonly IPeerLocator? _locator;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<double> _random;
    private readonly AsyncAutoResetSignal _kick = new();
    private readonly Lock _gate = new();

    // Guarded by _gate.
    private IPAddress? _localAddress;
    private IReadOnlyList<IPEndPoint> _endpoints;
    private int _planVersion;

    // The path died silently (no RST, no event): the cached endpoint is suspect, ask the locator first.
    private bool _relocateFirst;

    // The local address changed: the peer may have moved at the same moment (and its push may not
    // reach us, since our own watch moved too), so the next attempt races a fresh lookup.
    private bool _raceLocate;

    // Standby paths: the host's usable addresses (NotifyLocalAddresses), the addresses a join was
    // tried from since they last changed, with their failures and when the next try may start (a
    // failed join is tried again after a back-off, JoinRetryMin doubling to JoinRetryMax, and at once
    // when the addresses change or a standby path is lost), and the join in progress (at most one).
    private IPAddress[] _localAddresses = [];
    private readonly Dictionary<IPAddress, (int Failures, long NotBefore)> _joinTried = [];
    private Task _joining = Task.CompletedTask;
    private Task _supervising = Task.CompletedTask;

    /// <param name="random">Uniform in [0, 1) for the back-off jitter (tests pass a fixed value).</param>
    public PathSupervisor(ISupervisedConnection connection, MobileConnectionOptions options, IPeerLocator? locator,
        IReadOnlyList<IPEndPoint> endpoints, IPAddress? localAddress, ILogger logger, Func<double>? random = null)
    {
        _connection = connection;
        _options = options;
        _locator = locator;
        _time = options.TimeProvider;
        _logger = logger;
#pragma warning disable CA5394 // Jitter, not security.
        _random = random ?? (static () => Random.Shared.NextDouble());
#pragma warning restore CA5394
        _endpoints = endpoints;
        _localAddress = localAddress;
        if (locator is not null)
        {
            locator.EndpointsChanged += OnEndpointsChanged;
        }
    }

    /// <summary>The supervising loop and the join in progress (both end when the connection does).</summary>
    public Task Completion
    {
        get
        {
            lock (_gate)
            {
                return Task.WhenAll(_supervising, _joining);
            }
        }
    }

    /// <summary>The endpoints the next attempt starts from.</summary>
    public IReadOnlyList<IPEndPoint> Endpoints
    {
        get
        {
            lock (_gate)
            {
                return _endpoints;
            }
        }
    }

    public void Start() => _supervising = Task.Run(SuperviseAsync);

    /// <summary>Something changed (a path was lost): look at the connection again.</summary>
    public void Kick() => Signal();

    // When the supervisor was last kicked (its clock's timestamp; 0: never): the wake-up's delay is logged (event 9301).
    private long _kickedAt;

    /// <summary>Wakes the supervising loop, noting when.</summary>
    private void Signal()
    {
        Volatile.Write(ref _kickedAt, _time.GetTimestamp());
        _kick.Set();
    }

    /// <summary>
    /// The active path from <paramref name="deadSource"/> died silently: the next attempt races a
    /// lookup, and until a resume succeeds other local addresses are tried before that one.
    /// </summary>
    public void RelocateFirst(IPAddress? deadSource)
    {
        lock (_gate)
        {
            _relocateFirst = true;
        }

        SuspectSource(deadSource);
    }

    /// <summary>The local address changed: new flows start from <paramref name="newLocalAddress"/> (null: unchanged) and the next attempt races a lookup.</summary>
    public void OnLocalAddressChanged(IPAddress? newLocalAddress)
    {
        lock (_gate)
        {
            _localAddress = newLocalAddress ?? _localAddress;
            _planVersion++;
            _raceLocate = true;
        }
    }

    /// <summary>
    /// The host's usable local addresses: new flows start from one of them when the current local
    /// address is gone (the first of the same family, else the OS chooses), an address that went
    /// makes the next attempt race a lookup, and an address no path uses may become a standby path.
    /// </summary>
    public void OnLocalAddresses(IPAddress[] addresses)
    {
        lock (_gate)
        {
            if (_localAddresses.Any(a => !addresses.Contains(a)))
            {
                _raceLocate = true;
            }

            // A new address, or the one new flows came from gone: an attempt in progress (or its
            // back-off) starts over at once, as after NotifyLocalAddressChanged.
            if (addresses.Any(a => !_localAddresses.Contains(a)))
            {
                _planVersion++;
            }

            if (_localAddress is { } current && !addresses.Contains(current))
            {
                _localAddress = addresses.FirstOrDefault(a => a.AddressFamily == current.AddressFamily);
                _planVersion++;
            }

            _localAddresses = addresses;
            _joinTried.Clear();
        }

        Signal();
    }

    /// <summary>A standby path was lost: every local address may be tried again (once) for a new one.</summary>
    public void OnStandbyLost()
    {
        lock (_gate)
        {
            _joinTried.Clear();
        }

        Signal();
    }

    /// <summary>
    /// While the active path works: joins a standby path from a local address no path uses (one join
    /// at a time, each address tried once until the addresses change or a standby is lost), to the
    /// active path's remote endpoint, or to a known endpoint of the address's family.
    /// </summary>
    private void MaybeJoinStandby()
    {
        if (_options.MaxStandbyPaths == 0 || _connection.Closed.IsCancellationRequested
            || _connection.ActivePath is not { Established: true, IsStopped: false } active
            || active.Flow.RemoteEndPoint is not { } remote)
        {
            return;
        }

        var standbys = _connection.StandbyPaths;
        var live = standbys.Count(p => !p.IsStopped);
        if (live >= _options.MaxStandbyPaths)
        {
            return;
        }

        var used = standbys.Where(p => !p.IsStopped).Append(active)
            .Select(p => p.Flow.LocalEndPoint?.Address).OfType<IPAddress>()
            .Select(a => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).ToHashSet();
        var activeLocal = active.Flow.LocalEndPoint?.Address is { } bound ? Plain(bound) : null;
        lock (_gate)
        {
            if (!_joining.IsCompleted)
            {
                return;
            }

            // The active path's address is gone: the supervisor hears of an address change before the
            // connection's loop, which is about to drop that path, and a resume (not a join) follows.
            // A join started now would be refused by the loop itself, its flow reset at the server.
            if (activeLocal is not null && _localAddresses.Length > 0 && !_localAddresses.Contains(activeLocal))
            {
                return;
            }

            foreach (var local in _localAddresses)
            {
                // A back-off's wake-up may come a timer tick (about a millisecond) before the time it was set for.
                if (used.Contains(local) || (_joinTried.TryGetValue(local, out var tried) && tried.NotBefore - _time.GetTimestamp() > _time.TimestampFrequency / 100))
                {
                    continue;
                }

                var target = Plain(remote.Address).AddressFamily == local.AddressFamily
                    ? remote
                    : _endpoints.FirstOrDefault(e => Plain(e.Address).AddressFamily == local.AddressFamily);
                if (target is null)
                {
                    continue;
                }

                _joinTried[local] = (tried.Failures, long.MaxValue);   // until this try ends
                _joining = Task.Run(() => JoinAsync(local, target, _connection.Closed), CancellationToken.None);
                return;
            }
        }
    }

    private static IPAddress Plain(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    /// <summary>
    /// One join: a flow from <paramref name="local"/> to <paramref name="target"/>, Join, JoinAck, within the resume attempt
    /// timeout. A failed one is tried again after a back-off (a transient failure, a join refused while a resume was still
    /// settling, must not leave a multihomed host without its standby until its addresses next change).
    /// </summary>
    private async Task JoinAsync(IPAddress local, IPEndPoint target, CancellationToken ct)
    {
        try
        {
            if (await JoinOnceAsync(local, target, _options.ResumeAttemptTimeout, ct).ConfigureAwait(false) is null && !ct.IsCancellationRequested)
            {
                TimeSpan retry;
                lock (_gate)
                {
                    var failures = _joinTried.TryGetValue(local, out var tried) ? tried.Failures + 1 : 1;
                    retry = ReconnectBackoff.Delay(failures, JoinRetryMin, JoinRetryMax, _random());
                    if (_joinTried.ContainsKey(local))
                    {
                        _joinTried[local] = (failures, _time.GetTimestamp() + (long)(retry.TotalSeconds * _time.TimestampFrequency));
                    }
                }

                JoinLog.Retrying(_logger, _connection.Token, local, retry.TotalMilliseconds);
                _ = WaitThenKickAsync(retry, ct);
            }
        }
        finally
        {
            Signal();
        }
    }

    /// <summary>The first pause before a failed join from an address is tried again (then doubling, with jitter).</summary>
    internal static readonly TimeSpan JoinRetryMin = TimeSpan.FromSeconds(1);

    /// <summary>The longest pause between two joins from an address that keep failing.</summary>
    internal static readonly TimeSpan JoinRetryMax = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A flow from <paramref name="local"/> (any when null) to <paramref name="target"/>, Join, JoinAck
    /// within <paramref name="limit"/>: the standby path, or null (logged; the flow closed).
    /// </summary>
    private async Task<ConnectionPath?> JoinOnceAsync(IPAddress? local, IPEndPoint target, TimeSpan limit, CancellationToken ct,
        Func<CancellationToken, ValueTask<IFlow>>? connect = null)
    {
        using var deadline = new CancellationTokenSource(limit, _time);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline.Token);
        IFlow? flow = null;
        ConnectionPath? path = null;
        string? failure = null;
        try
        {
            flow = connect is null
                ? await _options.FlowFactory.ConnectAsync(target, local, timeout.Token).ConfigureAwait(false)
                : await connect(timeout.Token).ConfigureAwait(false);
            path = _connection.BeginJoin(flow);
            if (path is null)
            {
                flow.Abort();
                return null;
            }

            var result = await path.ResumeResult.Task.WaitAsync(timeout.Token).ConfigureAwait(false);
            if (result is null)
            {
                return path;
            }

            failure = "refused: " + result.Value;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            failure = "the connection ended";
        }
        catch (OperationCanceledException)
        {
            failure = "timeout";
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException or InvalidOperationException)
        {
            failure = e.Message;
        }
        finally
        {
            if (failure is not null)
            {
                JoinLog.Failed(_logger, _connection.Token, local, target, failure);
                if (path is not null)
                {
                    _connection.PathFailed(path, "join failed: " + failure);
                }
                else
                {
                    flow?.Abort();
                }
            }
        }

        return null;
    }

    /// <summary>
    /// The server called back from <paramref name="address"/>: the next attempt tries it first, whatever the locator said
    /// last (its push may not have come yet), at <paramref name="port"/> (the call back's source) when that is the port of
    /// an endpoint known already (the server's listener: its published endpoint), else at the port of the first one known
    /// (a call back dialled again comes from an ephemeral port). The attempt in progress goes on.
    /// </summary>
    public void PreferAddress(IPAddress address, int port)
    {
        IReadOnlyList<IPEndPoint> known;
        lock (_gate)
        {
            known = _endpoints;
        }

        var listenerPort = known.Count == 0 || known.Any(e => e.Port == port) ? port : known[0].Port;
        PreferEndpoint(new IPEndPoint(address, listenerPort));
    }

    /// <summary>Puts <paramref name="endpoint"/> first in the endpoints the next attempt tries.</summary>
    public void PreferEndpoint(IPEndPoint endpoint)
    {
        lock (_gate)
        {
            _endpoints = [endpoint, .. _endpoints.Where(e => !e.Equals(endpoint))];
        }
    }

    /// <summary>Stops listening to the locator (the connection ended).</summary>
    public void Detach()
    {
        if (_locator is { } locator)
        {
            locator.EndpointsChanged -= OnEndpointsChanged;
        }
    }

    /// <summary>
    /// The peer's endpoints were pushed: a path to an endpoint no longer listed is dropped, and the
    /// attempt in progress restarts with the new list (unless it is the list already in use).
    /// </summary>
    private void OnEndpointsChanged(object? sender, PeerEndpointsChangedEventArgs e)
    {
        if (e.Guid != _connection.RemoteGuid || e.Endpoints.Count == 0 || _connection.Closed.IsCancellationRequested)
        {
            return;
        }

        var active = _connection.ActivePath;
        var remote = active?.Flow.RemoteEndPoint;
        // A called-back path runs on the server's flow: its port is the one the server dialled from, so its address is what counts.
        var stale = active is not null && (remote is null || (active.CalledBack
            ? !e.Endpoints.Any(p => Plain(p.Address).Equals(Plain(remote.Address)))
            : !e.Endpoints.Contains(remote)));
        lock (_gate)
        {
            if (!stale && SameEndpoints(_endpoints, e.Endpoints))
            {
                // A re-delivery of what we already use (a watch re-opened, a record refreshed):
                // restarting the attempt in progress would only throw away its TCP connect.
                return;
            }

            _endpoints = [.. e.Endpoints];
            _planVersion++;
        }

        // Only a push that changes something is part of a move (a re-delivery opens none).
        _connection.RecordMove(MoveEventKind.EndpointsPushed, string.Join(' ', e.Endpoints));

        if (stale)
        {
            _connection.PathFailed(active!, "the peer's endpoints changed");
        }

        Signal();
    }

    /// <summary>
    /// Client reconnect state machine: Connected -> (flow lost) -> Pathless: attempt, back off
    /// (capped exponential with jitter), retry; an address change or a pushed endpoint change
    /// cancels the back-off and the attempt in progress and tries again at once.
    /// </summary>
    private async Task SuperviseAsync()
    {
        var options = _options;
        var ct = _connection.Closed;
        Task<bool>? pendingKick = null;
        Task<bool> Kick() => pendingKick ??= _kick.WaitAsync(ct).AsTask();
        bool KickArrived()
        {
            if (pendingKick is { IsCompleted: true })
            {
                pendingKick = null;
                return true;
            }

            return false;
        }

        try
        {
            while (true)
            {
                MaybeJoinStandby();
                MaybeGoDirect();
                await Kick().ConfigureAwait(false);
                pendingKick = null;
                TransportLog.SupervisorWoke(_logger, _connection.Token, _connection.State.ToString());
                if (Volatile.Read(ref _kickedAt) is var kicked and not 0)
                {
                    WakeLog.Woke(_logger, _connection.Token, _time.GetElapsedTime(kicked).TotalMilliseconds);
                }
                var attempt = 0;
                while (true)
                {
                    // Past the pathless deadline the connection's timer fails it.
                    var version = PlanVersion;
                    if (!_connection.NeedsPath())
                    {
                        break;
                    }

                    TransportLog.Reconnecting(_logger, _connection.Token, attempt);
                    using var attemptCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    var attemptTask = AttemptResumeAsync(attempt, attemptCts.Token);
                    while (!attemptTask.IsCompleted)
                    {
                        await Task.WhenAny(attemptTask, Kick()).ConfigureAwait(false);
                        if (KickArrived() && PlanChanged(version))
                        {
                            await attemptCts.CancelAsync().ConfigureAwait(false);
                        }
                    }

                    var ok = await attemptTask.ConfigureAwait(false);
                    if (ok)
                    {
                        // Re-check at the top: the new flow may already have died, and the kick
                        // announcing it was consumed while the attempt ran.
                        attempt = 0;
                        continue;
                    }

                    if (PlanChanged(version))
                    {
                        attempt = 0;
                        continue;
                    }

                    attempt++;
                    var delay = ReconnectBackoff.Delay(attempt, options.ReconnectBackoffMin, options.ReconnectBackoffMax, _random());
                    using var delayCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    var delayTask = Task.Delay(delay, _time, delayCts.Token);
                    while (!delayTask.IsCompleted)
                    {
                        await Task.WhenAny(delayTask, Kick()).ConfigureAwait(false);
                        if (KickArrived() && PlanChanged(version))
                        {
                            attempt = 0;
                            await delayCts.CancelAsync().ConfigureAwait(false);
                            break;
                        }
                    }
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Connection ended.
        }
#pragma warning disable CA1031 // The supervisor must not die silently: anything unexpected fails the connection.
        catch (Exception e)
#pragma warning restore CA1031
        {
            TransportLog.SupervisorFailed(_logger, _connection.Token, e);
            _connection.Fail(new MobileConnectionException(MobileConnectionError.Aborted, "The reconnect loop failed: " + e.Message, e));
        }
    }

    private int PlanVersion
    {
        get
        {
            lock (_gate)
            {
                return _planVersion;
            }
        }
    }

    private bool PlanChanged(int version) => PlanVersion != version;

    /// <summary>One attempt: locate (after the first failure), connect, Resume, wait for ResumeAck.</summary>
    private async Task<bool> AttemptResumeAsync(int attempt, CancellationToken ct)
    {
        try
        {
            return await AttemptResumeCoreAsync(attempt, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>
    /// One attempt. After a local address change or a silent death, the last known endpoints are
    /// tried while a fresh lookup races them (<see cref="RaceLocateAsync"/>); after a failed attempt,
    /// or with nothing known, the lookup comes first; otherwise (a push) the known endpoints are tried.
    /// </summary>
    private async Task<bool> AttemptResumeCoreAsync(int attempt, CancellationToken ct)
    {
        IReadOnlyList<IPEndPoint> endpoints;
        IPAddress? local;
        bool race;
        lock (_gate)
        {
            endpoints = _endpoints;
            local = _localAddress;
            race = _relocateFirst || _raceLocate;
            _relocateFirst = false;
            _raceLocate = false;
        }

        if (_locator is not null && (attempt > 0 || endpoints.Count == 0))
        {
            endpoints = await LocateOnceAsync(ct).ConfigureAwait(false) ?? endpoints;
        }
        else if (_locator is not null && race)
        {
            return await RaceLocateAsync(endpoints, local, ct).ConfigureAwait(false);
        }

        return await TryEachAsync(endpoints, local, null, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// One resume attempt over <paramref name="candidates"/> (peer endpoints, each from one or more
    /// local addresses): their flow connects are raced (<see cref="RaceConnectAsync"/>), the first flow
    /// up carries the Resume, and the attempt waits for the answer, all within
    /// <see cref="MobileConnectionOptions.ResumeAttemptTimeout"/>.
    /// </summary>
    private async Task<bool> TryResumeOnAsync(IReadOnlyList<ConnectCandidate> candidates, AttemptProgress? progress, CancellationToken ct)
    {
        // The attempt's deadline runs on the injected clock.
        using var deadline = new CancellationTokenSource(_options.ResumeAttemptTimeout, _time);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline.Token);
        IFlow? flow = null;
        ConnectionPath? context = null;
        ResumeRace? race = null;
        _connection.CountResumeAttempt();
        var endpoint = candidates[0].Endpoint;
        try
        {
            var fastOpen = UseFastOpen;
            flow = await RaceConnectAsync(candidates, progress, fastOpen, timeout.Token).ConfigureAwait(false);
            if (flow is null)
            {
                return false;
            }

            endpoint = flow.RemoteEndPoint ?? endpoint;
            TransportLog.FlowConnected(_logger, _connection.Token, flow.LocalEndPoint, endpoint);
            _connection.OnFlowConnected(flow);
            context = _connection.BeginResume(flow);
            if (context is null)
            {
                // The connection ended meanwhile.
                flow.Abort();
                return true;
            }

            // An unanswered Resume is raced by another flow with the next counter (PathSupervisor.ResumeRace.cs).
            race = new ResumeRace(context, fastOpen, candidates) { ResumeSentAt = _time.GetTimestamp(), RelayJoinsAt = RelayJoinsAt(flow, candidates) };
            var result = await AwaitAnswerAsync(race, timeout.Token).ConfigureAwait(false);
            context = race.Path;
            endpoint = context.Flow.RemoteEndPoint ?? endpoint;
            if (result is null)
            {
                ClearSuspectSource();
                return true;
            }

            if (result == RejectReason.UnknownConnection)
            {
                _connection.OnUnknownToPeer(endpoint);
                return true;
            }

            TransportLog.ResumeRefused(_logger, _connection.Token, endpoint, result.Value.ToString());
            _connection.PathFailed(context, "resume refused: " + result.Value);
            return false;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            TransportLog.ResumeAttemptFailed(_logger, _connection.Token, endpoint, "timeout");
            _connection.RecordMove(MoveEventKind.AttemptFailed, $"resume via {endpoint}: timeout");
        }
        catch (OperationCanceledException)
        {
            // Attempt cancelled by a plan change or the end of the connection.
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException or InvalidOperationException)
        {
            TransportLog.ResumeAttemptFailed(_logger, _connection.Token, endpoint, e.Message);
            _connection.RecordMove(MoveEventKind.AttemptFailed, $"resume via {endpoint}: {e.Message}");
        }

        context = race?.Path ?? context;
        if (context is not null)
        {
            _connection.PathFailed(context, "resume attempt failed");
        }
        else
        {
            flow?.Abort();
        }

        return false;
    }

    /// <summary>
    /// The wait before the next connect of a race starts while the ones before it are unanswered:
    /// max(2 x the last measured RTT (a PING's, else the kernel's of the last flow), <see cref="MobileConnectionOptions.ConnectRaceDelayMin"/>), at most
    /// <see cref="MobileConnectionOptions.ConnectRaceDelayMax"/>; without a measurement, the minimum.
    /// </summary>
    internal static TimeSpan RaceDelay(TimeSpan? rtt, MobileConnectionOptions options)
    {
        var delay = rtt is { } measured && measured * 2 > options.ConnectRaceDelayMin ? measured * 2 : options.ConnectRaceDelayMin;
        return delay < options.ConnectRaceDelayMax ? delay : options.ConnectRaceDelayMax;
    }

    /// <summary>
    /// Races flow connects, Happy Eyeballs style (RFC 8305): the first candidate (an endpoint from a
    /// local address) at once; the next one as soon as the one before failed, or when none has
    /// connected within <see cref="RaceDelay"/>; after every candidate has been started, each one still
    /// unanswered is tried once more on a new flow (a lost SYN then costs the race delay, not the
    /// kernel's 1 s SYN retransmission). The first flow to connect wins; the other connects are
    /// cancelled and any flow one of them still opens is aborted when it is there. Null when every
    /// connect failed.
    /// </summary>
    private async Task<IFlow?> RaceConnectAsync(IReadOnlyList<ConnectCandidate> first, AttemptProgress? progress, bool fastOpen, CancellationToken ct)
    {
        // First round: each candidate in order; second round: each again, only while still unanswered.
        // The peer's relay candidates do not wait for each direct one before them (the record's order):
        // they join the race once one race delay has passed without a winner, or at once when no direct
        // candidate is left (RelayJoinsAfter).
        var relays = RelayCandidates(first);
        var direct = relays.Count == 0 || relays.Count == first.Count ? first : [.. first.Where(c => !IsRelay(c))];
        var relaysWaiting = direct.Count != first.Count;
        var candidates = new List<(ConnectCandidate Candidate, bool Repeat)>(first.Count * 2);
        candidates.AddRange(direct.Select(c => (c, false)));
        candidates.AddRange(direct.Select(c => (c, true)));
        // The RTT a PING measured, else the kernel's of the last flow (a connection's first move may
        // come before any PONG): without either the minimum would race a second SYN at 50 ms.
        var delay = RaceDelay(_connection.LastRtt ?? _flowRtt, _options);
        var began = _time.GetTimestamp();
        var relayDue = false;
        using var losers = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var pending = new List<(Task<IFlow> Connect, ConnectCandidate Candidate)>();
        var failed = new HashSet<ConnectCandidate>();
        var next = 0;
        IFlow? winner = null;
        try
        {
            while (winner is null)
            {
                // Start the next candidate (a repeat only for an endpoint not refused yet).
                while (next < candidates.Count && candidates[next].Repeat && failed.Contains(candidates[next].Candidate))
                {
                    next++;
                }

                if (relaysWaiting && (relayDue || (next >= candidates.Count && pending.Count == 0)))
                {
                    // The relay's turn: its candidates go next (and once more after every other).
                    relaysWaiting = false;
                    candidates.InsertRange(next, relays.Select(c => (c, false)));
                    candidates.AddRange(relays.Select(c => (c, true)));
                    RelayRaceLog.Joins(_logger, _connection.Token, string.Join(", ", relays), _time.GetElapsedTime(began).TotalMilliseconds);
                }

                if (next < candidates.Count && !ct.IsCancellationRequested)
                {
                    var (candidate, repeat) = candidates[next++];
                    progress?.Start(candidate.Endpoint);
                    _connection.RecordMove(MoveEventKind.ConnectStarted, (repeat ? $"{candidate} (again)" : candidate.ToString()) + (fastOpen ? " (fast open: the SYN goes with the Resume)" : ""));
                    pending.Add((ConnectOneAsync(candidate.Endpoint, candidate.Source, fastOpen, losers.Token), candidate));
                }

                if (pending.Count == 0)
                {
                    ct.ThrowIfCancellationRequested();
                    return null;
                }

                // Wait for a connect to finish, or for the race delay when another candidate is left
                // (while the relay waits, at most until one race delay from the start has passed).
                IEnumerable<Task> connects = pending.Select(p => (Task)p.Connect);
                using var pauseCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                Task? pause = null;
                if ((next < candidates.Count || relaysWaiting) && !pending.Any(p => p.Connect.IsCompleted))
                {
                    var wait = relaysWaiting ? Min(delay, delay - _time.GetElapsedTime(began)) : delay;
                    pause = Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, _time, pauseCts.Token);
                    connects = connects.Append(pause);
                }

                await Task.WhenAny(connects).WaitAsync(ct).ConfigureAwait(false);
                // A pause that ran out while the relay waited was at most what was left of its delay.
                relayDue |= relaysWaiting && pause is { IsCompletedSuccessfully: true };
                await pauseCts.CancelAsync().ConfigureAwait(false);
                ct.ThrowIfCancellationRequested();
                for (var i = 0; i < pending.Count && winner is null; i++)
                {
                    var (connect, candidate) = pending[i];
                    if (!connect.IsCompleted)
                    {
                        continue;
                    }

                    pending.RemoveAt(i--);
                    if (connect.IsCompletedSuccessfully)
                    {
                        winner = connect.Result;
                        _connection.RecordMove(MoveEventKind.ConnectFinished, $"{winner.LocalEndPoint} -> {candidate.Endpoint}");
                    }
                    else
                    {
                        failed.Add(candidate);
                        var reason = connect.Exception?.InnerException?.Message ?? "cancelled";
                        TransportLog.ResumeAttemptFailed(_logger, _connection.Token, candidate.Endpoint, reason);
                        _connection.RecordMove(MoveEventKind.AttemptFailed, $"connect to {candidate}: {reason}");
                    }
                }
            }

            return winner;
        }
        finally
        {
            // The losers: cancelled (without waiting for them: the winner's Resume goes out now), and
            // a flow that connected anyway is closed as soon as it is there.
            await losers.CancelAsync().ConfigureAwait(false);
            foreach (var (connect, candidate) in pending)
            {
                _ = connect.ContinueWith(static t => AbortLate(t), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
                if (winner is not null)
                {
                    _connection.RecordMove(MoveEventKind.AttemptFailed, $"connect to {candidate}: lost the race");
                }
            }
        }
    }

    /// <summary>
    /// Lookups per racing attempt: one at once, then up to three more after pauses doubling from
    /// <see cref="MobileConnectionOptions.ReconnectBackoffMin"/> while they return the known
    /// endpoints, so that a record the peer republishes a moment after our own move is still seen
    /// within the attempt. Each costs one GNS query.
    /// </summary>
    public const int MaxRacingLookups = 4;

    /// <summary>Which endpoints an attempt has started on (read by the racing lookup).</summary>
    private sealed class AttemptProgress
    {
        private readonly Lock _gate = new();
        private readonly List<IPEndPoint> _started = [];

        public IPEndPoint? Current
        {
            get
            {
                lock (_gate)
                {
                    return _started.Count == 0 ? null : _started[^1];
                }
            }
        }

        public void Start(IPEndPoint endpoint)
        {
            lock (_gate)
            {
                _started.Add(endpoint);
            }
        }

        public bool Started(IPEndPoint endpoint)
        {
            lock (_gate)
            {
                return _started.Contains(endpoint);
            }
        }
    }

    /// <summary>Tries <paramref name="known"/> while looking the peer up; switches to new endpoints as soon as the lookup names them.</summary>
    private async Task<bool> RaceLocateAsync(IReadOnlyList<IPEndPoint> known, IPAddress? local, CancellationToken ct)
    {
        using var lookupCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var knownCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var progress = new AttemptProgress();
        // The connect on the known endpoints goes out first, and the lookup runs beside it (a
        // locator that does work before its first await must not hold the connect back).
        var onKnown = TryEachAsync(known, local, progress, knownCts.Token);
        var lookup = Task.Run(() => LocateChangedAsync(known, lookupCts.Token), CancellationToken.None);
        try
        {
            if (await Task.WhenAny(onKnown, lookup).ConfigureAwait(false) == onKnown && await onKnown.ConfigureAwait(false))
            {
                return true;
            }

            // Either the known endpoints failed first (then only a lookup already answered is
            // used; otherwise the next attempt looks up after its back-off), or the lookup answered.
            IReadOnlyList<IPEndPoint>? fresh = null;
            if (!onKnown.IsCompleted || lookup.IsCompleted)
            {
                fresh = await lookup.ConfigureAwait(false);
            }

            if (fresh is null)
            {
                return await onKnown.ConfigureAwait(false);
            }

            lock (_gate)
            {
                _endpoints = fresh;
            }

            if (!onKnown.IsCompleted)
            {
                // Switch when the lookup ranks an endpoint not tried yet above the one being tried
                // (or drops that one): a record can list the peer's new address first and keep the
                // old one as a lower-ranked (observed) locator for a moment.
                var current = progress.Current;
                var rank = current is null ? -1 : IndexOf(fresh, current);
                if ((rank < 0 ? fresh : fresh.Take(rank)).Any(e => !progress.Started(e)))
                {
                    ResumeRaceLog.Switching(_logger, _connection.Token, current, string.Join(' ', fresh));
                    await knownCts.CancelAsync().ConfigureAwait(false);
                }

                if (await onKnown.ConfigureAwait(false))
                {
                    return true;
                }
            }

            return await TryEachAsync([.. fresh.Where(e => !progress.Started(e))], local, progress, ct).ConfigureAwait(false);
        }
        finally
        {
            await lookupCts.CancelAsync().ConfigureAwait(false);
            await knownCts.CancelAsync().ConfigureAwait(false);

            // Both end promptly once cancelled and never throw; awaited so nothing outlives the attempt.
            await Task.WhenAll(onKnown, lookup).ConfigureAwait(false);
        }
    }

    /// <summary>Looks the peer up until it names endpoints other than <paramref name="known"/> (returned), or gives up (null).</summary>
    private async Task<IReadOnlyList<IPEndPoint>?> LocateChangedAsync(IReadOnlyList<IPEndPoint> known, CancellationToken ct)
    {
        var pause = _options.ReconnectBackoffMin;
        try
        {
            for (var lookup = 1; ; lookup++)
            {
                var located = await LocateOnceAsync(ct, remember: false).ConfigureAwait(false);
                if (located is not null && !SameEndpoints(located, known))
                {
                    return located;
                }

                ResumeRaceLog.NothingNew(_logger, _connection.Token, lookup);
                if (lookup == MaxRacingLookups)
                {
                    return null;
                }

                await Task.Delay(pause, _time, ct).ConfigureAwait(false);
                pause *= 2;
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>One lookup within <see cref="MobileConnectionOptions.LocateTimeout"/>: the endpoints found, or null (none, failed, timed out).</summary>
    private async Task<IReadOnlyList<IPEndPoint>?> LocateOnceAsync(CancellationToken ct, bool remember = true)
    {
        try
        {
            using var deadline = new CancellationTokenSource(_options.LocateTimeout, _time);
            using var locateCts = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline.Token);
            _connection.RecordMove(MoveEventKind.LookupStarted, null);
            var located = await _locator!.LocateAsync(_connection.RemoteGuid, locateCts.Token).ConfigureAwait(false);
            _connection.RecordMove(MoveEventKind.LookupAnswered, located.Count == 0 ? "no endpoints" : string.Join(' ', located));
            if (located.Count == 0)
            {
                return null;
            }

            if (remember)
            {
                lock (_gate)
                {
                    _endpoints = located;
                }
            }

            return located;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            TransportLog.LocateFailed(_logger, _connection.RemoteGuid.ToShortString(), "timeout");
            _connection.RecordMove(MoveEventKind.LookupAnswered, "timeout");
        }
#pragma warning disable CA1031 // A failing locator must not stop reconnection; the last known endpoints are tried.
        catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
        {
            TransportLog.LocateFailed(_logger, _connection.RemoteGuid.ToShortString(), e.Message);
            _connection.RecordMove(MoveEventKind.LookupAnswered, "failed: " + e.Message);
        }

        return null;
    }

    /// <summary>A losing connect has ended: its flow, if it opened one, is aborted; its failure is observed (and means nothing).</summary>
    private static void AbortLate(Task<IFlow> connect)
    {
        if (connect.IsCompletedSuccessfully)
        {
            connect.Result.Abort();
        }
        else
        {
            _ = connect.Exception;
        }
    }

    /// <summary>One connect of a race; a factory that throws at once fails only its own connect.</summary>
    private async Task<IFlow> ConnectOneAsync(IPEndPoint endpoint, IPAddress? local, bool fastOpen, CancellationToken ct)
        => fastOpen
            ? await _options.FlowFactory.ConnectFirstFlightAsync(endpoint, local, ct).ConfigureAwait(false)
            : await _options.FlowFactory.ConnectAsync(endpoint, local, ct).ConfigureAwait(false);

    /// <summary>
    /// One attempt racing <paramref name="endpoints"/> from <paramref name="local"/> (null: the OS's
    /// choice) and the host's other usable addresses (<see cref="CandidatesFor"/>); false when none
    /// resumed or <paramref name="ct"/> was cancelled.
    /// </summary>
    private Task<bool> TryEachAsync(IReadOnlyList<IPEndPoint> endpoints, IPAddress? local, AttemptProgress? progress, CancellationToken ct)
        => endpoints.Count == 0 || ct.IsCancellationRequested ? Task.FromResult(false) : TryResumeOnAsync(CandidatesFor(endpoints, local), progress, ct);

    private static int IndexOf(IReadOnlyList<IPEndPoint> endpoints, IPEndPoint endpoint)
    {
        for (var i = 0; i < endpoints.Count; i++)
        {
            if (endpoints[i].Equals(endpoint))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>The same endpoints, in any order.</summary>
    private static bool SameEndpoints(IReadOnlyList<IPEndPoint> a, IReadOnlyList<IPEndPoint> b)
        => a.Count == b.Count && a.All(b.Contains) && b.All(a.Contains);

    private static partial class WakeLog
    {
        [LoggerMessage(9301, LogLevel.Debug, "Connection {Token:x32}: path supervisor woke {Ms:0.0} ms after its last kick")]
        public static partial void Woke(ILogger logger, UInt128 token, double ms);
    }

    private static partial class JoinLog
    {
        [LoggerMessage(9510, LogLevel.Debug, "Connection {Token:x32}: standby join from {Local} to {Remote} failed: {Reason}")]
        public static partial void Failed(ILogger logger, UInt128 token, IPAddress? local, IPEndPoint remote, string reason);

        [LoggerMessage(9511, LogLevel.Debug, "Connection {Token:x32}: a standby join from {Local} is tried again in {Milliseconds:F0} ms")]
        public static partial void Retrying(ILogger logger, UInt128 token, IPAddress local, double milliseconds);
    }

    private static partial class ResumeRaceLog
    {
        [LoggerMessage(9040, LogLevel.Debug, "Connection {Token:x32}: the peer is now at [{Endpoints}]; abandoning the attempt via {Remote}")]
        public static partial void Switching(ILogger logger, UInt128 token, IPEndPoint? remote, string endpoints);

        [LoggerMessage(9041, LogLevel.Debug, "Connection {Token:x32}: racing lookup {Lookup} found the known endpoints")]
        public static partial void NothingNew(ILogger logger, UInt128 token, int lookup);
    }
}
