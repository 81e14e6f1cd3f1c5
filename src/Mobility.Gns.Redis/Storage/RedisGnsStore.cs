using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Gns.Claims;
using Mobility.Gns.Storage;
using Mobility.Protocol;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using StackExchange.Redis;

namespace Mobility.Gns.Redis.Storage;

/// <summary>
/// An <see cref="IGnsStore"/> in Redis, shared by any number of GNS processes, on a single server or a
/// Redis Cluster. The rules are those of the SQLite store (see GnsStoreRules); what differs is that a
/// GUID's record, a name and an address live in three different slots, so no single transaction can
/// cover them. The record hash is the commit point; names and the reverse index are kept consistent
/// around it by ordering and by readers that check against the record:
/// <list type="number">
/// <item>Pre-check the GUID's version and existence (a read), so that NotFound and Stale take
/// precedence over NameTaken as in the other stores (only for a record with a name: without one, the
/// record write below checks both atomically).</item>
/// <item>Claim the record's name in the name's slot (<see cref="RedisScripts.Claim"/>: first come,
/// first served, owner = GUID). A claim held by another GUID is dead, and taken over with a
/// compare-and-set (<see cref="RedisScripts.Steal"/>), when that GUID's record is at or past the claim's
/// version and does not hold the name (a crash between steps, or a missed release), or when the claim's
/// lease has expired while its record is still older (a crash between claim and write).</item>
/// <item>Write the record with the version check (<see cref="RedisScripts.Put"/>), atomically in the
/// GUID's slot: of two GNS processes racing one version exactly one stores it. This is the commit point;
/// with WAITAOF/WAIT configured the store waits for it to be on disk / on replicas.</item>
/// <item>Claim the name again (idempotent): a concurrent release by a process that lost the race for the
/// same version is undone before the caller learns of success.</item>
/// <item>Release the previous name if the new record does not hold it (<see cref="RedisScripts.Release"/>:
/// only if the claim is still the GUID's at a version not above the new one).</item>
/// <item>Write the address claims of the new record and withdraw those of the previous record that the
/// new one no longer makes, each in the address's slot, in the name of the version stored: a claim written
/// by a newer version of the GUID is never withdrawn or overwritten by an older one (claim versions,
/// <see cref="RedisKeys.ClaimVersions"/>).</item>
/// </list>
/// A claim is valid while the GUID's live record carries the address. Readers filter candidates by
/// fetching their records and delete an invalid claim only if no version newer than the record they read
/// wrote it, so neither a reader nor a slow writer can remove a claim that a newer update just made. A by-name read returns the claim owner's record only if that
/// record holds the name. So readers never see a GUID (or name) that its live record does not carry; a
/// crash after the commit point can leave a name claim or index entry missing or stale, and a retry of
/// the same update (answered Stale with the same version) repairs both.
/// <para>
/// Lookups (by GUID, by name, the version of a GUID) are answered from a <see cref="RedisRecordCache"/> when
/// the store was opened with one and the change feed keeps it live; the write path, name claims and the
/// reverse index always read Redis itself.
/// </para>
/// </summary>
public sealed partial class RedisGnsStore : IGnsStore
{
    /// <summary>Attempts at acquiring a name when claims keep changing under us; beyond it the put fails loudly.</summary>
    private const int MaxClaimAttempts = 8;

    private readonly IConnectionMultiplexer _redis;
    private readonly IDatabase _db;
    private readonly RedisGnsOptions _options;
    private readonly RedisKeys _keys;
    private readonly ILogger<RedisGnsStore> _logger;
    private readonly RedisServerFacts _facts;
    private readonly bool _waitAof;
    private readonly RedisRecordCache? _cache;
    private readonly ClaimLimits _claimLimits;
    private readonly TimeProvider _time;
    private int _disposed;

    private RedisGnsStore(IConnectionMultiplexer redis, RedisGnsOptions options, RedisServerFacts facts, RedisRecordCache? cache, ILogger<RedisGnsStore> logger,
        ClaimLimits claims, TimeProvider time)
    {
        _claimLimits = claims;
        _time = time;
        _cache = cache;
        _redis = redis;
        _db = redis.GetDatabase();
        _options = options;
        _keys = new RedisKeys(options.KeyPrefix);
        _facts = facts;
        _logger = logger;
        _waitAof = options.FsyncWait switch
        {
            RedisFsyncWait.Always => true,
            RedisFsyncWait.IfSupported => facts.AllSupportWaitAof,
            _ => false,
        };
    }

