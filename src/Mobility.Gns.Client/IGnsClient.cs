using System.Net;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Client;

/// <summary>
/// The GNS as a client sees it. Every record returned has been verified (GUID = hash of key,
/// signature good) and matches the GUID or name asked for; anything else is treated as a failure.
/// </summary>
public interface IGnsClient : IAsyncDisposable
{
    /// <summary>Creates or replaces the record (upsert). Throws <see cref="GnsException"/> when refused or unreachable.</summary>
    Task<GnsUpdateResult> RegisterAsync(GnsRecord record, CancellationToken cancellationToken = default);

    /// <summary>Replaces an existing record; <see cref="GnsErrorCode.NotFound"/> when there is none.</summary>
    Task<GnsUpdateResult> UpdateAsync(GnsRecord record, CancellationToken cancellationToken = default);

    /// <summary>The GUID's current record, or null when the GNS has none. Served from the TTL cache when fresh.</summary>
    Task<GnsRecord?> LookupAsync(HostGuid guid, CancellationToken cancellationToken = default);

    /// <summary>The record bound to <paramref name="name"/> (case-insensitive), or null.</summary>
    Task<GnsRecord?> LookupNameAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>GUIDs whose records list <paramref name="address"/>. Unverified claims: challenge before trusting.</summary>
    Task<IReadOnlyList<HostGuid>> ReverseAsync(IPAddress address, CancellationToken cancellationToken = default);

    /// <summary>Removes the record; returns the tombstone version.</summary>
    Task<ulong> RemoveAsync(GnsRemoval removal, CancellationToken cancellationToken = default);

    /// <summary>
    /// The current state of each GUID, then every change, until cancelled. Reconnects by itself
    /// (capped exponential back-off with jitter) and re-delivers the current state after a reconnect.
    /// </summary>
    IAsyncEnumerable<GnsWatchEvent> WatchAsync(IEnumerable<HostGuid> guids, CancellationToken cancellationToken = default);

    /// <summary>Drops a cached record (for example after a connection to its addresses failed).</summary>
    void Invalidate(HostGuid guid);

    /// <summary>
    /// The host's own addresses changed: connections to the GNS opened from an address that is gone
    /// are re-opened now, and watches re-open at once (re-delivering the current state) instead of
    /// waiting for the dead stream to time out. The default does nothing (a client with no
    /// long-lived connection, or one over loopback).
    /// </summary>
    void NotifyLocalAddressChanged()
    {
    }
}

/// <summary>Result of a register or update: the stored version and the sender's address as the GNS saw it.</summary>
public sealed record GnsUpdateResult(ulong Version, IPEndPoint? Observed);

/// <summary>A watch event: the GUID's record, or null when it has none (removed or never registered).</summary>
public sealed record GnsWatchEvent(HostGuid Guid, GnsRecord? Record, ulong Version)
{
    public bool Removed => Record is null;

    /// <summary>
    /// True on the first event after the stream was re-opened because it failed or ended (not on the
    /// first open, nor after <see cref="IGnsClient.NotifyLocalAddressChanged"/>): changes made while
    /// it was down are not replayed, only the current state, so a consumer that keeps answers of its
    /// own re-validates every GUID of the watch.
    /// </summary>
    public bool Reconnected { get; init; }
}

/// <summary>A GNS operation failed: refused by the GNS (with its code) or unreachable (<see cref="GnsErrorCode.Unavailable"/>).</summary>
public sealed class GnsException : Exception
{
    public GnsException(GnsErrorCode code, string message) : base(message) => Code = code;

    public GnsException(GnsErrorCode code, string message, Exception innerException) : base(message, innerException) => Code = code;

    public GnsException() : base("GNS error.") => Code = GnsErrorCode.Internal;

    public GnsException(string message) : base(message) => Code = GnsErrorCode.Internal;

    public GnsException(string message, Exception innerException) : base(message, innerException) => Code = GnsErrorCode.Internal;

    public GnsErrorCode Code { get; }
}
