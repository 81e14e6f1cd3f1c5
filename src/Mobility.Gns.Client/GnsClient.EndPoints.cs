using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Client;

/// <summary>
/// The GNS's addresses (<see cref="GnsClientOptions.Server"/> and <see cref="GnsClientOptions.Alternates"/>, typically
/// one per family, replaced when <see cref="GnsClientOptions.Resolve"/> answers others) and the choice of the ones in
/// use, one for the datagrams and one for gRPC: per request, a send that finds no route moves the datagrams to an
/// address the host can reach at once; when the host's addresses change, or the address in use stops answering, the
/// reachable addresses are raced (<see cref="GnsEndPointChoice"/>) in the background, by a datagram lookup for the
/// datagrams and by a TCP connect to each gRPC address for gRPC, and each winner is used from then on.
/// </summary>
public sealed partial class GnsClient
{
    /// <summary>
    /// Every address of the GNS ([0] is Server/GrpcAddress as given, then the alternates; after a resolution, its
    /// answer) and the indexes of the ones in use by the datagrams and by gRPC. Immutable: replaced as a whole under
    /// <see cref="_grpcGate"/>, read without a lock.
    /// </summary>
    private sealed class EndPointSet
    {
        public EndPointSet(GnsEndPoint[] all, int udp, int grpc)
        {
            All = all;
            Normalized = [.. all.Select(e => new IPEndPoint(Locator.Normalize(e.Udp.Address), e.Udp.Port))];
            Udp = udp;
            Grpc = grpc;
        }

        private EndPointSet(EndPointSet other, int udp, int grpc)
        {
            All = other.All;
            Normalized = other.Normalized;
            Udp = udp;
            Grpc = grpc;
        }

        public GnsEndPoint[] All { get; }

        public IPEndPoint[] Normalized { get; }

        public int Udp { get; }

        public int Grpc { get; }

        public EndPointSet WithUdp(int udp) => new(this, udp, Grpc);

        public EndPointSet WithGrpc(int grpc) => new(this, Udp, grpc);
    }

    private volatile EndPointSet _set;

    // The background races between addresses (datagrams, gRPC), and what cancels each (all under _grpcGate).
    private Task _race = Task.CompletedTask;
    private CancellationTokenSource? _raceCancel;
    private Task _grpcRace = Task.CompletedTask;
    private CancellationTokenSource? _grpcRaceCancel;

    /// <summary>Every address of the GNS this client may use now, the one given as <see cref="GnsClientOptions.Server"/> first until a resolution replaces them.</summary>
    public IReadOnlyList<GnsEndPoint> EndPoints => _set.All;

    /// <summary>True when <paramref name="source"/> (normalised) is one of the GNS's datagram endpoints.</summary>
    private bool IsGnsEndPoint(IPEndPoint source) => Array.IndexOf(_set.Normalized, source) >= 0;

    /// <summary>
    /// A send to <paramref name="failed"/> found no route: moves to the first other address the host can send to now
    /// and returns it, or null when there is none (the attempt's timeout then paces the next try, as with one address).
    /// </summary>
    private IPEndPoint? SwitchAfterSendFailure(IPEndPoint failed)
    {
        var set = _set;
        if (set.All.Length < 2)
        {
            return null;
        }

        var failedIndex = Array.FindIndex(set.All, e => e.Udp.Equals(failed));
        foreach (var index in GnsEndPointChoice.Order(set.All, set.Udp, _options.HasRoute))
        {
            if (index != failedIndex)
            {
                SwitchUdpTo(set.All[index], failed);
                return set.All[index].Udp;
            }
        }

        return null;
    }

    /// <summary>Makes <paramref name="endPoint"/> the address datagrams go to from now on (when it is still one of <see cref="EndPoints"/>).</summary>
    private void SwitchUdpTo(GnsEndPoint endPoint, IPEndPoint left)
    {
        lock (_grpcGate)
        {
            var set = _set;
            var index = Array.IndexOf(set.All, endPoint);
            if (_disposed != 0 || index < 0 || index == set.Udp)
            {
                return;
            }

            _set = set.WithUdp(index);
        }

        GnsClientLog.EndPointSwitched(_logger, left, endPoint.Udp.ToString());
    }

    /// <summary>
    /// Makes <paramref name="endPoint"/>'s gRPC address the one in use: the gRPC channel and every watch move there at
    /// once (as after <see cref="NotifyLocalAddressChanged"/>).
    /// </summary>
    private void SwitchGrpcTo(GnsEndPoint endPoint)
    {
        CancellationTokenSource? reset;
        Uri? left;
        lock (_grpcGate)
        {
            var set = _set;
            var index = Array.IndexOf(set.All, endPoint);
            if (_disposed != 0 || index < 0 || index == set.Grpc)
            {
                return;
            }

            left = set.All[set.Grpc].Grpc;
            _set = set.WithGrpc(index);
            reset = ReplaceChannelLocked();
        }

        GnsClientLog.GrpcEndPointSwitched(_logger, left!, endPoint.Grpc!);
        reset?.Cancel();
    }

