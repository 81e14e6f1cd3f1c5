using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mobility.Gns.Client;

/// <summary>
/// Settings of a <see cref="GnsClient"/>. Every limit has a default whose reason is written beside it;
/// <see cref="Validate"/> runs in the client's constructor.
/// </summary>
public sealed class GnsClientOptions
{
    /// <summary>The GNS datagram port (the server's default).</summary>
    public const int DefaultUdpPort = 7353;

    /// <summary>The GNS gRPC (HTTP/2 cleartext) port (the server's default).</summary>
    public const int DefaultGrpcPort = 7381;

    /// <summary>Fraction by which a retransmission timeout is stretched at random, so clients that lost the GNS at the same moment do not retry in step.</summary>
    public const double RetransmitJitter = 0.25;

    /// <summary>The GNS datagram endpoint. Replies from any other address or port are dropped.</summary>
    public IPEndPoint Server { get; set; } = new(IPAddress.Loopback, DefaultUdpPort);

    /// <summary>
    /// The GNS gRPC base address (for example <c>http://127.0.0.1:7381</c>), or null. Needed for
    /// <see cref="GnsClient.WatchAsync"/>, for <see cref="GnsClient.UpdateAsync"/> with "must exist"
    /// semantics, and used as a fallback when a reply does not fit a datagram or UDP gets no answer.
    /// </summary>
    public Uri? GrpcAddress { get; set; }

    /// <summary>Most <see cref="Alternates"/>: a GNS has a handful of addresses (one per family), not a list to scan.</summary>
    public const int MaxAlternates = 15;

    /// <summary>
    /// Other addresses of the same GNS (typically its address of the other family), each with its gRPC address
    /// (set on all of them when <see cref="GrpcAddress"/> is set, on none when it is not). With alternates, the
    /// client sends each request to an address the host can route to now, moves to another one at once when a
    /// send finds no route, and chooses again whenever <see cref="GnsClient.NotifyLocalAddressChanged"/> is
    /// called: the candidates the host has a route to are raced (<see cref="GnsEndPointChoice"/>, the one in use
    /// first with a head start of <see cref="EndPointStagger"/>), and watches re-open on the winner at once.
    /// </summary>
    public IList<GnsEndPoint> Alternates { get; set; } = [];

