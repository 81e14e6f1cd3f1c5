using System.Net;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using GrpcGns = Mobility.Gns.Api.Gns;

namespace Mobility.Gns.Client;

/// <summary>
/// The GNS client: lookups, reverse lookups, updates and removals over UDP datagrams (one socket,
/// one receive loop, retransmission with doubling timeouts), gRPC for watches, for "update only if
/// it exists", and as a fallback when a reply does not fit a datagram or UDP gets no answer. Every
/// record returned has been verified and matches the GUID or name asked for. Verified records are
/// cached for their TTL. Partial files: <c>.Udp</c> (socket and request matching), <c>.Grpc</c>,
/// <c>.Watch</c>.
/// </summary>
public sealed partial class GnsClient : IGnsClient
{
    private readonly GnsClientOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RecordCache? _cache;
    private readonly Lock _grpcGate = new();
    private GrpcChannel? _channel;
    private GrpcGns.GnsClient? _grpc;

    // Cancelled (and replaced) when the local addresses change: wakes every watch to re-open at once.
    private CancellationTokenSource _pathReset = new();
    private readonly List<Task> _retiredChannels = [];
    private readonly CancellationTokenSource _disposing = new();

    public GnsClient(GnsClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _time = options.TimeProvider;
        _logger = options.LoggerFactory.CreateLogger<GnsClient>();
        if (options.CacheEnabled)
        {
            _cache = new RecordCache(_time, options.CacheMaxEntries, options.MaxCacheTtl);
        }

        _set = new EndPointSet([new GnsEndPoint(options.Server, options.GrpcAddress), .. options.Alternates], 0, 0);
        if (options.GrpcAddress is { } grpcAddress)
        {
            _channel = CreateChannel(grpcAddress, options);
            _grpc = new GrpcGns.GnsClient(_channel);
        }

        (_socket, _receiveLoop) = StartUdp();
        if (options.Resolve is { } resolve)
        {
            _resolveNow = new Wakeup();
            _resolveLoop = ResolveLoopAsync(resolve, _resolveNow);
        }
    }

    /// <summary>The GNS datagram endpoint this client talks to now (one of <see cref="EndPoints"/>).</summary>
    public IPEndPoint Server
    {
        get
        {
            var set = _set;
            return set.All[set.Udp].Udp;
        }
    }

    /// <summary>The GNS gRPC address this client uses now, or null.</summary>
    public Uri? GrpcAddress
    {
        get
        {
            var set = _set;
            return set.All[set.Grpc].Grpc;
        }
    }

    /// <summary>The local endpoint of the client's datagram socket.</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    public async Task<GnsUpdateResult> RegisterAsync(GnsRecord record, CancellationToken cancellationToken = default)
    {
        RequireVerified(record);
        var result = await AcceptingOwnRetransmissionAsync(record, () => WithGrpcFallbackAsync(
            () => UdpUpdateAsync(record, cancellationToken),
            () => GrpcUpdateAsync(record, requireExisting: false, cancellationToken)), cancellationToken).ConfigureAwait(false);

        Remember(record, result.Version);
        return result;
    }

    /// <summary>
    /// Runs an update; when it is refused as stale but the GNS holds exactly <paramref name="record"/>,
    /// our own earlier attempt (a retransmitted datagram, or UDP before the gRPC fallback) was stored
    /// and its ack lost or overtaken: that is success, not a conflict. A GNS that acknowledges identical
    /// retransmissions (docs/protocol.md, "Requests") answers such a retry with a normal ack that carries the
    /// observed address; this path remains for a GNS that refuses them, and asks that GNS again with a
    /// Reflect datagram from the same socket for the observed address the lost ack carried (null when it
    /// does not answer one).
    /// </summary>
    private async Task<GnsUpdateResult> AcceptingOwnRetransmissionAsync(GnsRecord record, Func<Task<GnsUpdateResult>> update,
        CancellationToken cancellationToken)
    {
        try
        {
            return await update().ConfigureAwait(false);
        }
        catch (GnsException e) when (e.Code == GnsErrorCode.StaleVersion)
        {
            if (await IsAlreadyStoredAsync(record, cancellationToken).ConfigureAwait(false))
            {
                return new GnsUpdateResult(record.Version, await ObservedAgainAsync(cancellationToken).ConfigureAwait(false));
            }

            throw;
        }
    }

