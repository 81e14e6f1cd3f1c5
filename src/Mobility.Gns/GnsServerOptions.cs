using System.Net;
using Microsoft.Extensions.Options;
using Mobility.Net.EndPoints;
using Mobility.Net.RateLimiting;

namespace Mobility.Gns;

/// <summary>
/// Settings of the GNS server, bound from configuration section <c>Gns</c> (appsettings.json,
/// environment variables <c>GNS_Gns__Udp=...</c>, command-line flags of <c>gns serve</c>) and
/// validated when the host starts. Every limit says why it has the default it has.
/// </summary>
public sealed class GnsServerOptions
{
    public const string SectionName = "Gns";

    /// <summary>Store kind: records in SQLite under <see cref="DataDirectory"/>.</summary>
    public const string SqliteStore = "sqlite";

    /// <summary>Store kind: records in memory only, lost at exit (tests, throw-away servers).</summary>
    public const string MemoryStore = "memory";

    /// <summary>Store kind: records in Redis (section <c>Gns:Redis</c>), shared by several GNS processes.</summary>
    public const string RedisStore = "redis";

    /// <summary>Default UDP endpoint: loopback only, so a fresh install serves nobody else until configured.</summary>
    public const string DefaultUdp = "127.0.0.1:7353";

    /// <summary>
    /// UDP endpoint of the datagram protocol, <c>IP:PORT</c> or <c>[IPv6]:PORT</c>; port 0 picks a free
    /// port; <c>[::]</c> serves IPv4 and IPv6. Empty or "off" turns the datagram endpoint off. 7353 is "7" + DNS's 53, next to nothing registered.
    /// </summary>
    public string Udp { get; set; } = DefaultUdp;

    /// <summary>
    /// A second UDP endpoint that answers only Reflect datagrams (docs/protocol.md, "Reflect"), so that hosts can tell
    /// how their NAT maps and filters (RFC 5780): <c>IP:PORT</c> on the address of <see cref="Udp"/> (or the same
    /// wildcard), another port; port 0 picks one. Empty or "off" (the default) turns it off; Reflect datagrams to
    /// <see cref="Udp"/> are still answered, with "no other port".
    /// </summary>
    public string UdpReflect { get; set; } = "";

    /// <summary>"sqlite" (durable, the default), "memory", or "redis" (registered by the host through AddRedisGnsStore).</summary>
    public string Store { get; set; } = SqliteStore;

    /// <summary>Folder of the SQLite database; relative paths are taken from the current directory.</summary>
    public string DataDirectory { get; set; } = "./gns-data";

