using System.Net;
using Mobility.Net.EndPoints;

namespace Mobility.Daemon;

/// <summary>
/// Settings of mobilityd, bound from the root of the configuration (appsettings.json, environment
/// variables <c>MOBILITYD_StateDir=...</c>, flags such as <c>--state-dir</c>) and validated at start
/// by <see cref="MobilitydOptionsValidator"/>. Every limit says why it has its default.
/// </summary>
public sealed class MobilitydOptions
{
    /// <summary>UDP port of the control endpoint (verify_self), on every host. Next to the GNS's 73xx ports.</summary>
    public const int DefaultControlPort = 7390;

    /// <summary>Port of the mobile transport, published in every Host locator.</summary>
    public const int DefaultTransportPort = 7391;

    /// <summary>Loopback HTTP/JSON endpoint (HTTP/1.1).</summary>
    public const string DefaultHttp = "127.0.0.1:7392";

    /// <summary>Loopback gRPC endpoint (HTTP/2 cleartext, prior knowledge): Kestrel speaks only one of HTTP/1.1 and h2c on a plaintext endpoint.</summary>
    public const string DefaultGrpc = "127.0.0.1:7393";

    /// <summary>The system-wide socket (systemd RuntimeDirectory=mobility).</summary>
    public const string DefaultSocket = "/run/mobility/mobilityd.sock";

    /// <summary>Value that turns an endpoint off (Http, Grpc, Socks, Socket, GrpcSocket).</summary>
    public const string Off = EndPointSetting.Off;

    /// <summary>Default <see cref="EmbeddedGnsUdp"/>: every address, IPv4 and IPv6 (0.0.0.0 where the kernel has no IPv6).</summary>
    public const string DefaultEmbeddedGnsUdp = "[::]:7353";

    /// <summary>Folder of the host key, the state files and the embedded GNS.</summary>
    public string StateDir { get; set; } = "/var/lib/mobility";

    /// <summary>
    /// The GNS datagram endpoint: IP:PORT, [IPv6]:PORT, NAME:PORT or NAME (port 7353), or several of them
    /// separated by commas, tried like Happy Eyeballs when the daemon starts (<see cref="GnsServers.GnsServerSelector"/>).
    /// Required unless <see cref="EmbeddedGns"/> (then it is ignored).
    /// </summary>
    public string? Gns { get; set; }

    /// <summary>The GNS gRPC base address (http://IP:PORT/), for watches and large replies; optional.</summary>
    public string? GnsGrpc { get; set; }

    /// <summary>
    /// DNS server(s), IP:PORT comma-separated, that resolve the names of <see cref="Gns"/> (A and AAAA, with their TTL);
    /// empty: the nameservers of /etc/resolv.conf, then the system's resolver (<see cref="GnsServers.GnsNameResolver"/>).
    /// </summary>
    public string? GnsResolver { get; set; }

    /// <summary>
    /// The GNS's TLS endpoint (<c>gns serve --tls-listen</c>), <c>tls://IP:PORT</c>, for networks that let only HTTPS out
    /// (docs/protocol.md, "GNS over TLS"): the same requests, length-prefixed, over TLS checked against <see cref="GnsPin"/>.
    /// Used as UDP's fallback (a request whose first datagram got no answer is sent again over TLS, and requests stay on
    /// TLS until a reply comes over UDP again or the host's addresses change), or for every request with <see cref="GnsTlsOnly"/>.
    /// </summary>
    public string? GnsTls { get; set; }

    /// <summary>SHA-256 fingerprint(s) of the certificates accepted from <see cref="GnsTls"/>, comma-separated, as <see cref="RelayPin"/>.</summary>
    public string? GnsPin { get; set; }

    /// <summary>Every GNS request over <see cref="GnsTls"/>; no datagram to <see cref="Gns"/>.</summary>
    public bool GnsTlsOnly { get; set; }

    internal const string GnsTlsOption = "GnsTls (--gns-tls)";
    internal const string GnsPinOption = "GnsPin (--gns-pin)";

    /// <summary>The endpoint of <see cref="GnsTls"/>, or null when it is not set (after validation).</summary>
    public IPEndPoint? GnsTlsEndPoint => string.IsNullOrWhiteSpace(GnsTls) ? null
        : EndPointParser.Parse(GnsTls.Trim().StartsWith(RelayTlsScheme, StringComparison.OrdinalIgnoreCase) ? GnsTls.Trim()[RelayTlsScheme.Length..] : GnsTls.Trim());

