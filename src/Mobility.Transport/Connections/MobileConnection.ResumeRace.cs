using System.Net;
using Microsoft.Extensions.Logging;

namespace Mobility.Transport;

/// <summary>
/// Client: the endpoint choice of a resume attempt. After a local move or a silent death the last
/// known endpoint may be stale (the peer may have moved at the same moment, and its push cannot
/// reach us while our own watch is moving too), so a fresh lookup races the attempt on it, happy-
/// eyeballs style: when the lookup names other endpoints, the attempt switches to them at once
/// instead of waiting out <see cref="MobileConnectionOptions.ResumeAttemptTimeout"/> on the old one.
/// Bounded: one flow attempt and one lookup at a time (two flows can never be current together).
/// </summary>
public sealed partial class MobileConnection
{
    /// <summary>
    /// Lookups per racing attempt: one at once, then up to three more after pauses doubling from
    /// <see cref="MobileConnectionOptions.ReconnectBackoffMin"/> while they return the known
    /// endpoints, so that a record the peer republishes a moment after our own move is still seen
    /// within the attempt. Each costs one GNS query.
    /// </summary>
    internal const int MaxRacingLookups = 4;

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
        var lookup = LocateChangedAsync(known, lookupCts.Token);
        var onKnown = TryEachAsync(known, local, progress, knownCts.Token);
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

            lock (_lock)
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
                    ResumeRaceLog.Switching(_logger, Token, current, string.Join(' ', fresh));
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
        var pause = _clientOptions!.ReconnectBackoffMin;
        try
        {
            for (var lookup = 1; ; lookup++)
            {
                var located = await LocateOnceAsync(ct, remember: false).ConfigureAwait(false);
                if (located is not null && !SameEndpoints(located, known))
                {
                    return located;
                }

                ResumeRaceLog.NothingNew(_logger, Token, lookup);
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
            using var locateCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            locateCts.CancelAfter(_clientOptions!.LocateTimeout);
            var located = await _locator!.LocateAsync(RemoteGuid, locateCts.Token).ConfigureAwait(false);
            if (located.Count == 0)
            {
                return null;
            }

            if (remember)
            {
                lock (_lock)
                {
                    _endpoints = located;
                }
            }

            return located;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            TransportLog.LocateFailed(_logger, RemoteGuid.ToShortString(), "timeout");
        }
#pragma warning disable CA1031 // A failing locator must not stop reconnection; the last known endpoints are tried.
        catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
        {
            TransportLog.LocateFailed(_logger, RemoteGuid.ToShortString(), e.Message);
        }

        return null;
    }

    /// <summary>Tries the endpoints in order until one resumes; false when all failed or <paramref name="ct"/> was cancelled.</summary>
    private async Task<bool> TryEachAsync(IReadOnlyList<IPEndPoint> endpoints, IPAddress? local, AttemptProgress? progress, CancellationToken ct)
    {
        foreach (var endpoint in endpoints)
        {
            if (ct.IsCancellationRequested)
            {
                return false;
            }

            progress?.Start(endpoint);
            if (await TryResumeOnAsync(endpoint, local, ct).ConfigureAwait(false))
            {
                return true;
            }
        }

        return false;
    }

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

    private static partial class ResumeRaceLog
    {
        [LoggerMessage(9040, LogLevel.Debug, "Connection {Token:x32}: the peer is now at [{Endpoints}]; abandoning the attempt via {Remote}")]
        public static partial void Switching(ILogger logger, UInt128 token, IPEndPoint? remote, string endpoints);

        [LoggerMessage(9041, LogLevel.Debug, "Connection {Token:x32}: racing lookup {Lookup} found the known endpoints")]
        public static partial void NothingNew(ILogger logger, UInt128 token, int lookup);
    }
}
