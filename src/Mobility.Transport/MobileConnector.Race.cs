using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Net.Threading;
using Mobility.Protocol.Identity;
using Mobility.Transport.Relay;

namespace Mobility.Transport;

/// <summary>
/// Opening a connection: the handshakes to the peer's endpoints raced (<see cref="HandshakeRace"/>),
/// restarted with the endpoints the locator pushes while they are in flight, and one fresh lookup
/// when every endpoint failed.
/// </summary>
public sealed partial class MobileConnector
{
    /// <summary>
    /// Handshakes of one connect in flight at once (each on its own flow): a record lists a few
    /// endpoints (host, observed, relay), so four let every one of them race without a flood.
    /// </summary>
    internal const int MaxRacingHandshakes = 4;

    private async Task<MobileConnection> ConnectCoreAsync(IReadOnlyList<IPEndPoint> endpoints, HostGuid expected, IPeerLocator? locator, CancellationToken cancellationToken)
    {
        using var race = new HandshakeRace(this, expected, locator, cancellationToken);
        return await race.RunAsync(endpoints).ConfigureAwait(false);
    }

    /// <summary>
    /// One connect's handshakes, Happy Eyeballs style (RFC 8305): the first endpoint at once, the
    /// next when the ones before failed or none answered within <see cref="MobileConnectionOptions.ConnectRaceDelayMax"/>,
    /// at most <see cref="MaxRacingHandshakes"/> at once; the first server to prove itself wins and
    /// the others are abandoned before their ClientFinish (their flows are aborted). While the
    /// handshakes are in flight, a push of the peer's endpoints (<see cref="IPeerLocator.EndpointsChanged"/>)
    /// abandons those to endpoints no longer listed and starts the new ones at once; when every
    /// endpoint failed, the peer is looked up once more and only endpoints not tried yet are raced. When the endpoints
    /// came from a record the locator keeps (<see cref="LocatedEndpoints.FromCache"/>), that one fresh lookup also starts
    /// once <see cref="MobileConnectionOptions.ConnectRaceDelayMax"/> passed with no winner (a silent endpoint of a record
    /// that went stale while its watch was down costs the race delay, not the handshake timeout).
    /// Only the loop of <see cref="RunAsync"/> touches the race's state; a push is handed to it through a signal.
    /// </summary>
    private sealed class HandshakeRace : IDisposable
    {
        private readonly MobileConnector _connector;
        private readonly HostGuid _server;
        private readonly IPeerLocator? _locator;
        private readonly CancellationToken _ct;
        private readonly CancellationTokenSource _stop;
        private readonly AsyncAutoResetSignal _pushed = new();
        private readonly Lock _gate = new();
        private IReadOnlyList<IPEndPoint>? _pushedEndpoints; // the last push, under _gate
        private int _won;

        // The loop's state.
        private readonly List<Attempt> _pending = [];
        private readonly HashSet<IPEndPoint> _tried = [];
        private List<IPEndPoint> _queue = [];
        private IReadOnlyList<IPEndPoint> _endpoints = [];
        private MobileHandshakeException? _last;

        public HandshakeRace(MobileConnector connector, HostGuid server, IPeerLocator? locator, CancellationToken cancellationToken)
        {
            _connector = connector;
            _server = server;
            _ct = cancellationToken;
            _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            // A connect to an address with no expected GUID has nobody to look up.
            _locator = server.IsEmpty ? null : locator;
            if (_locator is not null)
            {
                _locator.EndpointsChanged += OnEndpointsChanged;
            }
        }

        private sealed record Attempt(IPEndPoint Endpoint, Task<MobileConnection> Handshake, CancellationTokenSource Cancel);

        private ILogger Logger => _connector._logger;

        /// <summary>Handshakes in flight and not abandoned.</summary>
        private int Live => _pending.Count(a => !a.Cancel.IsCancellationRequested);