    /// <summary>What the store found out about the servers when it opened.</summary>
    public RedisServerFacts ServerFacts => _facts;

    /// <summary>True when every commit is confirmed with WAITAOF.</summary>
    public bool UsesWaitAof => _waitAof;

    /// <summary>The in-process read cache, or null when the store was opened without one.</summary>
    internal RedisRecordCache? Cache => _cache;

    /// <summary>
    /// Opens the store over a connected multiplexer (which the caller keeps and disposes). Probes the
    /// masters (version, cluster mode, AOF settings), logs what durability they give, and refuses to open
    /// when <see cref="RedisGnsOptions.FsyncWait"/> is Always on a server without WAITAOF, or when
    /// <see cref="RedisGnsOptions.RequireDurableConfiguration"/> is set and a master is not durable.
    /// </summary>
    public static Task<RedisGnsStore> OpenAsync(IConnectionMultiplexer redis, RedisGnsOptions options, ILogger<RedisGnsStore> logger,
        CancellationToken cancellationToken = default)
        => OpenAsync(redis, options, logger, cache: null, cancellationToken);

    /// <summary>
    /// Opens the store with an in-process read <paramref name="cache"/>, which serves only while a
    /// <see cref="Watch.RedisRecordChangeFeed"/> given the same cache keeps it live.
    /// </summary>
    internal static async Task<RedisGnsStore> OpenAsync(IConnectionMultiplexer redis, RedisGnsOptions options, ILogger<RedisGnsStore> logger,
        RedisRecordCache? cache, CancellationToken cancellationToken = default, ClaimLimits? claims = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        // The caller brings the connection, so only the store's own settings are checked here.
        if (RedisGnsOptionsValidator.Check(options, requireConfiguration: false) is { Count: > 0 } failures)
        {
            throw new ArgumentException("Invalid Redis GNS options: " + string.Join(" ", failures), nameof(options));
        }

        var facts = await RedisServerFacts.ProbeAsync(redis, cancellationToken).ConfigureAwait(false);
        if (options.FsyncWait == RedisFsyncWait.Always && !facts.AllSupportWaitAof)
        {
            throw new InvalidOperationException(
                $"Gns:Redis:FsyncWait is Always but a master runs Redis {facts.LowestVersion}; WAITAOF needs 7.2 or later.");
        }

        if (options.RequireDurableConfiguration && !facts.AllDurable)
        {
            throw new InvalidOperationException(
                "Gns:Redis:RequireDurableConfiguration is set but not every master has 'appendonly yes' and 'appendfsync always': " + facts.Describe());
        }

        claims ??= new ClaimLimits();
        claims.Validate();
        var store = new RedisGnsStore(redis, options, facts, cache, logger, claims, time ?? TimeProvider.System);
        RedisGnsLog.Opened(logger, facts.Describe(), store._waitAof);
        if (!facts.AllDurable && !store._waitAof)
        {
            RedisGnsLog.NotDurable(logger, facts.Describe());
        }

        return store;
    }

    public ValueTask<StoreResult> PutAsync(GnsRecord record, bool requireExisting, CancellationToken cancellationToken = default)
        => PutAsync(record, requireExisting, null, cancellationToken);

