using System.Runtime.CompilerServices;
using Grpc.Core;
using Mobility.Gns.Api;
using Mobility.Protocol;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Client;

/// <summary>Where a watch stands; logged on every change.</summary>
public enum GnsWatchState
{
    /// <summary>Opening the stream for the first time.</summary>
    Connecting,

    /// <summary>The stream delivered at least one event since it was (re)opened.</summary>
    Connected,

    /// <summary>The stream failed or ended; waiting out the back-off before re-opening it.</summary>
    Reconnecting,
}

/// <summary>The watch: a gRPC server stream, re-opened with capped exponential back-off and jitter.</summary>
public sealed partial class GnsClient
{
    public async IAsyncEnumerable<GnsWatchEvent> WatchAsync(IEnumerable<HostGuid> guids,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(guids);
        _ = RequireGrpc();
        var watched = guids.ToHashSet();
        if (watched.Count == 0 || watched.Count > _options.MaxWatchGuids)
        {
            throw new ArgumentException($"A watch follows 1 to {_options.MaxWatchGuids} GUIDs, not {watched.Count}.", nameof(guids));
        }

        var request = new WatchRequest();
        request.Guids.AddRange(watched.Select(g => g.ToString()));
        var state = GnsWatchState.Connecting;
        var failures = 0;
        var reconnected = false;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            string reason;

            // The stream also ends when the local addresses change (NotifyLocalAddressChanged): its
            // connection may run from an address that is gone, so it re-opens at once on a new one.
            var (grpc, reset) = CurrentGrpc();
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, reset);

            // Completes when the channel is replaced: the new stream opens then, on the thread that replaced it, and the
            // old one is torn down elsewhere, instead of waiting for its cancellation to unwind through the gRPC and
            // HTTP/2 layers first (17 ms and more on a loaded host just after its move, while a peer's push waits).
            var replacedSource = new TaskCompletionSource();
            using var replacedRegistration = reset.UnsafeRegister(static s => ((TaskCompletionSource)s!).TrySetResult(), replacedSource);
            var replaced = replacedSource.Task;
            var replacedFirst = false;
            var call = grpc.Watch(request, cancellationToken: linked.Token);
            try
            {
                while (true)
                {
                    WatchEvent message;
                    try
                    {
                        var next = call.ResponseStream.MoveNext(linked.Token);
                        if (!next.IsCompleted && await Task.WhenAny(next, replaced).ConfigureAwait(false) != next)
                        {
                            // The old stream's end is of no interest any more (cancelled with the channel it ran on).
                            _ = next.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                                TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                            replacedFirst = true;
                            reason = "";
                            break;
                        }

                        if (!await next.ConfigureAwait(false))
                        {
                            reason = "the GNS ended the stream";
                            break;
                        }

                        message = call.ResponseStream.Current;
                    }
                    catch (Exception e) when (e is RpcException or OperationCanceledException && reset.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                    {
                        reason = "";
                        break;
                    }
                    catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
                    {
                        reason = $"{e.StatusCode}: {Printable(e.Status.Detail)}";
                        break;
                    }
                    catch (RpcException) when (cancellationToken.IsCancellationRequested)
                    {
                        throw new OperationCanceledException(cancellationToken);
                    }

                    if (state != GnsWatchState.Connected)
                    {
                        state = GnsWatchState.Connected;
                        failures = 0;
                        GnsClientLog.WatchConnected(_logger, watched.Count, GrpcAddress!);
                    }

                    if (ToWatchEvent(message, watched) is { } watchEvent)
                    {
                        yield return reconnected ? watchEvent with { Reconnected = true } : watchEvent;
                        reconnected = false;
                    }
                }
            }
            finally
            {
                if (replacedFirst)
                {
                    ThreadPool.UnsafeQueueUserWorkItem(static c => c.Dispose(), call, preferLocal: false);
                }
                else
                {
                    call.Dispose();
                }
            }

            if (reset.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                // Not a failure of the GNS: no back-off, and the current state comes again on open.
                state = GnsWatchState.Connecting;
                failures = 0;
                GnsClientLog.WatchReopening(_logger, watched.Count, GrpcAddress!);
                continue;
            }

            state = GnsWatchState.Reconnecting;
            reconnected = true;
            failures++;
            var delay = WatchReconnectDelay(failures);
            GnsClientLog.WatchReconnecting(_logger, GrpcAddress!, reason, delay, failures);

            // Another address of the GNS may take the stream: raced now, and a move there ends the back-off at once.
            var (now, moved) = CurrentGrpc();
            StartGrpcRace(restart: false);
            using var backOff = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, moved);
            try
            {
                if (ReferenceEquals(now, grpc))
                {
                    await Task.Delay(delay, _time, backOff.Token).ConfigureAwait(false);
                }
                else
                {
                    GnsClientLog.WatchMoved(_logger, watched.Count, GrpcAddress!);
                }
            }
            catch (OperationCanceledException) when (moved.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                GnsClientLog.WatchMoved(_logger, watched.Count, GrpcAddress!);
            }
        }
    }

    /// <summary>
    /// Back-off before re-opening after the <paramref name="failures"/>-th consecutive failure:
    /// base * 2^(failures-1), capped, then "equal jitter" (half fixed, half random) so that many
    /// watchers cut off by one GNS restart do not return in step.
    /// </summary>
    internal TimeSpan WatchReconnectDelay(int failures)
    {
        var delay = _options.WatchReconnectDelay;
        for (var i = 1; i < failures && delay < _options.WatchMaxReconnectDelay; i++)
        {
            delay *= 2;
        }

        if (delay > _options.WatchMaxReconnectDelay)
        {
            delay = _options.WatchMaxReconnectDelay;
        }

        return (delay / 2) + (delay / 2 * Random.Shared.NextDouble());
    }

    /// <summary>A verified event for a watched GUID (and the cache refreshed by it), or null when the event is dropped.</summary>
    private GnsWatchEvent? ToWatchEvent(WatchEvent message, HashSet<HostGuid> watched)
    {
        if (!HostGuid.TryParse(message.Guid, out var guid) || !watched.Contains(guid))
        {
            GnsClientLog.WatchEventRejected(_logger, "the event is for a GUID not watched");
            return null;
        }

        if (message.Record is null || message.Removed)
        {
            // A removal carries no signature the client could check; it only drops what the cache holds.
            _cache?.RemoveUpTo(guid, message.Version);
            return new GnsWatchEvent(guid, null, message.Version);
        }

        GnsRecord record;
        try
        {
            record = GnsRecord.Decode(message.Record.Signed.Span);
        }
        catch (MalformedMessageException e)
        {
            GnsClientLog.WatchEventRejected(_logger, e.Message);
            return null;
        }

        if (Check(record, guid, null) is { } rejection)
        {
            GnsClientLog.WatchEventRejected(_logger, rejection);
            return null;
        }

        _cache?.Set(record);
        return new GnsWatchEvent(guid, record, record.Version);
    }
}
