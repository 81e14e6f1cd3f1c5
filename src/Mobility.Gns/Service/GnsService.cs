using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Gns.Storage;
using Mobility.Gns.Watch;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Service;

/// <summary>
/// The GNS operations, independent of the transport (datagrams, gRPC, HTTP/JSON): checks signed
/// records and removals, applies the server's limits, stores, and announces every stored change on
/// the <see cref="IRecordChangeFeed"/>. Refusals are results, not exceptions.
/// </summary>
public sealed partial class GnsService
{
    private readonly IGnsStore _store;
    private readonly IRecordChangeFeed _feed;
    private readonly GnsServerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<GnsService> _logger;

    public GnsService(IGnsStore store, IRecordChangeFeed feed, IOptions<GnsServerOptions> options, TimeProvider time, ILogger<GnsService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _store = store;
        _feed = feed;
        _options = options.Value;
        _time = time;
        _logger = logger;
    }

    /// <summary>
    /// Verifies and stores <paramref name="record"/>. The task completes after the store has made the
    /// record durable; the value is the version now stored.
    /// </summary>
    /// <param name="requireExisting">Update semantics: refuse with NotFound unless a live record exists.</param>
    public ValueTask<GnsResult<ulong>> PutAsync(GnsRecord record, bool requireExisting, CancellationToken cancellationToken = default)
        => PutAsync(record, requireExisting, null, cancellationToken);

    /// <summary>
    /// <see cref="PutAsync(GnsRecord, bool, CancellationToken)"/> for a record that arrived from
    /// <paramref name="source"/> (the datagram's source, the gRPC peer; null for an in-process caller):
    /// a claimed address equal to it is attested and ranks first in reverse lookups (docs/protocol.md, "Address claims").
    /// </summary>
    public async ValueTask<GnsResult<ulong>> PutAsync(GnsRecord record, bool requireExisting, IPAddress? source, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (!record.Verify())
        {
            Log.RecordRejected(_logger, record.Guid, "bad signature or GUID not derived from the key");
            return GnsResult<ulong>.Failure(GnsErrorCode.BadSignature, "The signature or the GUID does not match the record's key.");
        }

        if (record.TtlSeconds > _options.MaxTtl.TotalSeconds)
        {
            Log.RecordRejected(_logger, record.Guid, "TTL over the maximum");
            return GnsResult<ulong>.Failure(GnsErrorCode.InvalidRecord, $"TTL {record.TtlSeconds}s exceeds the maximum of {(long)_options.MaxTtl.TotalSeconds}s.");
        }

        if (record.IssuedAt > _time.GetUtcNow() + _options.MaxClockSkew)
        {
            Log.RecordRejected(_logger, record.Guid, "issued in the future");
            return GnsResult<ulong>.Failure(GnsErrorCode.InvalidRecord, "The record is issued in the future; check the clock.");
        }

        var result = await _store.PutAsync(record, requireExisting, source, cancellationToken).ConfigureAwait(false);
        if (result.Status == StoreStatus.Stale && result.StoredVersion == record.Version
            && await IsStoredAsync(record, cancellationToken).ConfigureAwait(false))
        {
            // A retransmission of the record already stored (its ack was lost or late): idempotent, so it is
            // acknowledged like the first copy (with the observed address), stores nothing and notifies no watcher.
            Log.RetransmissionAcknowledged(_logger, record.Guid, record.Version);
            return GnsResult<ulong>.Success(record.Version);
        }

        return await AnswerAsync(result, record.Guid, record.Version, record).ConfigureAwait(false);
    }

    /// <summary>True when the store holds exactly <paramref name="record"/> (same signed bytes) as its live record.</summary>
    private async ValueTask<bool> IsStoredAsync(GnsRecord record, CancellationToken cancellationToken)
    {
        var stored = await _store.GetAsync(record.Guid, cancellationToken).ConfigureAwait(false);
        return stored is not null && stored.Encoded.Span.SequenceEqual(record.Encoded.Span);
    }

    /// <summary>Verifies <paramref name="removal"/> against the stored record's key and stores the tombstone.</summary>
    public async ValueTask<GnsResult<ulong>> RemoveAsync(GnsRemoval removal, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(removal);
        var current = await _store.GetAsync(removal.Guid, cancellationToken).ConfigureAwait(false);
        if (current is null)
        {
            return GnsResult<ulong>.Failure(GnsErrorCode.NotFound, "No record to remove.");
        }

        if (!removal.Verify(current.PublicKey.Span))
        {
            Log.RecordRejected(_logger, removal.Guid, "removal not signed by the GUID's key");
            return GnsResult<ulong>.Failure(GnsErrorCode.BadSignature, "The removal is not signed by the GUID's key.");
        }

        if (removal.IssuedAt > _time.GetUtcNow() + _options.MaxClockSkew)
        {
            Log.RecordRejected(_logger, removal.Guid, "removal issued in the future");
            return GnsResult<ulong>.Failure(GnsErrorCode.InvalidRecord, "The removal is issued in the future; check the clock.");
        }

        var result = await _store.RemoveAsync(removal.Guid, removal.Version, cancellationToken).ConfigureAwait(false);
        return await AnswerAsync(result, removal.Guid, removal.Version, record: null).ConfigureAwait(false);
    }