    public async ValueTask<StoreResult> PutAsync(GnsRecord record, bool requireExisting, IPAddress? source, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        var guid = record.Guid;
        var recordKey = _keys.Record(guid);
        var version = RedisKeys.Version(record.Version);

        // 1. Pre-check, so that a stale or unknown GUID is refused as such and never claims a name. A record
        //    without a name claims nothing: the Put script alone checks version and existence, atomically,
        //    and its refusals are handled below exactly as here (one Redis round trip less per update).
        var existing = record.Name is null ? null : await ReadStateAsync(recordKey).ConfigureAwait(false);
        if (record.Name is not null && CheckPut(existing, record.Version, requireExisting) is { } refused)
        {
            if (refused.Status == StoreStatus.Stale && existing is { Live: true } current && current.Version == record.Version)
            {
                // A retry of the stored version: its first attempt may have died after the commit point.
                await RepairAsync(guid).ConfigureAwait(false);
            }

            return refused;
        }

        // 2. Claim the name.
        var claimStarted = Stopwatch.GetTimestamp();
        if (record.Name is { } name && !await AcquireNameAsync(name, guid, record.Version, cancellationToken).ConfigureAwait(false))
        {
            return new StoreResult(StoreStatus.NameTaken, existing?.Version ?? 0);
        }

        if (record.Name is { } claimed && Stopwatch.GetElapsedTime(claimStarted) > _options.ClaimWriteDeadline)
        {
            // Our lease may be running out: writing now could bind a name someone else may take over.
            await ReleaseNameAsync(claimed, guid, record.Version, exact: true).ConfigureAwait(false);
            throw new TimeoutException($"Claiming the name of {guid} took longer than {_options.ClaimWriteDeadline}; the update was not stored.");
        }

        // 3. The commit point.
        var reply = Reply.From(await _db.ScriptEvaluateAsync(RedisScripts.Put, [recordKey],
            [version, requireExisting ? "1" : "0", record.Encoded, record.Name ?? ""]).ConfigureAwait(false));
        if (reply.Status != "stored")
        {
            await AfterRefusedPutAsync(record, reply).ConfigureAwait(false);
            return new StoreResult(reply.Status == "stale" ? StoreStatus.Stale : StoreStatus.NotFound, reply.Version);
        }

        await WaitDurableAsync(recordKey).ConfigureAwait(false);
        _cache?.Apply(guid, record.Version, record);

        // 4. Re-assert the claim (undoes a release by a process that lost the race for this version).
        if (record.Name is { } held && !await AcquireNameAsync(held, guid, record.Version, cancellationToken).ConfigureAwait(false))
        {
            RedisGnsLog.ClaimLost(_logger, guid, record.Version, held);
            throw new InvalidOperationException(
                $"Record {guid} v{record.Version} was stored but its name '{held}' was taken over meanwhile (the update outlived its claim lease).");
        }

        // 5. Release the previous name, 6. move the reverse entries.
        var previous = reply.Live ? DecodeStored(guid, reply) : null;
        if (reply.Name.Length > 0 && reply.Name != record.Name)
        {
            await ReleaseNameAsync(reply.Name, guid, record.Version, exact: false).ConfigureAwait(false);
        }

        await IndexAsync(record, previous, source, record.Version).ConfigureAwait(false);
        return new StoreResult(StoreStatus.Stored, record.Version);
    }

    public async ValueTask<StoreResult> RemoveAsync(HostGuid guid, ulong version, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        var recordKey = _keys.Record(guid);
        var reply = Reply.From(await _db.ScriptEvaluateAsync(RedisScripts.Remove, [recordKey], [RedisKeys.Version(version)]).ConfigureAwait(false));
        switch (reply.Status)
        {
            case "stale":
                return new StoreResult(StoreStatus.Stale, reply.Version);
            case "notfound":
                return new StoreResult(StoreStatus.NotFound, reply.Version);
        }

        await WaitDurableAsync(recordKey).ConfigureAwait(false);
        _cache?.Apply(guid, version, null);
        if (reply.Name.Length > 0)
        {
            await ReleaseNameAsync(reply.Name, guid, version, exact: false).ConfigureAwait(false);
        }

        if (DecodeStored(guid, reply) is { } removed)
        {
            await IndexAsync(null, removed, null, version).ConfigureAwait(false);
        }

        return new StoreResult(StoreStatus.Stored, version);
    }

    public async ValueTask<GnsRecord?> GetAsync(HostGuid guid, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        return (await ReadCachedAsync(guid).ConfigureAwait(false)).Record;
    }

    public async ValueTask<GnsRecord?> GetByNameAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        if (HostName.Normalize(name, out _) is not { } canonical)
        {
            return null;
        }