    /// <summary>
    /// Longest TTL a record may ask resolvers to cache it for. A day: a host that moves must be able to
    /// count on caches forgetting its old address within a bounded time, and a day still lets a host
    /// that never moves stay cached.
    /// </summary>
    public TimeSpan MaxTtl { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// How far in the future a record's or removal's issue time may be. Five minutes tolerates badly
    /// synchronised clocks (Kerberos uses the same) while refusing records dated far ahead.
    /// </summary>
    public TimeSpan MaxClockSkew { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>GUIDs returned by a reverse lookup that does not ask for a number. 64 fills most of a padded datagram reply.</summary>
    public int ReverseDefaultLimit { get; set; } = 64;

    /// <summary>Most GUIDs one reverse lookup returns (HTTP/gRPC; datagrams are limited further by their size). Bounds the work of one request.</summary>
    public int ReverseMaxLimit { get; set; } = 1000;

    /// <summary>
    /// Sustained datagram requests per second from one source IP (IPv6: one /64). One host needs a
    /// few per new connection and one per address change; 200/s leaves room for the many hosts that
    /// share one address behind a NAT, and still caps what one spoofed or misbehaving source costs.
    /// Load tests from one address raise it.
    /// </summary>
    public double RequestsPerSecond { get; set; } = 200;

    /// <summary>Datagram requests one source IP may send at once before the rate applies: a host resolving a page of peers.</summary>
    public int Burst { get; set; } = 400;

    /// <summary>
    /// A rate-limited source receives at most one RateLimited reply per this interval; other excess
    /// datagrams are dropped silently, so the limiter cannot be used to reflect traffic.
    /// </summary>
    public TimeSpan RateLimitedReplyInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Source IPs tracked by the rate limiter. 65,536 buckets cost a few megabytes; beyond that, idle
    /// buckets are evicted and, when none is idle, new sources share one overflow bucket, so a flood from
    /// spoofed addresses can neither grow memory nor evict the buckets of busy sources.
    /// </summary>
    public int MaxRateLimitedSources { get; set; } = 65_536;

    /// <summary>
    /// Datagram updates and removals being verified and stored at once. 256 keeps the store's queue
    /// full for group commits while bounding the memory held by waiting requests (256 x 1.2 KB);
    /// beyond it, updates are answered Unavailable and the client retries.
    /// </summary>
    public int MaxInFlightUpdates { get; set; } = 256;

    /// <summary>Concurrent receive loops on the UDP socket; 0 means one per processor.</summary>
    public int UdpReceiveLoops { get; set; }

    /// <summary>GUIDs one watch may name. 256 covers the peers of a busy host; memory per watch is bounded by it.</summary>
    public int MaxWatchGuids { get; set; } = 256;

    /// <summary>Watches open at once on this server. Each holds at most <see cref="MaxWatchGuids"/> pending events.</summary>
    public int MaxWatches { get; set; } = 10_000;

    /// <summary>
    /// Connections one source address may hold open at once on the stream endpoint (the TLS endpoint of <c>gns serve
    /// --tls-listen</c>, docs/protocol.md, "GNS over TLS"); a connection beyond it is closed at once. A host needs one.
    /// </summary>
    public int StreamMaxConnectionsPerSource { get; set; } = 8;

    /// <summary>Connections open at once on the stream endpoint, from all sources; a connection beyond it is closed at once.</summary>
    public int StreamMaxConnections { get; set; } = 10_000;

    /// <summary>
    /// Longest time a stream connection may take to deliver its next whole message (from the connect, then from the
    /// previous message) or to take a reply: a silent or slow-dripping connection is closed after it.
    /// </summary>
    public TimeSpan StreamIdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The datagram endpoint's per-source limits (answers RateLimited once per <see cref="RateLimitedReplyInterval"/>).</summary>
    public SourceRateLimits ToRateLimits() => new(RequestsPerSecond, Burst, MaxRateLimitedSources, RateLimitedReplyInterval);
    /// <summary>Bounds of the reverse index (section <c>Gns:Claims</c>); docs/protocol.md, "Address claims".</summary>
    public Claims.ClaimLimits Claims { get; set; } = new();

    /// <summary>
    /// The option <see cref="Udp"/> came from, named in its errors (a bad value, a failed bind):
    /// <c>Gns:Udp (--udp)</c> for <c>gns serve</c>; a host that embeds the GNS names its own.
    /// </summary>
    public string UdpOptionName { get; set; } = "Gns:Udp (--udp)";

    /// <summary>The option <see cref="UdpReflect"/> came from, named in its errors.</summary>
    public string UdpReflectOptionName { get; set; } = "Gns:UdpReflect (--udp-reflect)";

    /// <summary>The reflect endpoint parsed, or null when it is off (empty or "off").</summary>
    public IPEndPoint? UdpReflectEndPoint => EndPointSetting.Parse(UdpReflect, UdpReflectOptionName);

    /// <summary>The UDP endpoint parsed, or null when the datagram endpoint is off (empty or "off").</summary>
    public IPEndPoint? UdpEndPoint => EndPointSetting.Parse(Udp, UdpOptionName);
}

/// <summary>Checks <see cref="GnsServerOptions"/> when the host starts (ValidateOnStart).</summary>
public sealed class GnsServerOptionsValidator : IValidateOptions<GnsServerOptions>
{
    public ValidateOptionsResult Validate(string? name, GnsServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (!EndPointSetting.TryParse(options.Udp, options.UdpOptionName, out _, out var udpError))
        {
            failures.Add(udpError);
        }

        if (!EndPointSetting.TryParse(options.UdpReflect, options.UdpReflectOptionName, out var reflect, out var reflectError))
        {
            failures.Add(reflectError);
        }
        else if (reflect is not null && options.UdpEndPoint is null)
        {
            failures.Add($"{options.UdpReflectOptionName} needs the datagram endpoint ({options.UdpOptionName}).");
        }

        if (options.Store is not (GnsServerOptions.SqliteStore or GnsServerOptions.MemoryStore or GnsServerOptions.RedisStore))
        {
            failures.Add($"Gns:Store must be '{GnsServerOptions.SqliteStore}', '{GnsServerOptions.MemoryStore}' or '{GnsServerOptions.RedisStore}', not '{options.Store}'.");
        }

        if (options.Store == GnsServerOptions.SqliteStore && string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            failures.Add("Gns:DataDirectory is required for the sqlite store.");
        }

        Check(failures, options.MaxTtl > TimeSpan.Zero && options.MaxTtl.TotalSeconds <= uint.MaxValue, "Gns:MaxTtl must be positive and at most 2^32-1 seconds.");
        Check(failures, options.MaxClockSkew >= TimeSpan.Zero && options.MaxClockSkew <= TimeSpan.FromDays(1), "Gns:MaxClockSkew must be between 0 and 1 day.");
        Check(failures, options.ReverseMaxLimit is >= 1 and <= 100_000, "Gns:ReverseMaxLimit must be between 1 and 100000.");
        Check(failures, options.ReverseDefaultLimit >= 1 && options.ReverseDefaultLimit <= options.ReverseMaxLimit, "Gns:ReverseDefaultLimit must be between 1 and Gns:ReverseMaxLimit.");
        Check(failures, options.RequestsPerSecond > 0 && double.IsFinite(options.RequestsPerSecond), "Gns:RequestsPerSecond must be positive.");
        Check(failures, options.Burst is >= 1 and <= 1_000_000, "Gns:Burst must be between 1 and 1000000.");
        Check(failures, options.RateLimitedReplyInterval > TimeSpan.Zero, "Gns:RateLimitedReplyInterval must be positive.");
        Check(failures, options.MaxRateLimitedSources is >= 1 and <= 16_777_216, "Gns:MaxRateLimitedSources must be between 1 and 16777216.");
        Check(failures, options.MaxInFlightUpdates is >= 1 and <= 65_536, "Gns:MaxInFlightUpdates must be between 1 and 65536.");
        Check(failures, options.UdpReceiveLoops is >= 0 and <= 256, "Gns:UdpReceiveLoops must be between 0 and 256.");
        Check(failures, options.MaxWatchGuids is >= 1 and <= 65_536, "Gns:MaxWatchGuids must be between 1 and 65536.");
        Check(failures, options.StreamMaxConnectionsPerSource is >= 1 and <= 65_536, "Gns:StreamMaxConnectionsPerSource must be between 1 and 65536.");
        Check(failures, options.StreamMaxConnections is >= 1 and <= 1_000_000, "Gns:StreamMaxConnections must be between 1 and 1000000.");
        Check(failures, options.StreamIdleTimeout > TimeSpan.Zero && options.StreamIdleTimeout <= TimeSpan.FromDays(1), "Gns:StreamIdleTimeout must be positive and at most 1 day.");
        Check(failures, options.MaxWatches is >= 1 and <= 1_000_000, "Gns:MaxWatches must be between 1 and 1000000.");
        try
        {
            options.Claims.Validate();
        }
        catch (ArgumentException e)
        {
            failures.Add("Gns:Claims: " + e.Message);
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void Check(List<string> failures, bool ok, string message)
    {
        if (!ok)
        {
            failures.Add(message);
        }
    }
}