    /// <summary>The pins of <see cref="GnsPin"/> (after validation).</summary>
    public IReadOnlyList<byte[]> GnsPins => [.. RelayEntries(GnsPin).Select(p => global::Mobility.Net.Tls.CertificatePins.Parse(p)!)];

    /// <summary>Runs a GNS inside the daemon on a SQLite store in &lt;StateDir&gt;/gns and uses it.</summary>
    public bool EmbeddedGns { get; set; }

    /// <summary>
    /// UDP endpoint of the embedded GNS (with <see cref="EmbeddedGns"/>). Public by default, so that
    /// other hosts can use this daemon's GNS; the daemon itself talks to it over loopback.
    /// </summary>
    public string EmbeddedGnsUdp { get; set; } = DefaultEmbeddedGnsUdp;

    /// <summary>Unix socket path; empty picks the default (see <see cref="DefaultSocket"/>); "off" disables it.</summary>
    public string? Socket { get; set; }

    /// <summary>Group (name or number) given to the socket, which is mode 0660; empty keeps the daemon's group.</summary>
    public string? SocketGroup { get; set; }

    /// <summary>Loopback TCP endpoint of the HTTP/JSON API (HTTP/1.1); "off" disables it.</summary>
    public string Http { get; set; } = DefaultHttp;

    /// <summary>Loopback TCP endpoint of the gRPC API (h2c; it serves the HTTP/JSON routes too, over HTTP/2); "off" disables it.</summary>
    public string Grpc { get; set; } = DefaultGrpc;

    /// <summary>
    /// Unix socket of the gRPC API (h2c). Empty: beside <see cref="Socket"/>, named mobilityd-grpc.sock
    /// (&lt;name&gt;-grpc&lt;ext&gt;); "off" disables it. Same mode, group and caller checks as the main socket.
    /// </summary>
    public string? GrpcSocket { get; set; }

    /// <summary>
    /// Control endpoints (IP:PORT). Empty: <see cref="ControlPort"/> on each of the host's addresses
    /// when they are fixed (following changes), otherwise on 0.0.0.0 and [::].
    /// </summary>
    public string[] Control { get; set; } = [];

    /// <summary>Port of the control endpoint when <see cref="Control"/> is empty.</summary>
    public int ControlPort { get; set; } = DefaultControlPort;

    /// <summary>Fixed host addresses (like --address); empty follows the interfaces.</summary>
    public string[] Addresses { get; set; } = [];

    /// <summary>Publish loopback addresses found on interfaces (they are never reachable from other hosts).</summary>
    public bool AllowLoopback { get; set; }

    /// <summary>Publish link-local addresses found on interfaces (169.254/16, fe80::/10).</summary>
    public bool AllowLinkLocal { get; set; }

    /// <summary>Port of the mobile transport carried by every Host locator.</summary>
    public int TransportPort { get; set; } = DefaultTransportPort;

    /// <summary>
    /// Endpoint of the mobile transport listener (IP:PORT; port 0 picks one, and that one is published).
    /// Empty: <see cref="TransportPort"/> on the host's first address when the addresses are fixed
    /// (moving with them), otherwise on [::] serving IPv4 and IPv6 (0.0.0.0 where the kernel has no IPv6).
    /// [::] always serves both families; only the families a listener serves are published.
    /// </summary>
    public string? Transport { get; set; }

    /// <summary>
    /// Home relays, comma-separated <c>IP:PORT</c> (docs/nat.md, "Relays"): the daemon registers at the first
    /// that accepts it, publishes it as a Relay locator, and moves to the next when its relay dies. Empty: none.
    /// <c>tls://IP:PORT</c> speaks TLS to a relay's <c>--tls-listen</c> endpoint, checked against <see cref="RelayPin"/>.
    /// </summary>
    public string? Relay { get; set; }

    internal const string RelayOption = "Relay (--relay)";

    /// <summary>The prefix of a <see cref="Relay"/> entry reached over TLS.</summary>
    public const string RelayTlsScheme = "tls://";