    /// <summary>
    /// Races the datagram addresses of <paramref name="order"/> (indexes into <paramref name="set"/>; or those the host
    /// can reach now, when null) in the background. <paramref name="restart"/> cancels a race already running (its
    /// result is stale: the addresses changed); otherwise a race already running is left to finish.
    /// </summary>
    private void StartRace(EndPointSet? set, IReadOnlyList<int>? order, bool restart) => StartRace(set, order, restart, grpc: false);

    /// <summary>
    /// Races the gRPC addresses the host can reach now in the background, the one in use first: a TCP connect to each
    /// (<see cref="ProbeGrpcAsync"/>), started as <see cref="StartRace(EndPointSet?, IReadOnlyList{int}?, bool)"/> starts
    /// the datagram probes. Started after every local address change and when a gRPC call or a watch finds the GNS unavailable.
    /// </summary>
    private void StartGrpcRace(bool restart) => StartRace(null, null, restart, grpc: true);

    private void StartRace(EndPointSet? set, IReadOnlyList<int>? order, bool restart, bool grpc)
    {
        CancellationTokenSource? stale;
        lock (_grpcGate)
        {
            ref var race = ref grpc ? ref _grpcRace : ref _race;
            ref var raceCancel = ref grpc ? ref _grpcRaceCancel : ref _raceCancel;
            if (_disposed != 0 || (grpc && (_set.All.Length < 2 || _set.All[0].Grpc is null)) || (!restart && !race.IsCompleted))
            {
                return;
            }

            stale = raceCancel;
            var cancel = CancellationTokenSource.CreateLinkedTokenSource(_disposing.Token);
            raceCancel = cancel;
            race = RaceAsync(set, order, race, cancel, grpc);
        }

        CancelQuietly(stale);
    }

    private static void CancelQuietly(CancellationTokenSource? source)
    {
        try
        {
            source?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // That race has just finished.
        }
    }

    private async Task RaceAsync(EndPointSet? set, IReadOnlyList<int>? order, Task previous, CancellationTokenSource cancel, bool grpc)
    {
        try
        {
            // One race at a time: the previous one ends on its cancellation.
            await previous.ConfigureAwait(false);
            await Task.Yield();
            set ??= _set;
            order ??= GnsEndPointChoice.Order(set.All, grpc ? set.Grpc : set.Udp, _options.HasRoute);
            if (order.Count < 2 || cancel.IsCancellationRequested)
            {
                return;
            }

            var candidates = order.Select(i => set.All[i]).ToArray();
            Func<GnsEndPoint, CancellationToken, Task<bool>> probe = grpc ? ProbeGrpcAsync : ProbeAsync;
            var winner = await GnsEndPointChoice.RaceAsync(candidates, probe, _options.EndPointStagger,
                _options.EndPointChoiceBudget, _time, cancel.Token).ConfigureAwait(false);
            if (cancel.IsCancellationRequested)
            {
                return;
            }

            if (winner is null)
            {
                GnsClientLog.EndPointNoneAnswered(_logger, string.Join(", ", candidates.Select(c => grpc ? c.Grpc!.ToString() : c.Udp.ToString())),
                    grpc ? GrpcAddress!.ToString() : Server.ToString());
                return;
            }

            if (grpc)
            {
                SwitchGrpcTo(winner);
            }
            else
            {
                SwitchUdpTo(winner, Server);
            }
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

                if (_grpcRaceCancel == cancel)
                {
                    _grpcRaceCancel = null;
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

    /// <summary>
    /// Whether the host can open a TCP connection to <paramref name="endPoint"/>'s gRPC address now: what Happy
    /// Eyeballs races for a TCP service. A refused or unreachable connect fails at once (and starts the next
    /// candidate), a silent one runs until the race's budget or a winner cancels it.
    /// </summary>
    private static async Task<bool> ProbeGrpcAsync(GnsEndPoint endPoint, CancellationToken cancellationToken)
    {
        var grpc = endPoint.Grpc!;
        var host = grpc.DnsSafeHost;
        var port = grpc.Port;
        using var socket = IPAddress.TryParse(host, out var address)
            ? new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
            : new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(address is null ? new DnsEndPoint(host, port) : new IPEndPoint(address, port), cancellationToken).ConfigureAwait(false);
        return true;
    }
}