        public async Task<MobileConnection> RunAsync(IReadOnlyList<IPEndPoint> endpoints, bool fromCache = false)
        {
            var options = _connector._options;
            var relooked = _locator is null;
            Task<IReadOnlyList<IPEndPoint>?>? lookup = null;
            Task<bool>? push = null;
            var hedge = fromCache && !relooked ? Task.Delay(options.ConnectRaceDelayMax, options.TimeProvider, _stop.Token) : null;
            var startNow = true;
            Use(endpoints, retryFailed: true);
            try
            {
                while (true)
                {
                    if (_queue.Count > 0 && Live < MaxRacingHandshakes && (startNow || Live == 0))
                    {
                        Start(_queue[0]);
                        _queue.RemoveAt(0);
                    }

                    StartRelays();

                    startNow = false;
                    if (_pending.Count == 0 && _queue.Count == 0 && lookup is null)
                    {
                        if (relooked)
                        {
                            throw _last ?? new MobileHandshakeException("No endpoint to connect to.");
                        }

                        // Every endpoint failed before its timeout: one fresh lookup, not a loop.
                        relooked = true;
                        TransportLog.LookingUpAgain(Logger, _server.ToShortString(), _tried.Count, _last?.Message ?? "no endpoint");
                        lookup = LookupAsync();
                    }

                    var waits = new List<Task>(_pending.Count + 3);
                    waits.AddRange(_pending.Select(a => (Task)a.Handshake));
                    if (lookup is not null)
                    {
                        waits.Add(lookup);
                    }

                    if (_locator is not null)
                    {
                        waits.Add(push ??= _pushed.WaitAsync(_stop.Token).AsTask());
                    }

                    if (hedge is not null)
                    {
                        waits.Add(hedge);
                    }

                    using var pauseCts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                    if (_queue.Count > 0 && Live is > 0 and < MaxRacingHandshakes)
                    {
                        waits.Add(Task.Delay(options.ConnectRaceDelayMax, options.TimeProvider, pauseCts.Token));
                    }

                    var done = await Task.WhenAny(waits).WaitAsync(_ct).ConfigureAwait(false);
                    await pauseCts.CancelAsync().ConfigureAwait(false);
                    // The race delay passed: the next endpoint starts.
                    startNow = !_pending.Any(a => a.Handshake == done) && done != lookup && done != push && done != hedge;
                    if (hedge is { IsCompleted: true })
                    {
                        hedge = null;
                        if (!relooked && lookup is null)
                        {
                            // The kept record's endpoints have not proved the peer within the race delay: ask the GNS too.
                            relooked = true;
                            TransportLog.CachedEndpointsSlow(Logger, _server.ToShortString(), _tried.Count, options.ConnectRaceDelayMax.TotalMilliseconds);
                            lookup = LookupAsync();
                        }
                    }
                    if (push is { IsCompleted: true })
                    {
                        push = null;
                        IReadOnlyList<IPEndPoint>? pushed;
                        lock (_gate)
                        {
                            pushed = _pushedEndpoints;
                        }

                        if (pushed is not null && !pushed.SequenceEqual(_endpoints))
                        {
                            TransportLog.EndpointsPushed(Logger, _server.ToShortString(), pushed.Count, string.Join(' ', pushed));
                            startNow |= Use(pushed, retryFailed: true);
                        }
                    }

                    if (lookup is { IsCompleted: true })
                    {
                        var fresh = await lookup.ConfigureAwait(false);
                        lookup = null;
                        if (fresh is null || !Use(fresh, retryFailed: false))
                        {
                            TransportLog.NothingNew(Logger, _server.ToShortString());
                        }

                        startNow = true;
                    }

                    for (var i = 0; i < _pending.Count; i++)
                    {
                        var attempt = _pending[i];
                        if (!attempt.Handshake.IsCompleted)
                        {
                            continue;
                        }

                        _pending.RemoveAt(i--);
                        attempt.Cancel.Dispose();
                        if (attempt.Handshake.IsCompletedSuccessfully)
                        {
                            return attempt.Handshake.Result;
                        }

                        if (attempt.Handshake.Exception?.InnerException is MobileHandshakeException e)
                        {
                            // Failed: the next endpoint starts at once.
                            _last = e;
                            startNow = true;
                        }
                    }
                }
            }
            finally
            {
                await _stop.CancelAsync().ConfigureAwait(false);
                foreach (var attempt in _pending)
                {
                    // A loser's flow is aborted by its own handshake once cancelled; awaited so nothing outlives the connect.
                    await attempt.Cancel.CancelAsync().ConfigureAwait(false);
                    await ((Task)attempt.Handshake).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                    _ = attempt.Handshake.Exception;
                    attempt.Cancel.Dispose();
                }
            }
        }