    /// <summary>
    /// SHA-256 fingerprints of the certificates accepted from <c>tls://</c> relays, comma-separated, 64 hex digits
    /// each (colons allowed, as <c>openssl x509 -noout -fingerprint -sha256</c> prints them). Needed with a <c>tls://</c> relay.
    /// </summary>
    public string? RelayPin { get; set; }

    internal const string RelayPinOption = "RelayPin (--relay-pin)";

    /// <summary>The relays of <see cref="Relay"/>, in order (after validation).</summary>
    public IReadOnlyList<RelayTarget> RelayTargets
        => [.. RelayEntries(Relay).Select(e => e.StartsWith(RelayTlsScheme, StringComparison.OrdinalIgnoreCase)
            ? new RelayTarget(EndPointParser.Parse(e[RelayTlsScheme.Length..]), Tls: true)
            : new RelayTarget(EndPointParser.Parse(e), Tls: false))];

    /// <summary>The pins of <see cref="RelayPin"/> (after validation).</summary>
    public IReadOnlyList<byte[]> RelayPins
        => [.. RelayEntries(RelayPin).Select(p => global::Mobility.Transport.Relay.PinnedTlsFlowFactory.ParsePin(p)!)];

    internal static string[] RelayEntries(string? list) => (list ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>The SOCKS5 endpoint for unmodified applications (loopback: whoever reaches it uses this host's identity); empty or "off" disables it.</summary>
    public string? Socks { get; set; } = DefaultSocks;

    /// <summary>Default <see cref="Socks"/>: the usual SOCKS port, on loopback.</summary>
    public const string DefaultSocks = "127.0.0.1:1080";

    public Forwarding.ForwardingOptions Forwarding { get; set; } = new();

    /// <summary>Transparent mode: DNS stub, virtual addresses, TCP interception (docs/transparent.md).</summary>
    public Transparent.TransparentOptions Transparent { get; set; } = new();

    /// <summary>Name bound to the GUID in the GNS (one DNS label), or none.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// Allow SetAddresses over the loopback TCP endpoint. Off: on TCP the caller's user is unknown, so
    /// state changes go through the Unix socket, where SO_PEERCRED names the caller.
    /// </summary>
    public bool AllowStateChangesOverTcp { get; set; }

    // --- Local access (localtrust) ---
    /// <summary>
    /// Who may use the local surfaces (SOCKS5, HTTP/JSON, gRPC, the Unix sockets) and so act as this
    /// host: root, the daemon's user and the members of its group and of <see cref="SocketGroup"/>
    /// always; these lists (LocalAccess:Users, LocalAccess:Groups) add users and groups.
    /// </summary>
    public Access.LocalAccessOptions LocalAccess { get; set; } = new();
    // --- end of local access ---

    public AddressWatchOptions AddressWatch { get; set; } = new();

    public RecordOptions Record { get; set; } = new();

    public ChallengeOptions Challenge { get; set; } = new();

    public ControlLimits ControlLimits { get; set; } = new();

    /// <summary>NAT discovery against the GNS endpoints of <see cref="Gns"/> (docs/nat.md, "NAT discovery").</summary>
    public Nat.NatOptions Nat { get; set; } = new();

    /// <summary>Known peers kept for the hosts file and status. Bounded: lookups are caused by local callers, but still unbounded otherwise.</summary>
    public int MaxKnownPeers { get; set; } = 1024;

    /// <summary>
    /// How often the C heap's free pages go back to the kernel (glibc <c>malloc_trim</c>, <see cref="Internal.NativeHeapTrimmer"/>);
    /// zero turns it off. Without it the malloc arenas keep what the runtime freed and the daemon's memory
    /// creeps up with every move (docs/benchmarks.md, "Faults lose nothing"). A minute bounds that creep to
    /// one minute's churn; a trim walks each arena once, under that arena's lock.
    /// </summary>
    public TimeSpan NativeHeapTrimInterval { get; set; } = TimeSpan.FromMinutes(1);

    // Each endpoint option parsed (validated at start), beside the name its errors give (a bad value, a failed bind).
    internal const string GnsOption = "Gns (--gns)";

    /// <summary>The GNS endpoints, or null when none is set.</summary>
    public GnsServers.GnsServerList? GnsServerList => string.IsNullOrWhiteSpace(Gns) ? null
        : GnsServers.GnsServerList.TryParse(Gns, out var list, out var error) ? list : throw new FormatException($"{GnsOption}: {error}.");

    internal const string GnsResolverOption = "GnsResolver (--gns-resolver)";

    /// <summary>The DNS servers of <see cref="GnsResolver"/> (empty when not set).</summary>
    public IReadOnlyList<IPEndPoint> GnsResolverEndPoints => [.. (GnsResolver ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(e => EndPointSetting.Parse(e, GnsResolverOption) ?? throw new FormatException($"{GnsResolverOption}: 'off' is not a DNS server."))];

    internal const string HttpOption = "Http (--http)";

    /// <summary>The HTTP/JSON endpoint, or null when off.</summary>
    public IPEndPoint? HttpEndPoint => EndPointSetting.Parse(Http, HttpOption);

    internal const string GrpcOption = "Grpc (--grpc)";

    /// <summary>The gRPC endpoint, or null when off.</summary>
    public IPEndPoint? GrpcEndPoint => EndPointSetting.Parse(Grpc, GrpcOption);

    internal const string SocksOption = "Socks (--socks)";

    /// <summary>The SOCKS5 endpoint, or null when off.</summary>
    public IPEndPoint? SocksEndPoint => EndPointSetting.Parse(Socks, SocksOption);

    internal const string TransportOption = "Transport (--transport)";

    /// <summary>The configured transport endpoint, or null for the default (see <see cref="Transport"/>).</summary>
    public IPEndPoint? TransportEndPoint => EndPointSetting.Parse(Transport, TransportOption);

    /// <summary>Named in errors about <see cref="EmbeddedGnsUdp"/> (the embedded GNS parses and binds it).</summary>
    internal const string EmbeddedGnsUdpOption = "EmbeddedGnsUdp (--embedded-gns-udp)";

    internal const string ControlOption = "Control (--control)";

    /// <summary>The fixed addresses parsed (also "a,b" in one element, as environment variables give).</summary>
    public IReadOnlyList<IPAddress> ParsedAddresses()
        => Addresses.SelectMany(a => a.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Select(a => Protocol.Records.Locator.Normalize(IPAddress.Parse(a)))
            .Distinct()
            .ToArray();

    public IReadOnlyList<IPEndPoint> ParsedControl()
        => Control.SelectMany(a => a.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Select(c => EndPointSetting.Parse(c, ControlOption, emptyIsOff: false) ?? throw new FormatException($"{ControlOption} cannot be \"off\"."))
            .ToArray();

    /// <summary>
    /// The Unix socket path: the configured one, or the system default when its folder is writable
    /// (root, or under systemd), else $XDG_RUNTIME_DIR/mobilityd.sock. Null when turned off.
    /// </summary>
    public string? ResolveSocketPath()
    {
        if (string.Equals(Socket, Off, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        if (!string.IsNullOrWhiteSpace(Socket))
        {
            return Path.GetFullPath(Socket);
        }

        var folder = Path.GetDirectoryName(DefaultSocket)!;
        if (Environment.UserName == "root" || IsWritable(folder))
        {
            return DefaultSocket;
        }

        var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        return string.IsNullOrEmpty(runtime) ? Path.Combine(Path.GetTempPath(), $"mobilityd-{Environment.UserName}.sock") : Path.Combine(runtime, "mobilityd.sock");
    }

    /// <summary>The gRPC socket path, or null when off (or when the main socket is off and none is configured).</summary>
    public string? ResolveGrpcSocketPath()
    {
        if (string.Equals(GrpcSocket, Off, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        if (!string.IsNullOrWhiteSpace(GrpcSocket))
        {
            return Path.GetFullPath(GrpcSocket);
        }

        return ResolveSocketPath() is { } main
            ? Path.Combine(Path.GetDirectoryName(main)!, Path.GetFileNameWithoutExtension(main) + "-grpc" + Path.GetExtension(main))
            : null;
    }

    private static bool IsWritable(string folder)
    {
        if (!Directory.Exists(folder))
        {
            return false;
        }

        try
        {
            var probe = Path.Combine(folder, $".probe-{Environment.ProcessId}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}

/// <summary>How the daemon learns that the host's addresses changed.</summary>
public sealed class AddressWatchOptions
{
    /// <summary>
    /// Re-reads the interfaces this often even without an OS event, as a safety net for changes that
    /// raise none (Tailscale users' complaint). 10 s bounds the stall of a missed event.
    /// </summary>
    public TimeSpan RecheckInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Wait after a change before publishing, so a burst of events (an interface going down and up,
    /// DHCP adding several addresses) yields one update. 5 ms keeps the update well inside 100 ms.
    /// </summary>
    public TimeSpan Debounce { get; set; } = TimeSpan.FromMilliseconds(5);
}

/// <summary>The host's own GNS record.</summary>
public sealed class RecordOptions
{
    /// <summary>TTL resolvers may cache the record for. 60 s: a moved host is found again within a minute even when a watch is missed.</summary>
    public uint TtlSeconds { get; set; } = 60;

    /// <summary>The record is re-published when this fraction of its TTL has passed, so it never runs out.</summary>
    public double RefreshFraction { get; set; } = 0.5;

    /// <summary>First retry delay after the GNS refused or did not answer; doubles up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Cap of the retry delay (with jitter), so an unreachable GNS is retried every few seconds and no faster.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Publish the reflexive address the GNS reports as an Observed locator when it is not one of ours (NAT).</summary>
    public bool PublishObserved { get; set; } = true;

    /// <summary>How long SetAddresses waits for the new record to be stored before answering (the change still goes on after).</summary>
    public TimeSpan SetAddressesWait { get; set; } = TimeSpan.FromSeconds(2);
}

/// <summary>The challenger (peer certification).</summary>
public sealed class ChallengeOptions
{
    /// <summary>Control port challenged when the caller gives none (every mobilityd's default).</summary>
    public int Port { get; set; } = MobilitydOptions.DefaultControlPort;

    /// <summary>Wait for a response before re-sending. 250 ms is many LAN round trips and one long intercontinental one.</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Requests sent per challenge (first plus retransmissions) before the verdict is "timeout".</summary>
    public int Attempts { get; set; } = 3;

    /// <summary>A positive verdict is reused this long: a host that just proved itself need not again for every connection.</summary>
    public TimeSpan PositiveCacheTime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A negative verdict is reused this long only, so a host that just arrived is verified soon.</summary>
    public TimeSpan NegativeCacheTime { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Challenges outstanding at once; more are refused ("busy"). Bounds the nonce table.</summary>
    public int MaxOutstanding { get; set; } = 1024;

    /// <summary>Verdicts cached at once; the oldest are dropped beyond it.</summary>
    public int MaxCachedVerdicts { get; set; } = 4096;

    /// <summary>Claims one get_guid_from_ip checks at most (the GNS index may list many GUIDs for a shared address).</summary>
    public int MaxReverseCandidates { get; set; } = 32;

    /// <summary>Require the responder's signed reached-at address to be the challenged address (refuses relayed answers; off only behind NAT).</summary>
    public bool RequireReachedAtMatch { get; set; } = true;
}

/// <summary>Limits of the control endpoint, against floods and reflection.</summary>
public sealed class ControlLimits
{
    /// <summary>Challenges answered per second per source IP. 20/s is far above what a peer needs (one per new path).</summary>
    public double RequestsPerSecond { get; set; } = 20;

    /// <summary>Challenges a source may send at once before the rate applies.</summary>
    public int Burst { get; set; } = 40;

    /// <summary>
    /// Sources tracked (an IPv4 address, or an IPv6 /64); beyond it idle ones are evicted and new ones
    /// share one overflow bucket.
    /// </summary>
    public int MaxTrackedSources { get; set; } = 4096;

    /// <summary>The shared limiter's settings: no "rate limited" answer (the challenge protocol has none; excess is dropped).</summary>
    public SourceRateLimits ToRateLimits() => new()
    {
        RequestsPerSecond = RequestsPerSecond,
        Burst = Burst,
        MaxSources = MaxTrackedSources,
        ReplyInterval = null,
    };
}

/// <summary>One home relay of <c>--relay</c>: its endpoint, and whether it is reached over TLS (<c>tls://</c>).</summary>
public sealed record RelayTarget(IPEndPoint EndPoint, bool Tls)
{
    public override string ToString() => Tls ? MobilitydOptions.RelayTlsScheme + EndPoint : EndPoint.ToString();
}
