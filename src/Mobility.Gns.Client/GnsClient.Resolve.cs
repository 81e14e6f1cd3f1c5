namespace Mobility.Gns.Client;

/// <summary>
/// The GNS's addresses asked again (<see cref="GnsClientOptions.Resolve"/>, the daemon's <c>--gns</c> names): at
/// start, after every <see cref="NotifyLocalAddressChanged"/> (a host on another network may find other addresses,
/// or only those of the family that works there) and then when the answer's TTL runs out (unknown TTL:
/// <see cref="GnsClientOptions.ResolveInterval"/>), bounded by <see cref="GnsClientOptions.ResolveMinInterval"/> and
/// <see cref="GnsClientOptions.ResolveMaxInterval"/>. An answer that differs replaces <see cref="EndPoints"/>; the
/// addresses in use stay when they are still in it, and the choice runs again as after an address change.
/// </summary>
public sealed partial class GnsClient
{
    private readonly Wakeup? _resolveNow;
    private readonly Task _resolveLoop = Task.CompletedTask;

    private async Task ResolveLoopAsync(Func<CancellationToken, Task<GnsResolution>> resolve, Wakeup wakeup)
    {
        var token = _disposing.Token;
        var wait = TimeSpan.Zero;
        var failures = 0;
        try
        {
            await Task.Yield();
            while (true)
            {
                if (wait > TimeSpan.Zero)
                {
                    await wakeup.WaitAsync(wait, _time, token).ConfigureAwait(false);
                }

                GnsResolution? answer;
                try
                {
                    answer = await resolve(token).ConfigureAwait(false);
                }
                catch (Exception e) when (!token.IsCancellationRequested)
                {
                    GnsClientLog.ResolveFailed(_logger, e.Message);
                    answer = null;
                }

                if (answer is { EndPoints.Count: > 0 })
                {
                    failures = 0;
                    ApplyResolved(answer.EndPoints);
                    wait = _options.ResolveIntervalFor(answer.Ttl);
                }
                else
                {
                    // Nothing resolved (no network yet, a resolver that does not answer): the addresses in use stay, asked again soon.
                    failures++;
                    wait = _options.ResolveRetryDelay(failures);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Disposed.
        }
    }

    /// <summary>Replaces <see cref="EndPoints"/> with <paramref name="resolved"/> when it differs, keeping the addresses in use that are still in it.</summary>
    private void ApplyResolved(IReadOnlyList<GnsEndPoint> resolved)
    {
        GnsEndPoint[] next = [.. resolved.Distinct().Take(GnsClientOptions.MaxAlternates + 1)];
        CancellationTokenSource? reset = null;
        lock (_grpcGate)
        {
            var set = _set;
            if (_disposed != 0 || set.All.SequenceEqual(next))
            {
                return;
            }

            var udp = Array.IndexOf(next, set.All[set.Udp]);
            var grpc = Array.IndexOf(next, set.All[set.Grpc]);
            _set = new EndPointSet(next, Math.Max(udp, 0), Math.Max(grpc, 0));
            if (grpc < 0 && !Equals(next[0].Grpc, set.All[set.Grpc].Grpc))
            {
                reset = ReplaceChannelLocked();
            }
        }

        GnsClientLog.EndPointsResolved(_logger, string.Join(", ", next.Select(e => e.ToString())), Server);
        reset?.Cancel();
        ChooseAgain(replaceChannel: false);
    }

    /// <summary>A "resolve now" flag: set by address changes, waited for (with a timeout) by the resolve loop; sets while it resolves coalesce.</summary>
    private sealed class Wakeup
    {
        private readonly SemaphoreSlim _signal = new(0, 1);

        public void Set()
        {
            try
            {
                _signal.Release();
            }
            catch (SemaphoreFullException)
            {
                // Already set.
            }
        }

        /// <summary>Returns when set (and clears it) or after <paramref name="timeout"/> on <paramref name="time"/>.</summary>
        public async Task WaitAsync(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
        {
            using var done = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var set = _signal.WaitAsync(done.Token);
            var elapsed = Task.Delay(timeout, time, done.Token);
            await Task.WhenAny(set, elapsed).ConfigureAwait(false);
            await done.CancelAsync().ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                await set.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Not set: the timeout ran out first (a signal that lost the race to the cancellation stays set).
            }
        }
    }
}
