using Microsoft.Extensions.Options;

namespace Mobility.Gns.Redis;

/// <summary>When the store asks Redis to confirm that a write reached the disk (WAITAOF, Redis 7.2+).</summary>
public enum RedisFsyncWait
{
    /// <summary>Never: rely on <c>appendfsync always</c>, under which Redis fsyncs before it replies.</summary>
    Never,

    /// <summary>Issue WAITAOF after each commit point where every master supports it (7.2+); otherwise behave like <see cref="Never"/>.</summary>
    IfSupported,

    /// <summary>Issue WAITAOF after each commit point; refuse to start when a master is older than 7.2.</summary>
    Always,
}

/// <summary>
/// Settings of the Redis store and change feed, bound from configuration section <c>Gns:Redis</c>
/// and validated when the host starts. See docs/redis.md for the key layout and the Redis settings
/// that make an acknowledged update survive SIGKILL.
/// </summary>
public sealed class RedisGnsOptions
{
    public const string SectionName = "Gns:Redis";

    /// <summary>
    /// A StackExchange.Redis configuration string: one or more <c>host:port</c> of a single server or
    /// of cluster nodes, plus options (<c>password=</c>, <c>ssl=true</c>, ...). Cluster mode is
    /// detected from the server.
    /// </summary>
    public string Configuration { get; set; } = "";

    /// <summary>
    /// Prefix of every key and channel, so that several GNS deployments (or tests) can share one Redis.
    /// Limited to <see cref="MaxKeyPrefixLength"/> characters without braces, which would break hash tags.
    /// </summary>
    public string KeyPrefix { get; set; } = "gns:";

    /// <summary>Longest <see cref="KeyPrefix"/>: keys stay short enough that Redis compares them cheaply.</summary>
    public const int MaxKeyPrefixLength = 64;