        // A cached hint is checked against the (cached) record of its GUID: a GUID whose live record
        // holds the name owns it (its claim is alive), so the hint is exactly as fresh as that record.
        if (_cache is not null && _cache.TryGetName(canonical, out var hinted)
            && (await ReadCachedAsync(hinted).ConfigureAwait(false)).Record is { } cached && cached.Name == canonical)
        {
            return cached;
        }

        var value = await _db.StringGetAsync(_keys.Name(canonical)).ConfigureAwait(false);
        if (!NameClaim.TryParse(value, out var claim))
        {
            return null;
        }

        // The claim names the owner; only the owner's live record that holds the name is an answer.
        var (record, _) = await ReadCachedAsync(claim.Owner, canonical).ConfigureAwait(false);
        return record is not null && record.Name == canonical ? record : null;
    }

    public async ValueTask<ulong?> GetVersionAsync(HostGuid guid, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        if (_cache is not null)
        {
            return (await ReadCachedAsync(guid).ConfigureAwait(false)).Version;
        }

        var value = await _db.HashGetAsync(_keys.Record(guid), "v").ConfigureAwait(false);
        if (value.IsNull)
        {
            return null;
        }

        if (!RedisKeys.TryParseVersion((string?)value, out var version))
        {
            RedisGnsLog.CorruptRecord(_logger, guid.ToString(), "the version field is not 16 hexadecimal digits");
            return null;
        }

        return version;
    }

    /// <summary>Marks the store closed; the multiplexer belongs to whoever opened the store.</summary>
    public ValueTask DisposeAsync()
    {
        Interlocked.Exchange(ref _disposed, 1);
        return ValueTask.CompletedTask;
    }

    private static StoreResult? CheckPut(StoredState? existing, ulong version, bool requireExisting)
    {
        // The same order as GnsStoreRules.CheckPut: NotFound, then Stale (tombstones count).
        if (requireExisting && existing is not { Live: true })
        {
            return new StoreResult(StoreStatus.NotFound, existing?.Version ?? 0);
        }

        return existing is { } current && version <= current.Version ? new StoreResult(StoreStatus.Stale, current.Version) : null;
    }

    /// <summary>
    /// After the record write refused the update: release the name we claimed unless the GUID's current
    /// record holds it; when the refusal is a retry of the version already stored, repair its name claim
    /// and index entries (the first attempt may have died after the commit point).
    /// </summary>
    private async Task AfterRefusedPutAsync(GnsRecord record, Reply reply)
    {
        var guid = record.Guid;
        if (record.Name is { } name && !(reply.Live && reply.Name == name))
        {
            // Stale: claims of ours at or below the stored version are dead (that record does not hold the
            // name). NotFound: only our exact claim; a concurrent update of a higher version keeps its own.
            if (reply.Status == "stale")
            {
                await ReleaseNameAsync(name, guid, reply.Version, exact: false).ConfigureAwait(false);
            }
            else
            {
                await ReleaseNameAsync(name, guid, record.Version, exact: true).ConfigureAwait(false);
            }
        }

        if (reply.Status == "stale" && reply.Live && reply.Version == record.Version)
        {
            await RepairAsync(guid).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Re-asserts the name claim and re-adds the index entries of the GUID's live record (all idempotent).
    /// Run when an update is retried at the version already stored, whose first attempt may have stopped
    /// after the commit point.
    /// </summary>
    private async Task RepairAsync(HostGuid guid)
    {
        if ((await ReadLiveAsync(guid).ConfigureAwait(false)).Record is not { } stored)
        {
            return;
        }

        if (stored.Name is { } name && !await AcquireNameAsync(name, guid, stored.Version, CancellationToken.None).ConfigureAwait(false))
        {
            RedisGnsLog.ClaimLost(_logger, guid, stored.Version, name);
        }

        await IndexAsync(stored, null, null, stored.Version).ConfigureAwait(false);
    }

    private async Task<StoredState?> ReadStateAsync(RedisKey recordKey)
    {
        var fields = await _db.HashGetAsync(recordKey, ["v", "r"]).ConfigureAwait(false);
        if (fields[0].IsNull || !RedisKeys.TryParseVersion((string?)fields[0], out var version))
        {
            return null;
        }

        return new StoredState(version, (string?)fields[1] == "0");
    }

    /// <summary>
    /// <see cref="ReadLiveAsync"/> through the cache: a hit costs no round trip; a miss reads Redis and fills
    /// the cache unless a change of the GUID (or a feed outage) came in between. <paramref name="name"/>, when
    /// given, is remembered as a hint if the record read holds it.
    /// </summary>
    private ValueTask<(GnsRecord? Record, ulong? Version)> ReadCachedAsync(HostGuid guid, string? name = null)
    {
        if (_cache is null)
        {
            return new ValueTask<(GnsRecord?, ulong?)>(ReadLiveAsync(guid));
        }

        if (_cache.TryGet(guid, out var state))
        {
            return new ValueTask<(GnsRecord?, ulong?)>((state.Record, state.Exists ? state.Version : null));
        }

        return FillAsync(guid, name);

        async ValueTask<(GnsRecord? Record, ulong? Version)> FillAsync(HostGuid guid, string? name)
        {
            var token = _cache.Stamp(guid);
            var read = await ReadLiveAsync(guid).ConfigureAwait(false);
            _cache.TryFill(guid, read.Version is not null, read.Version ?? 0, read.Record, token, name);
            return read;
        }
    }

    /// <summary>The GUID's live record (null for absent, tombstone or corrupt) and its stored version (null when absent).</summary>
    private async Task<(GnsRecord? Record, ulong? Version)> ReadLiveAsync(HostGuid guid)
    {
        var fields = await _db.HashGetAsync(_keys.Record(guid), ["v", "r", "e"]).ConfigureAwait(false);
        if (fields[0].IsNull)
        {
            return (null, null);
        }

        if (!RedisKeys.TryParseVersion((string?)fields[0], out var version))
        {
            RedisGnsLog.CorruptRecord(_logger, guid.ToString(), "the version field is not 16 hexadecimal digits");
            return (null, null);
        }

        if ((string?)fields[1] != "0")
        {
            return (null, version);
        }

        return (Decode(guid, version, (byte[]?)fields[2]), version);
    }

    private GnsRecord? DecodeStored(HostGuid guid, Reply reply) => reply.Live ? Decode(guid, reply.Version, reply.Encoded) : null;

    /// <summary>The record in a live hash, or null (logged) when its bytes are missing, malformed or disagree with the hash.</summary>
    private GnsRecord? Decode(HostGuid guid, ulong version, byte[]? encoded)
    {
        if (encoded is not { Length: > 0 })
        {
            RedisGnsLog.CorruptRecord(_logger, guid.ToString(), "a live record without its encoding");
            return null;
        }

        GnsRecord record;
        try
        {
            record = GnsRecord.Decode(encoded);
        }
        catch (MalformedMessageException e)
        {
            RedisGnsLog.CorruptRecord(_logger, guid.ToString(), e.Message);
            return null;
        }

        if (record.Guid != guid || record.Version != version)
        {
            RedisGnsLog.CorruptRecord(_logger, guid.ToString(), "the encoded record's GUID or version does not match the hash");
            return null;
        }

        return record;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private readonly record struct StoredState(ulong Version, bool Live);

    /// <summary>The reply of the Put and Remove scripts: {status, version, name, removed, encoded}.</summary>
    private readonly record struct Reply(string Status, ulong Version, string Name, bool Live, byte[]? Encoded)
    {
        public static Reply From(RedisResult result)
        {
            var parts = (RedisResult[]?)result;
            if (parts is not { Length: 5 })
            {
                throw new InvalidDataException("The GNS Redis script returned an unexpected reply.");
            }

            var status = (string?)parts[0] ?? "";
            var versionText = (string?)parts[1] ?? "";
            ulong version = 0;
            if (versionText.Length > 0 && !RedisKeys.TryParseVersion(versionText, out version))
            {
                throw new InvalidDataException($"A GNS record hash holds the malformed version '{versionText}'.");
            }

            var encoded = (byte[]?)parts[4];
            return new Reply(status, version, (string?)parts[2] ?? "", versionText.Length > 0 && (string?)parts[3] == "0",
                encoded is { Length: > 0 } ? encoded : null);
        }
    }
}