    /// <summary>True when the GNS now holds exactly <paramref name="record"/> (asked past the cache).</summary>
    private async Task<bool> IsAlreadyStoredAsync(GnsRecord record, CancellationToken cancellationToken)
    {
        try
        {
            var stored = await WithGrpcFallbackAsync(
                () => UdpLookupAsync(record.Guid, cancellationToken),
                () => GrpcLookupAsync(record.Guid, cancellationToken)).ConfigureAwait(false);
            return stored is not null && stored.Encoded.Span.SequenceEqual(record.Encoded.Span);
        }
        catch (GnsException)
        {
            return false;
        }
    }

    /// <remarks>
    /// The datagram protocol has a single upsert message, so "must already exist" is asked over gRPC
    /// when it is configured. Without gRPC, or when gRPC is unreachable, the client looks the GUID up
    /// over UDP first and then upserts: a removal between the two is undone (a documented race).
    /// </remarks>
    public async Task<GnsUpdateResult> UpdateAsync(GnsRecord record, CancellationToken cancellationToken = default)
    {
        RequireVerified(record);
        GnsUpdateResult? result = null;
        if (_grpc is not null)
        {
            try
            {
                result = await GrpcUpdateAsync(record, requireExisting: true, cancellationToken).ConfigureAwait(false);
            }
            catch (GnsException e) when (e.Code == GnsErrorCode.Unavailable)
            {
                GnsClientLog.GrpcUnavailableForUpdate(_logger, GrpcAddress!, Server);
            }
        }

        if (result is null)
        {
            _ = await UdpLookupAsync(record.Guid, cancellationToken).ConfigureAwait(false)
                ?? throw new GnsException(GnsErrorCode.NotFound, $"GNS at {Server}: {record.Guid} has no record to update");
            result = await AcceptingOwnRetransmissionAsync(record, () => UdpUpdateAsync(record, cancellationToken), cancellationToken)
                .ConfigureAwait(false);
        }

        Remember(record, result.Version);
        return result;
    }

    public async Task<GnsRecord?> LookupAsync(HostGuid guid, CancellationToken cancellationToken = default)
    {
        if (_cache is not null && _cache.TryGet(guid, out var cached))
        {
            GnsClientLog.CacheHit(_logger, guid.ToString());
            return cached;
        }

        return await FetchAsync(() => UdpLookupAsync(guid, cancellationToken), () => GrpcLookupAsync(guid, cancellationToken)).ConfigureAwait(false);
    }

