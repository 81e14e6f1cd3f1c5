using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Control;
using Mobility.Daemon.Identity;
using Mobility.Daemon.Peers;
using Mobility.Net.Caching;
using Mobility.Protocol.Challenge;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Challenges;

/// <summary>
/// Peer certification: challenge(ip, guid). Sends a fresh-nonce request to the address's control
/// port, re-sends on loss (<see cref="ChallengeOptions.Attempts"/> x <see cref="ChallengeOptions.AttemptTimeout"/>),
/// and accepts only an answer that <see cref="PendingChallenges"/> finds good. Verdicts are cached
/// (positive and negative for different times) and concurrent challenges of the same pair share one exchange.
/// </summary>
public sealed partial class Challenger
{
    private readonly ChallengeOptions _options;
    private readonly DaemonIdentity _identity;
    private readonly ControlEndpoint _control;
    private readonly PendingChallenges _pending;
    private readonly PeerBook _peers;
    private readonly TimeProvider _time;
    private readonly ILogger<Challenger> _logger;
    private readonly ConcurrentDictionary<(IPEndPoint Target, HostGuid Guid), Task<ChallengeVerdict>> _inFlight = new();
    private readonly ExpiringCache<(IPEndPoint Target, HostGuid Guid), ChallengeVerdict> _cache;

    public Challenger(IOptions<MobilitydOptions> options, DaemonIdentity identity, ControlEndpoint control, PendingChallenges pending,
        PeerBook peers, TimeProvider time, ILogger<Challenger> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value.Challenge;
        _identity = identity;
        _control = control;
        _pending = pending;
        _peers = peers;
        _time = time;
        _logger = logger;
        _cache = new(_options.MaxCachedVerdicts, time);
    }

    /// <summary>The control port challenged when the caller names none.</summary>
    public int DefaultPort => _options.Port;

    /// <summary>Challenges <paramref name="guid"/> at <paramref name="address"/> on the default control port.</summary>
    public Task<ChallengeVerdict> ChallengeAsync(IPAddress address, HostGuid guid, CancellationToken cancellationToken = default)
        => ChallengeAsync(new IPEndPoint(address, _options.Port), guid, cancellationToken);

    /// <summary>Challenges <paramref name="guid"/> at the control endpoint <paramref name="target"/>. Never throws for network failures: the verdict says what happened.</summary>
    public async Task<ChallengeVerdict> ChallengeAsync(IPEndPoint target, HostGuid guid, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        var key = (new IPEndPoint(Locator.Normalize(target.Address), target.Port), guid);
        if (_cache.TryGet(key, out var cached))
        {
            return cached with { Cached = true };
        }

        var task = _inFlight.GetOrAdd(key, StartRun);
        try
        {
            return await task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (task.IsCompleted)
            {
                _inFlight.TryRemove(new KeyValuePair<(IPEndPoint, HostGuid), Task<ChallengeVerdict>>(key, task));
            }
        }
    }

    /// <summary>Forgets cached verdicts about <paramref name="guid"/> (for example when it moved).</summary>
    public void Forget(HostGuid guid) => _cache.RemoveWhere(k => k.Guid == guid);

    private Task<ChallengeVerdict> StartRun((IPEndPoint Target, HostGuid Guid) key)
    {
        var task = RunAsync(key.Target, key.Guid);
        _ = task.ContinueWith(t => _inFlight.TryRemove(new KeyValuePair<(IPEndPoint, HostGuid), Task<ChallengeVerdict>>(key, t)),
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return task;
    }

    private async Task<ChallengeVerdict> RunAsync(IPEndPoint target, HostGuid guid)
    {
        // The exchange must not depend on one caller's cancellation: other callers may share it.
        await Task.Yield();
        if (_cache.TryGet((target, guid), out var cached))
        {
            // A run that finished between this caller's cache miss and its GetOrAdd left its verdict here.
            return cached with { Cached = true };
        }

        var started = _time.GetTimestamp();
        var request = ChallengeRequest.Create(_identity.Guid, guid);
        var datagram = ChallengeDatagram.WriteRequest(request);
        using var pending = _pending.Register(request, target);
        ChallengeVerdict verdict;
        if (pending is null)
        {
            verdict = Verdict(ChallengeOutcome.Busy, "too many challenges outstanding", started);
            Log.Verdict(_logger, guid.ToShortString(), target, verdict.Reason, verdict.Detail);
            return verdict;
        }

        verdict = await ExchangeAsync(pending, datagram, started).ConfigureAwait(false);
        Store((target, guid), verdict);
        if (verdict.Verified)
        {
            _peers.Verified(guid, target.Address, _time.GetUtcNow());
        }

        Log.Verdict(_logger, guid.ToShortString(), target, verdict.Reason, verdict.Detail);
        return verdict;

        ChallengeVerdict Verdict(ChallengeOutcome outcome, string detail, long since)
            => new(guid, target, outcome, detail, _time.GetElapsedTime(since), _time.GetUtcNow());
    }

    private async Task<ChallengeVerdict> ExchangeAsync(PendingChallenges.Pending pending, byte[] datagram, long started)
    {
        for (var attempt = 0; attempt < _options.Attempts; attempt++)
        {
            try
            {
                if (!await _control.SendAsync(datagram, pending.Target, CancellationToken.None).ConfigureAwait(false))
                {
                    return Make(ChallengeOutcome.Unreachable, $"no control socket of the {pending.Target.AddressFamily} family to send from");
                }
            }
            catch (SocketException e)
            {
                return Make(ChallengeOutcome.Unreachable, $"could not send: {e.SocketErrorCode}");
            }
            catch (ObjectDisposedException)
            {
                return Make(ChallengeOutcome.Unreachable, "the control endpoint is closed");
            }

            try
            {
                await pending.Response.WaitAsync(_options.AttemptTimeout, _time).ConfigureAwait(false);
                return Make(ChallengeOutcome.Verified, $"answered in {_time.GetElapsedTime(started).TotalMilliseconds:0.###} ms");
            }
            catch (TimeoutException)
            {
                Log.Retrying(_logger, pending.Expected.ToShortString(), pending.Target, attempt + 1);
            }
        }

        return pending.LastRejection is { } rejection
            ? Make(rejection.Outcome, rejection.Detail)
            : Make(ChallengeOutcome.Timeout, $"no answer after {_options.Attempts} attempts of {_options.AttemptTimeout.TotalMilliseconds:0} ms");

        ChallengeVerdict Make(ChallengeOutcome outcome, string detail)
            => new(pending.Expected, pending.Target, outcome, detail, _time.GetElapsedTime(started), _time.GetUtcNow());
    }

    private void Store((IPEndPoint, HostGuid) key, ChallengeVerdict verdict)
    {
        if (verdict.Outcome != ChallengeOutcome.Busy)
        {
            _cache.Set(key, verdict, verdict.Verified ? _options.PositiveCacheTime : _options.NegativeCacheTime);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(3001, LogLevel.Debug, "Challenge of {Guid} at {Target}: {Reason} ({Detail}).")]
        public static partial void Verdict(ILogger logger, string guid, IPEndPoint target, string reason, string detail);

        [LoggerMessage(3002, LogLevel.Debug, "No answer yet from {Guid} at {Target} after attempt {Attempt}.")]
        public static partial void Retrying(ILogger logger, string guid, IPEndPoint target, int attempt);
    }
}