    /// <summary>
    /// Head start of the preferred GNS address in a race between addresses before the next one is probed too:
    /// RFC 8305's recommended connection attempt delay.
    /// </summary>
    public TimeSpan EndPointStagger { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How long a race between GNS addresses may take; with no answer by then the client keeps the address it uses.</summary>
    public TimeSpan EndPointChoiceBudget { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Asks for the GNS's addresses again (the daemon: its <c>--gns</c> names resolved, A and AAAA), or null when they
    /// are fixed. Called at start, after every <see cref="GnsClient.NotifyLocalAddressChanged"/> and when the answer's
    /// TTL runs out (see <see cref="ResolveIntervalFor"/>); an answer that differs replaces <see cref="GnsClient.EndPoints"/>
    /// (at most <see cref="MaxAlternates"/> + 1 are kept) and the addresses in use are chosen again. With it, the
    /// datagram socket is dual-stack whatever family <see cref="Server"/> has.
    /// </summary>
    public Func<CancellationToken, Task<GnsResolution>>? Resolve { get; set; }

    /// <summary>Shortest time between two periodic resolutions: a TTL of 0 (or a few seconds) does not make the client query in a loop.</summary>
    public TimeSpan ResolveMinInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest time between two resolutions: a renumbered GNS is found within this whatever TTL its name had.</summary>
    public TimeSpan ResolveMaxInterval { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>Time between resolutions when the answer's TTL is not known (the system's resolver does not tell it).</summary>
    public TimeSpan ResolveInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>When to resolve again after an answer of <paramref name="ttl"/> (null: not known).</summary>
    public TimeSpan ResolveIntervalFor(TimeSpan? ttl)
    {
        var interval = ttl ?? ResolveInterval;
        return interval < ResolveMinInterval ? ResolveMinInterval : interval > ResolveMaxInterval ? ResolveMaxInterval : interval;
    }

    /// <summary>When to try again after <paramref name="failures"/> resolutions in a row answered nothing: 1 s, doubling, at most <see cref="ResolveMinInterval"/>.</summary>
    public TimeSpan ResolveRetryDelay(int failures)
    {
        var delay = TimeSpan.FromSeconds(1);
        for (var i = 1; i < failures && delay < ResolveMinInterval; i++)
        {
            delay *= 2;
        }

        return delay < ResolveMinInterval ? delay : ResolveMinInterval;
    }

    /// <summary>Whether the host can send to an address now; the kernel's answer (<see cref="GnsEndPointChoice.KernelHasRoute"/>), replaced in tests.</summary>
    public Func<IPEndPoint, bool> HasRoute { get; set; } = GnsEndPointChoice.KernelHasRoute;

    /// <summary>
    /// How long the first datagram attempt waits for its reply. Each retransmission doubles it (up to
    /// <see cref="MaxAttemptTimeout"/>), as DNS and CoAP resolvers do: a loaded GNS is not hammered.
    /// 500 ms is several loopback/LAN round trips and about two intercontinental ones.
    /// </summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Cap of one attempt's timeout after doubling.</summary>
    public TimeSpan MaxAttemptTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Datagram attempts per request (first send plus retransmissions) before the GNS is declared unreachable.</summary>
    public int Attempts { get; set; } = 4;

    /// <summary>Deadline of one gRPC call (not of a watch stream, which lives until cancelled).</summary>
    public TimeSpan GrpcTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Whether verified records are kept for their TTL.</summary>
    public bool CacheEnabled { get; set; } = true;

    /// <summary>Most records cached at once; a full cache drops expired entries first, then those closest to expiry. Bounds memory whatever a caller looks up.</summary>
    public int CacheMaxEntries { get; set; } = 4096;

    /// <summary>
    /// Longest time a record is served from the cache whatever TTL its owner chose, so a missed
    /// change cannot hide for days behind a huge TTL.
    /// </summary>
    public TimeSpan MaxCacheTtl { get; set; } = TimeSpan.FromHours(1);

    /// <summary>First delay before a watch stream is re-opened after it failed; doubles per failure.</summary>
    public TimeSpan WatchReconnectDelay { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Cap of the watch re-open delay (NATS uses a few seconds; a GNS restart takes about that long).</summary>
    public TimeSpan WatchMaxReconnectDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Most GUIDs one watch may follow; the request must stay small and the server bounds it too.</summary>
    public int MaxWatchGuids { get; set; } = 1024;

    /// <summary>
    /// The GNS's TLS endpoint (<c>gns serve --tls-listen</c>; docs/protocol.md, "GNS over TLS"), or null: the same
    /// datagrams, length-prefixed, over one TLS connection, for networks that let only HTTPS out. Its certificate
    /// must match one of <see cref="TlsPins"/>. How it is used: <see cref="TlsUse"/>.
    /// </summary>
    public IPEndPoint? TlsServer { get; set; }

    /// <summary>SHA-256 fingerprints (32 bytes each) of the certificates accepted from <see cref="TlsServer"/>; needed with it.</summary>
    public IReadOnlyList<byte[]> TlsPins { get; set; } = [];

    /// <summary>When requests go over <see cref="TlsServer"/> rather than UDP.</summary>
    public GnsTlsUse TlsUse { get; set; } = GnsTlsUse.Fallback;

    /// <summary>Longest time for the TCP connect and TLS handshake with <see cref="TlsServer"/>.</summary>
    public TimeSpan TlsConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    public ILoggerFactory LoggerFactory { get; set; } = NullLoggerFactory.Instance;

    /// <summary>The timeout of datagram attempt <paramref name="attempt"/> (0-based) before jitter.</summary>
    public TimeSpan AttemptTimeout(int attempt)
    {
        var timeout = RequestTimeout;
        for (var i = 0; i < attempt && timeout < MaxAttemptTimeout; i++)
        {
            timeout *= 2;
        }

        return timeout < MaxAttemptTimeout ? timeout : MaxAttemptTimeout;
    }

    /// <summary>The longest a datagram request waits in total (all attempts, jitter included) before it is declared unreachable.</summary>
    public TimeSpan MaxUdpWait
    {
        get
        {
            var total = TimeSpan.Zero;
            for (var i = 0; i < Attempts; i++)
            {
                total += AttemptTimeout(i) * (1 + RetransmitJitter);
            }

            return total;
        }
    }

    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    public void Validate()
    {
        if (Server is null)
        {
            throw new ArgumentException("Server must be set.", nameof(Server));
        }

        if (Server.Port is <= 0 or > ushort.MaxValue)
        {
            throw new ArgumentException($"Server port {Server.Port} is not a valid UDP port.", nameof(Server));
        }

        if (GrpcAddress is { } grpc && !IsHttp(grpc))
        {
            throw new ArgumentException($"GrpcAddress '{grpc}' must be an absolute http:// or https:// address.", nameof(GrpcAddress));
        }

        ValidateAlternates();
        Positive(ResolveMinInterval, nameof(ResolveMinInterval));
        Positive(ResolveInterval, nameof(ResolveInterval));
        if (ResolveMaxInterval < ResolveMinInterval)
        {
            throw new ArgumentException("ResolveMaxInterval must not be below ResolveMinInterval.", nameof(ResolveMaxInterval));
        }

        Positive(RequestTimeout, nameof(RequestTimeout));
        Positive(MaxAttemptTimeout, nameof(MaxAttemptTimeout));
        Positive(GrpcTimeout, nameof(GrpcTimeout));
        Positive(WatchReconnectDelay, nameof(WatchReconnectDelay));
        Positive(MaxCacheTtl, nameof(MaxCacheTtl));
        if (WatchMaxReconnectDelay < WatchReconnectDelay)
        {
            throw new ArgumentException("WatchMaxReconnectDelay must not be below WatchReconnectDelay.", nameof(WatchMaxReconnectDelay));
        }

        if (Attempts is < 1 or > 16)
        {
            throw new ArgumentException($"Attempts must be 1 to 16, not {Attempts}.", nameof(Attempts));
        }

        if (CacheMaxEntries < 1)
        {
            throw new ArgumentException("CacheMaxEntries must be positive.", nameof(CacheMaxEntries));
        }

        if (MaxWatchGuids < 1)
        {
            throw new ArgumentException("MaxWatchGuids must be positive.", nameof(MaxWatchGuids));
        }

        if (TlsServer is { } tls && (tls.Port is <= 0 or > ushort.MaxValue || TlsPins is null || TlsPins.Count == 0
            || TlsPins.Any(p => p is not { Length: 32 })))
        {
            throw new ArgumentException("TlsServer needs a valid port and TlsPins (SHA-256 fingerprints, 32 bytes each).", nameof(TlsPins));
        }

        Positive(TlsConnectTimeout, nameof(TlsConnectTimeout));
        if (TimeProvider is null || LoggerFactory is null)
        {
            throw new ArgumentException("TimeProvider and LoggerFactory must be set.");
        }
    }

    private void ValidateAlternates()
    {
        if (Alternates is null || Alternates.Count > MaxAlternates)
        {
            throw new ArgumentException($"Alternates must be set and hold at most {MaxAlternates} endpoints.", nameof(Alternates));
        }

        foreach (var alternate in Alternates)
        {
            if (alternate?.Udp is not { Port: > 0 and <= ushort.MaxValue })
            {
                throw new ArgumentException($"Alternate '{alternate}' has no valid datagram endpoint.", nameof(Alternates));
            }

            if ((alternate.Grpc is null) != (GrpcAddress is null))
            {
                throw new ArgumentException($"Alternate '{alternate}' must name a gRPC address exactly when GrpcAddress is set.", nameof(Alternates));
            }

            if (alternate.Grpc is { } grpc && !IsHttp(grpc))
            {
                throw new ArgumentException($"Alternate gRPC address '{grpc}' must be an absolute http:// or https:// address.", nameof(Alternates));
            }
        }

        Positive(EndPointStagger, nameof(EndPointStagger));
        Positive(EndPointChoiceBudget, nameof(EndPointChoiceBudget));
        if (HasRoute is null)
        {
            throw new ArgumentException("HasRoute must be set.", nameof(HasRoute));
        }
    }

    private static bool IsHttp(Uri uri) => uri.IsAbsoluteUri && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);

    /// <summary>The conventional gRPC address of a GNS whose datagram endpoint is <paramref name="udp"/>: same host, port <see cref="DefaultGrpcPort"/>.</summary>
    public static Uri DefaultGrpcAddressFor(IPEndPoint udp)
    {
        ArgumentNullException.ThrowIfNull(udp);
        return new Uri($"http://{new IPEndPoint(udp.Address, DefaultGrpcPort)}/");
    }

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{name} must be positive, not {value}.", name);
        }
    }
}

/// <summary>When a <see cref="GnsClient"/> with <see cref="GnsClientOptions.TlsServer"/> sends a request over TLS.</summary>
public enum GnsTlsUse
{
    /// <summary>
    /// UDP first; every retransmission of a request whose first datagram got no answer goes over TLS instead, and
    /// once a reply came over TLS while UDP was silent, later requests go over TLS at once until a reply comes over
    /// UDP again or the host's addresses change (<see cref="GnsClient.NotifyLocalAddressChanged"/>).
    /// </summary>
    Fallback,

    /// <summary>Every request over TLS; no datagram is sent.</summary>
    Always,
}
