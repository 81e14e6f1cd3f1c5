using System.Net;
using System.Security.Cryptography;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;

namespace Mobility.Gns.Client;

/// <summary>
/// The GNS's addresses (<see cref="GnsClientOptions.Server"/> and <see cref="GnsClientOptions.Alternates"/>, typically
/// one per family) and the choice of the one in use: per request, a send that finds no route moves the client to an
/// address it can reach at once; when the host's addresses change, or the address in use stops answering, the reachable
/// addresses are raced (<see cref="GnsEndPointChoice"/>) in the background and the winner is used from then on.
/// </summary>
public sealed partial class GnsClient
{
    // [0] is Server/GrpcAddress as given, then the alternates; _current indexes the one in use (written under _grpcGate).
    private readonly GnsEndPoint[] _endPoints;
    private readonly IPEndPoint[] _normalized;
    private int _current;

    // The background race between addresses, and what cancels it (both under _grpcGate).
    private Task _race = Task.CompletedTask;
    private CancellationTokenSource? _raceCancel;

    /// <summary>Every address of the GNS this client may use, the one given as <see cref="GnsClientOptions.Server"/> first.</summary>
    public IReadOnlyList<GnsEndPoint> EndPoints => _endPoints;

    /// <summary>True when <paramref name="source"/> (normalised) is one of the GNS's datagram endpoints.</summary>
    private bool IsGnsEndPoint(IPEndPoint source) => Array.IndexOf(_normalized, source) >= 0;

    /// <summary>
    /// A send to <paramref name="failed"/> found no route: moves to the first other address the host can send to now
    /// and returns it, or null when there is none (the attempt's timeout then paces the next try, as with one address).
    /// </summary>
    private IPEndPoint? SwitchAfterSendFailure(IPEndPoint failed)
    {
        if (_endPoints.Length < 2)
        {
            return null;
        }

        var failedIndex = Array.FindIndex(_endPoints, e => e.Udp.Equals(failed));
        foreach (var index in GnsEndPointChoice.Order(_endPoints, Volatile.Read(ref _current), _options.HasRoute))
        {
            if (index != failedIndex)
            {
                SwitchTo(index, failed);
                return _endPoints[index].Udp;
            }
        }

        return null;
    }

    /// <summary>
    /// Makes <paramref name="index"/> the address in use: requests go there from now on, and the gRPC channel and every
    /// watch move there at once (as after <see cref="NotifyLocalAddressChanged"/>).
    /// </summary>
    private void SwitchTo(int index, IPEndPoint left)
    {
        CancellationTokenSource? reset;
        lock (_grpcGate)
        {
            if (_disposed != 0 || index == _current)
            {
                return;
            }

            Volatile.Write(ref _current, index);
            reset = ReplaceChannelLocked();
        }

        GnsClientLog.EndPointSwitched(_logger, left, _endPoints[index].ToString());
        reset?.Cancel();
    }

    /// <summary>
    /// Races the addresses of <paramref name="order"/> (or those the host can reach now, when null) in the background.
    /// <paramref name="restart"/> cancels a race already running (its result is stale: the addresses changed);
    /// otherwise a race already running is left to finish.
    /// </summary>
    private void StartRace(IReadOnlyList<int>? order, bool restart)
    {
        CancellationTokenSource? stale;
        lock (_grpcGate)
        {
            if (_disposed != 0 || (!restart && !_race.IsCompleted))
            {
                return;
            }

            stale = _raceCancel;
            var cancel = CancellationTokenSource.CreateLinkedTokenSource(_disposing.Token);
            _raceCancel = cancel;
            _race = RaceAsync(order, _race, cancel);
        }

        try
        {
            stale?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // That race has just finished.
        }
    }

    private async Task RaceAsync(IReadOnlyList<int>? order, Task previous, CancellationTokenSource cancel)
    {
        try
        {
            // One race at a time: the previous one ends on its cancellation.
            await previous.ConfigureAwait(false);
            await Task.Yield();
            order ??= GnsEndPointChoice.Order(_endPoints, Volatile.Read(ref _current), _options.HasRoute);
            if (order.Count < 2 || cancel.IsCancellationRequested)
            {
                return;
            }

            var candidates = order.Select(i => _endPoints[i]).ToArray();
            var winner = await GnsEndPointChoice.RaceAsync(candidates, ProbeAsync, _options.EndPointStagger, _options.EndPointChoiceBudget, _time, cancel.Token)
                .ConfigureAwait(false);
            if (cancel.IsCancellationRequested)
            {
                return;
            }

            if (winner is null)
            {
                GnsClientLog.EndPointNoneAnswered(_logger, string.Join(", ", candidates.Select(c => c.Udp)), Server);
                return;
            }

            SwitchTo(Array.FindIndex(_endPoints, e => ReferenceEquals(e, winner)), Server);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            // Cancelled by a newer race, or the client is being disposed.
        }
        finally
        {
            lock (_grpcGate)
            {
                if (_raceCancel == cancel)
                {
                    _raceCancel = null;
                }
            }

            cancel.Dispose();
        }
    }

    /// <summary>
    /// Whether the GNS answers at <paramref name="endPoint"/>: a lookup of a GUID nobody holds, two attempts. Any
    /// answer, "not found" included, proves the address serves the GNS over a path that works now.
    /// </summary>
    private async Task<bool> ProbeAsync(GnsEndPoint endPoint, CancellationToken cancellationToken)
    {
        var nobody = HostGuid.FromBytes(RandomNumberGenerator.GetBytes(HostGuid.Size));
        await ExchangeAsync(id => GnsDatagram.LookupGuid(id, nobody), GnsMessageType.RecordReply, static _ => null, cancellationToken,
            to: endPoint.Udp, attempts: 2).ConfigureAwait(false);
        return true;
    }
}