    /// <summary>
    /// How long a name claim made for an update in flight keeps other GUIDs away when the claiming
    /// process never finishes the update (it crashed between the claim and the record write). 30 s is
    /// far longer than an update takes (a few round trips), and short enough that a crashed server does
    /// not keep a name unavailable for long. An update that has not written its record within
    /// <see cref="ClaimWriteDeadline"/> of its claim gives up instead of writing.
    /// </summary>
    public TimeSpan ClaimLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// An update whose name claim is older than this (by the GNS process's clock) when it is about to
    /// write its record fails instead, so that it cannot write after its lease may have been taken
    /// over. Must be well under <see cref="ClaimLease"/>: the margin absorbs clock-rate differences and
    /// queueing between the check and the write. 10 s leaves 20 s of margin with the default lease.
    /// </summary>
    public TimeSpan ClaimWriteDeadline { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Whether to confirm each commit with WAITAOF (see <see cref="RedisFsyncWait"/>).</summary>
    public RedisFsyncWait FsyncWait { get; set; } = RedisFsyncWait.IfSupported;

    /// <summary>
    /// Replicas that must acknowledge each commit (WAIT, or the replica count of WAITAOF) before it
    /// completes; 0 does not wait for replicas. A write that is not acknowledged in time fails.
    /// </summary>
    public int ReplicaAcks { get; set; }

    /// <summary>How long WAIT/WAITAOF may block. 5 s: far beyond a healthy fsync or replication round trip.</summary>
    public TimeSpan DurabilityTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Refuse to start unless every master reports <c>appendonly yes</c> and <c>appendfsync always</c>
    /// (the settings under which no acknowledged update is lost on SIGKILL). Off by default because
    /// managed Redis services often disable CONFIG; the store then only logs what it found.
    /// </summary>
    public bool RequireDurableConfiguration { get; set; }

    /// <summary>
    /// Index entries a reverse lookup may examine, as a multiple of the requested limit (plus
    /// <see cref="ReverseScanSlack"/>). Stale entries are skipped and removed as they are met; the bound
    /// keeps one lookup's work finite when an address has accumulated many of them. 4x is plenty for
    /// an index that readers and writers keep clean.
    /// </summary>
    public int ReverseScanFactor { get; set; } = 4;

    /// <summary>Entries a reverse lookup may examine beyond <see cref="ReverseScanFactor"/> x limit. 256.</summary>
    public int ReverseScanSlack { get; set; } = 256;

    /// <summary>
    /// Channels of the change feed. On a cluster each is a sharded channel (SSUBSCRIBE) in its own hash
    /// slot, so publishing costs one shard instead of a broadcast over the cluster bus; 16 spreads the
    /// publish load over up to 16 masters while each GNS process holds only 16 subscriptions. On a
    /// single server one classic channel is used.
    /// </summary>
    public int ChangeChannels { get; set; } = 16;

    /// <summary>
    /// GUIDs whose state the in-process read cache holds (0 turns the cache off: every lookup is a Redis
    /// round trip). 65,536 as in the SQLite store: about 50 MB of records at the largest record size, far
    /// less for typical ones. The cache serves only while the change feed is live (see docs/redis.md).
    /// </summary>
    public int CacheCapacity { get; set; } = 65_536;

    /// <summary>
    /// Longest time a cached state is served without being read from Redis again. The change feed keeps
    /// entries current; this bounds how long a change that was committed but never published (its process
    /// died in between) can go unseen. 60 s: one extra round trip per hot GUID per minute.
    /// </summary>
    public TimeSpan CacheMaxAge { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How often the change feed publishes a probe on each of its channels and checks that it comes back,
    /// i.e. that its subscriptions still receive what other processes publish. 1 s: one small message per
    /// channel per second per process.
    /// </summary>
    public TimeSpan FeedProbeInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A probe not back within this time means the feed may have missed changes: the read cache is dropped
    /// and stays off until a probe comes back on every channel. 5 s: far above a pub/sub round trip even on
    /// a loaded machine, and the longest a silently broken subscription can leave the cache stale.
    /// </summary>
    public TimeSpan FeedProbeTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>Checks <see cref="RedisGnsOptions"/> when the host starts (ValidateOnStart).</summary>
public sealed class RedisGnsOptionsValidator : IValidateOptions<RedisGnsOptions>
{
    public ValidateOptionsResult Validate(string? name, RedisGnsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Check(options, requireConfiguration: true);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Every problem with <paramref name="options"/>; the connection string only when <paramref name="requireConfiguration"/>.</summary>
    public static IReadOnlyList<string> Check(RedisGnsOptions options, bool requireConfiguration)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Configuration))
        {
            if (requireConfiguration)
            {
                failures.Add("Gns:Redis:Configuration is required (host:port[,host:port...]).");
            }
        }
        else
        {
            try
            {
                StackExchange.Redis.ConfigurationOptions.Parse(options.Configuration);
            }
            catch (ArgumentException e)
            {
                failures.Add($"Gns:Redis:Configuration is not a valid Redis configuration string: {e.Message}");
            }
        }

        if (options.KeyPrefix is null || options.KeyPrefix.Length > RedisGnsOptions.MaxKeyPrefixLength
            || options.KeyPrefix.AsSpan().IndexOfAny('{', '}') >= 0)
        {
            failures.Add($"Gns:Redis:KeyPrefix must be at most {RedisGnsOptions.MaxKeyPrefixLength} characters without '{{' or '}}'.");
        }

        if (options.ClaimLease <= TimeSpan.Zero || options.ClaimLease > TimeSpan.FromHours(1))
        {
            failures.Add("Gns:Redis:ClaimLease must be positive and at most 1 hour.");
        }

        if (options.ClaimWriteDeadline <= TimeSpan.Zero || options.ClaimWriteDeadline * 2 > options.ClaimLease)
        {
            failures.Add("Gns:Redis:ClaimWriteDeadline must be positive and at most half of Gns:Redis:ClaimLease.");
        }

        if (!Enum.IsDefined(options.FsyncWait))
        {
            failures.Add("Gns:Redis:FsyncWait must be Never, IfSupported or Always.");
        }

        if (options.ReplicaAcks is < 0 or > 16)
        {
            failures.Add("Gns:Redis:ReplicaAcks must be between 0 and 16.");
        }

        if (options.DurabilityTimeout <= TimeSpan.Zero || options.DurabilityTimeout > TimeSpan.FromMinutes(1))
        {
            failures.Add("Gns:Redis:DurabilityTimeout must be positive and at most 1 minute.");
        }

        if (options.ReverseScanFactor is < 1 or > 1000 || options.ReverseScanSlack is < 0 or > 1_000_000)
        {
            failures.Add("Gns:Redis:ReverseScanFactor must be 1-1000 and Gns:Redis:ReverseScanSlack 0-1000000.");
        }

        if (options.ChangeChannels is < 1 or > 1024)
        {
            failures.Add("Gns:Redis:ChangeChannels must be between 1 and 1024.");
        }

        if (options.CacheCapacity is < 0 or > 100_000_000)
        {
            failures.Add("Gns:Redis:CacheCapacity must be between 0 (off) and 100000000.");
        }

        if (options.CacheMaxAge <= TimeSpan.Zero || options.CacheMaxAge > TimeSpan.FromDays(1))
        {
            failures.Add("Gns:Redis:CacheMaxAge must be positive and at most 1 day.");
        }

        if (options.FeedProbeInterval <= TimeSpan.Zero || options.FeedProbeInterval > TimeSpan.FromMinutes(10)
            || options.FeedProbeTimeout <= TimeSpan.Zero || options.FeedProbeTimeout > TimeSpan.FromMinutes(10))
        {
            failures.Add("Gns:Redis:FeedProbeInterval and Gns:Redis:FeedProbeTimeout must be positive and at most 10 minutes.");
        }

        return failures;
    }
}