    public async Task<GnsRecord?> LookupNameAsync(string name, CancellationToken cancellationToken = default)
    {
        var canonical = HostName.Normalize(name, out var error) ?? throw new ArgumentException(error, nameof(name));
        if (_cache is not null && _cache.TryGetByName(canonical, out var cached))
        {
            GnsClientLog.CacheHit(_logger, canonical);
            return cached;
        }

        return await FetchAsync(() => UdpLookupNameAsync(canonical, cancellationToken), () => GrpcLookupNameAsync(canonical, cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>A record the cache did not have: asked over UDP (gRPC as the fallback) and cached when found.</summary>
    private async Task<GnsRecord?> FetchAsync(Func<Task<GnsRecord?>> udp, Func<Task<GnsRecord?>> grpc)
    {
        var record = await WithGrpcFallbackAsync(udp, grpc).ConfigureAwait(false);
        if (record is not null)
        {
            _cache?.Set(record);
        }

        return record;
    }

    public async Task<IReadOnlyList<HostGuid>> ReverseAsync(IPAddress address, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        var (guids, truncated) = await WithGrpcFallbackAsync(
            () => UdpReverseAsync(address, cancellationToken),
            () => GrpcReverseAsync(address, cancellationToken)).ConfigureAwait(false);
        if (truncated && _grpc is not null)
        {
            GnsClientLog.ReverseTruncated(_logger, address);
            (guids, _) = await GrpcReverseAsync(address, cancellationToken).ConfigureAwait(false);
        }

        return guids;
    }

    public async Task<ulong> RemoveAsync(GnsRemoval removal, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(removal);
        var version = await WithGrpcFallbackAsync(
            () => UdpRemoveAsync(removal, cancellationToken),
            () => GrpcRemoveAsync(removal, cancellationToken)).ConfigureAwait(false);
        _cache?.RemoveUpTo(removal.Guid, Math.Max(version, removal.Version));
        return version;
    }

    public void Invalidate(HostGuid guid) => _cache?.Remove(guid);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await StopUdpAsync().ConfigureAwait(false);
        await StopTlsAsync().ConfigureAwait(false);
        Task[] retired;
        lock (_grpcGate)
        {
            _channel?.Dispose();
            retired = [.. _retiredChannels, _race, _grpcRace, _resolveLoop];
        }

        await _disposing.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(retired).ConfigureAwait(false);
        _disposing.Dispose();
    }

    /// <summary>
    /// The host's addresses changed. A gRPC connection opened from an address that is gone is dead,
    /// and nothing tells TCP so (its keepalive pings notice after tens of seconds): new calls get a
    /// new channel, hence a new connection from a current address, and every watch re-opens on it at
    /// once (no back-off), which re-delivers the current state of its GUIDs. The old channel is
    /// disposed after <see cref="GnsClientOptions.GrpcTimeout"/>, when any call still on it has
    /// timed out anyway. Datagram requests need nothing: their socket is not bound to an address.
    /// With <see cref="GnsClientOptions.Alternates"/>, the GNS address is chosen again first: when the
    /// host has no route to the one in use (it left that family), the first it can reach is used at
    /// once, and the channel and the watches go there; when several are reachable they are raced in the
    /// background and the client moves to the winner if that is another one.
    /// </summary>
    public void NotifyLocalAddressChanged()
    {
        if (_disposed != 0)
        {
            return;
        }

        ResetTls();
        ChooseAgain(replaceChannel: true);
        _resolveNow?.Set();
    }

    /// <summary>
    /// The addresses in use checked against the host's routes: one the host has no route to any more is left at once
    /// for the first it can reach (datagrams and gRPC each); then both are raced in the background when several are
    /// reachable. <paramref name="replaceChannel"/>: a new gRPC channel even when its address stays.
    /// </summary>
    private void ChooseAgain(bool replaceChannel)
    {
        CancellationTokenSource? reset = null;
        EndPointSet set;
        IReadOnlyList<int> order;
        Uri? grpcLeft;
        int left;
        lock (_grpcGate)
        {
            if (_disposed != 0)
            {
                return;
            }

            set = _set;
            left = set.Udp;
            grpcLeft = set.All[set.Grpc].Grpc;
            order = set.All.Length > 1 ? GnsEndPointChoice.Order(set.All, set.Udp, _options.HasRoute) : [];
            var grpcOrder = set.All.Length > 1 ? GnsEndPointChoice.Order(set.All, set.Grpc, _options.HasRoute) : [];
            if (order.Count > 0 && order[0] != set.Udp)
            {
                set = set.WithUdp(order[0]);
            }

            var grpcMoved = grpcOrder.Count > 0 && grpcOrder[0] != set.Grpc;
            if (grpcMoved)
            {
                set = set.WithGrpc(grpcOrder[0]);
            }

            _set = set;
            if (replaceChannel || grpcMoved)
            {
                reset = ReplaceChannelLocked();
            }
        }

        if (left != set.Udp)
        {
            GnsClientLog.EndPointNoRoute(_logger, set.All[left].Udp, Server);
        }

        if (reset is not null)
        {
            GnsClientLog.GrpcReset(_logger, GrpcAddress!);

            // Not disposed: a watch may be linking to its token right now (it holds no timer, the GC takes it).
            reset.Cancel();
        }

        if (order.Count > 1)
        {
            StartRace(set, order, restart: true);
        }

        if (grpcLeft is not null)
        {
            StartGrpcRace(restart: true);
        }
    }

    /// <summary>
    /// A new channel to the gRPC address in use, the old one retired; returns the reset token source to
    /// cancel (outside the lock) so watches re-open on the new channel, or null without gRPC. Under <see cref="_grpcGate"/>.
    /// </summary>
    private CancellationTokenSource? ReplaceChannelLocked()
    {
        if (_set.All[_set.Grpc].Grpc is not { } grpcAddress)
        {
            return null;
        }

        var old = _channel!;
        _channel = CreateChannel(grpcAddress, _options);
        _grpc = new GrpcGns.GnsClient(_channel);
        var reset = _pathReset;
        _pathReset = new CancellationTokenSource();
        _retiredChannels.RemoveAll(t => t.IsCompleted);
        _retiredChannels.Add(RetireAsync(old));
        return reset;
    }

    private async Task RetireAsync(GrpcChannel channel)
    {
        try
        {
            await Task.Delay(_options.GrpcTimeout, _time, _disposing.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Disposed: the channel goes now.
        }

        channel.Dispose();
    }

    /// <summary>The current gRPC stub and the token that fires when it is replaced by <see cref="NotifyLocalAddressChanged"/>.</summary>
    private (GrpcGns.GnsClient Grpc, CancellationToken Reset) CurrentGrpc()
    {
        lock (_grpcGate)
        {
            var grpc = _grpc ?? throw new InvalidOperationException("This operation needs GnsClientOptions.GrpcAddress.");
            return (grpc, _pathReset.Token);
        }
    }

    private static GrpcChannel CreateChannel(Uri grpcAddress, GnsClientOptions options) => GrpcChannel.ForAddress(grpcAddress, new GrpcChannelOptions
    {
        LoggerFactory = options.LoggerFactory,
        HttpHandler = new SocketsHttpHandler
        {
            ConnectTimeout = options.GrpcTimeout,
            // Pings keep a quiet watch stream alive through NATs and notice a dead GNS.
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            EnableMultipleHttp2Connections = true,
        },
        DisposeHttpClient = true,
    });

    /// <summary>Number of records in the cache (for tests and diagnostics).</summary>
    internal int CachedCount => _cache?.Count ?? 0;

    /// <summary>
    /// Runs the datagram form of a request; when the GNS is unreachable over UDP or the reply does not
    /// fit a datagram, and gRPC is configured, runs the gRPC form instead.
    /// </summary>
    private async Task<T> WithGrpcFallbackAsync<T>(Func<Task<T>> udp, Func<Task<T>> grpc)
    {
        try
        {
            return await udp().ConfigureAwait(false);
        }
        catch (GnsException e) when (e.Code is GnsErrorCode.Unavailable or GnsErrorCode.TooLarge && GrpcAddress is not null && _disposed == 0)
        {
            GnsClientLog.FallingBackToGrpc(_logger, Server, GrpcAddress);
            try
            {
                return await grpc().ConfigureAwait(false);
            }
            catch (GnsException g) when (g.Code == GnsErrorCode.Unavailable && e.Code == GnsErrorCode.Unavailable)
            {
                throw new GnsException(GnsErrorCode.Unavailable, $"{e.Message}; {g.Message}", g);
            }
        }
    }

    private void Remember(GnsRecord record, ulong storedVersion)
    {
        if (storedVersion == record.Version)
        {
            _cache?.Set(record);
        }
        else
        {
            _cache?.Remove(record.Guid);
        }
    }

    private static void RequireVerified(GnsRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (!record.Verify())
        {
            throw new ArgumentException("The record does not verify (GUID, key or signature); the GNS would refuse it.", nameof(record));
        }
    }

    /// <summary>Null when <paramref name="record"/> is verified and is the one asked for; otherwise why not.</summary>
    private static string? Check(GnsRecord? record, HostGuid? guid, string? name)
    {
        if (record is null)
        {
            return "no record in the reply";
        }

        if (!record.Verify())
        {
            return $"the record claiming {record.Guid} fails verification (key hash or signature)";
        }

        if (guid is { } expected && record.Guid != expected)
        {
            return $"the record is for {record.Guid}, not {expected}";
        }

        if (name is not null && record.Name != name)
        {
            return $"the record of {record.Guid} is named '{record.Name}', not '{name}'";
        }

        return null;
    }

    /// <summary>Text from a peer, made safe for one log or terminal line.</summary>
    internal static string Printable(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return "";
        }

        return string.Create(text.Length, text, static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                span[i] = char.IsControl(source[i]) ? '?' : source[i];
            }
        });
    }
}