        /// <summary>
        /// Makes <paramref name="endpoints"/> the list raced: handshakes to endpoints no longer listed are
        /// abandoned, and the listed ones not in flight (with <paramref name="retryFailed"/>: also those that
        /// failed before; without it, only those never tried) are next. True when there is one to start.
        /// </summary>
        private bool Use(IReadOnlyList<IPEndPoint> endpoints, bool retryFailed)
        {
            _endpoints = [.. endpoints.Distinct()];
            foreach (var stale in _pending.Where(a => !_endpoints.Contains(a.Endpoint)))
            {
                stale.Cancel.Cancel();
            }

            _queue = [.. _endpoints.Where(e => !_pending.Any(a => a.Endpoint.Equals(e) && !a.Cancel.IsCancellationRequested) && (retryFailed || !_tried.Contains(e)))];
            return _queue.Count > 0;
        }

        /// <summary>
        /// Starts every queued relay endpoint now: a relay answers wherever the peer is (behind any NAT),
        /// so it races the direct endpoints from the start instead of waiting its turn behind their race
        /// delays (a record lists it last, after private and observed endpoints that may lead nowhere).
        /// The first server to prove itself still wins; a connection that starts relayed moves to a direct
        /// path once the peer's candidates arrive (docs/nat.md, "Direct paths").
        /// </summary>
        private void StartRelays()
        {
            for (var i = 0; i < _queue.Count && Live < MaxRacingHandshakes; i++)
            {
                if (_queue[i] is RelayEndPoint relay)
                {
                    TransportLog.RelayRacesAtOnce(Logger, _server.ToShortString(), relay);
                    Start(relay);
                    _queue.RemoveAt(i--);
                }
            }
        }

        private void Start(IPEndPoint endpoint)
        {
            _tried.Add(endpoint);
            var cancel = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            _pending.Add(new Attempt(endpoint, HandshakeOnAsync(endpoint, _endpoints, cancel.Token), cancel));
        }

        /// <summary>One handshake; it may finish the connection only if no other one has (checked once the server proved itself).</summary>
        private async Task<MobileConnection> HandshakeOnAsync(IPEndPoint endpoint, IReadOnlyList<IPEndPoint> endpoints, CancellationToken ct)
        {
            // Off the loop's stack: a flow factory that works before its first await must not hold the race back.
            await Task.Yield();
            var time = _connector._options.TimeProvider;
            var started = time.GetTimestamp();
            TransportLog.HandshakeStarted(Logger, _server.ToShortString(), endpoint);
            try
            {
                var connection = await _connector.HandshakeAsync(endpoint, _server, _locator, endpoints, () => Interlocked.Exchange(ref _won, 1) == 0, ct).ConfigureAwait(false);
                TransportLog.HandshakeWon(Logger, _server.ToShortString(), endpoint, time.GetElapsedTime(started).TotalMilliseconds);
                return connection;
            }
            catch (MobileHandshakeException e)
            {
                TransportLog.HandshakeFailed(Logger, _server.ToShortString(), endpoint, time.GetElapsedTime(started).TotalMilliseconds, e.Message);
                throw;
            }
        }

        /// <summary>One lookup within <see cref="MobileConnectionOptions.LocateTimeout"/>: the endpoints found, or null (none, failed, timed out).</summary>
        private async Task<IReadOnlyList<IPEndPoint>?> LookupAsync()
        {
            try
            {
                using var locate = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                locate.CancelAfter(_connector._options.LocateTimeout);
                var located = await _locator!.LocateAsync(_server, locate.Token).ConfigureAwait(false);
                return located.Count == 0 ? null : located;
            }
            catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
            {
                TransportLog.LocateFailed(Logger, _server.ToShortString(), "timeout");
            }
#pragma warning disable CA1031 // A failing locator ends the connect with the handshakes' own error.
            catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
            {
                TransportLog.LocateFailed(Logger, _server.ToShortString(), e.Message);
            }

            return null;
        }

        private void OnEndpointsChanged(object? sender, PeerEndpointsChangedEventArgs e)
        {
            if (e.Guid != _server || e.Endpoints.Count == 0)
            {
                return;
            }

            lock (_gate)
            {
                _pushedEndpoints = [.. e.Endpoints];
            }

            _pushed.Set();
        }

        public void Dispose()
        {
            if (_locator is not null)
            {
                _locator.EndpointsChanged -= OnEndpointsChanged;
            }

            _pushed.Complete();
            _stop.Dispose();
        }
    }
}