    public ValueTask<GnsRecord?> LookupAsync(HostGuid guid, CancellationToken cancellationToken = default)
        => _store.GetAsync(guid, cancellationToken);

    /// <summary>The record bound to <paramref name="name"/> (any case), or null; null also for a name no record can carry.</summary>
    public ValueTask<GnsRecord?> LookupNameAsync(string name, CancellationToken cancellationToken = default)
    {
        var canonical = HostName.Normalize(name, out _);
        return canonical is null ? ValueTask.FromResult<GnsRecord?>(null) : _store.GetByNameAsync(canonical, cancellationToken);
    }

    /// <summary>GUIDs whose records carry <paramref name="address"/>, attested claims first (<see cref="IGnsStore.ReverseAsync"/>).</summary>
    /// <param name="limit">Requested count; 0 means the server's default; never more than the server's maximum.</param>
    public ValueTask<ReverseResult> ReverseAsync(IPAddress address, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        return _store.ReverseAsync(Locator.Normalize(address), EffectiveReverseLimit(limit), cancellationToken);
    }

    /// <summary>The limit a reverse lookup asking for <paramref name="requested"/> GUIDs gets.</summary>
    public int EffectiveReverseLimit(int requested)
        => requested <= 0 ? _options.ReverseDefaultLimit : Math.Min(requested, _options.ReverseMaxLimit);

    /// <summary>The GUID's state now, as a watch reports it: its record, or a removal with the tombstone version (0 if never seen).</summary>
    public async ValueTask<RecordChange> CurrentStateAsync(HostGuid guid, CancellationToken cancellationToken = default)
    {
        var record = await _store.GetAsync(guid, cancellationToken).ConfigureAwait(false);
        if (record is not null)
        {
            return new RecordChange(guid, record, record.Version);
        }

        var version = await _store.GetVersionAsync(guid, cancellationToken).ConfigureAwait(false);
        return new RecordChange(guid, null, version ?? 0);
    }

    /// <summary>
    /// The answer to a signed change once the store has decided: its refusal, or its stored version
    /// after the change (<paramref name="record"/>, or null for a removal) is announced to watchers.
    /// </summary>
    private async ValueTask<GnsResult<ulong>> AnswerAsync(StoreResult result, HostGuid guid, ulong version, GnsRecord? record)
    {
        if (result.Status != StoreStatus.Stored)
        {
            Log.RecordRefused(_logger, guid, version, result.Status);
            return Refused(result);
        }

        if (record is null)
        {
            Log.RecordRemoved(_logger, guid, result.StoredVersion);
        }
        else
        {
            Log.RecordStored(_logger, guid, result.StoredVersion);
        }

        await PublishAsync(new RecordChange(guid, record, result.StoredVersion)).ConfigureAwait(false);
        return GnsResult<ulong>.Success(result.StoredVersion);
    }

    private async ValueTask PublishAsync(RecordChange change)
    {
        try
        {
            // The change is stored: do not let a caller's cancellation keep it from the watchers.
            await _feed.PublishAsync(change, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The record is stored; watchers catch up on their next subscribe. Not peer-caused.
            Log.PublishFailed(_logger, change.Guid, ex);
        }
    }

    private static GnsResult<ulong> Refused(StoreResult result) => result.Status switch
    {
        StoreStatus.Stale => GnsResult<ulong>.Failure(GnsErrorCode.StaleVersion,
            $"The version must be higher than the stored version {result.StoredVersion}."),
        StoreStatus.NameTaken => GnsResult<ulong>.Failure(GnsErrorCode.NameTaken, "The name belongs to another GUID."),
        StoreStatus.NotFound => GnsResult<ulong>.Failure(GnsErrorCode.NotFound, "No live record for the GUID."),
        _ => GnsResult<ulong>.Failure(GnsErrorCode.Internal, "Unexpected store result."),
    };

    private static partial class Log
    {
        [LoggerMessage(1001, LogLevel.Debug, "Refused signed request for {Guid}: {Reason}")]
        public static partial void RecordRejected(ILogger logger, HostGuid guid, string reason);

        [LoggerMessage(1002, LogLevel.Debug, "Store refused {Guid} v{Version}: {Status}")]
        public static partial void RecordRefused(ILogger logger, HostGuid guid, ulong version, StoreStatus status);

        [LoggerMessage(1003, LogLevel.Debug, "Stored {Guid} v{Version}")]
        public static partial void RecordStored(ILogger logger, HostGuid guid, ulong version);

        [LoggerMessage(1004, LogLevel.Debug, "Removed {Guid}, tombstone v{Version}")]
        public static partial void RecordRemoved(ILogger logger, HostGuid guid, ulong version);

        [LoggerMessage(1006, LogLevel.Debug, "Acknowledged a retransmission of the stored {Guid} v{Version}")]
        public static partial void RetransmissionAcknowledged(ILogger logger, HostGuid guid, ulong version);

        [LoggerMessage(1005, LogLevel.Warning, "Could not announce the change of {Guid} to watchers")]
        public static partial void PublishFailed(ILogger logger, HostGuid guid, Exception exception);
    }
}
