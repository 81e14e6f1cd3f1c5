using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Challenges;
using Mobility.Daemon.Identity;
using Mobility.Daemon.Peers;
using Mobility.Gns.Client;
using Mobility.Net.Caching;
using Mobility.Protocol.Records;
using Mobility.Transport;

namespace Mobility.Daemon.Forwarding;

/// <summary>
/// The daemon's <see cref="IAddressOwnerResolver"/>: get_guid_from_ip (the GNS reverse index, then a
/// challenge of every claim at the address, <see cref="AddressClaims"/>), then the first verified GUID
/// whose GNS record still lists the address and publishes transport endpoints (Host locators, then
/// Observed ones; those at the address first). This host's own GUID is skipped. Answers are cached
/// per address, <see cref="ForwardingOptions.OwnerCacheTime"/> when an owner was found and
/// <see cref="ForwardingOptions.NoOwnerCacheTime"/> when not, in a table of at most
/// <see cref="ForwardingOptions.MaxCachedOwners"/>; a GNS failure is answered "no owner" and not
/// cached. Concurrent questions about one address share one resolution.
/// </summary>
public sealed partial class VerifiedAddressOwners : IAddressOwnerResolver
{
    private readonly AddressClaims _claims;
    private readonly WatchedRecords _records;
    private readonly DaemonIdentity _identity;
    private readonly ForwardingOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<VerifiedAddressOwners> _logger;
    private readonly ConcurrentDictionary<IPAddress, Task<AddressOwner?>> _inFlight = new();
    private readonly ExpiringCache<IPAddress, AddressOwner?> _cache;

    public VerifiedAddressOwners(AddressClaims claims, WatchedRecords records, DaemonIdentity identity, IOptions<MobilitydOptions> options,
        TimeProvider time, ILogger<VerifiedAddressOwners> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _claims = claims;
        _records = records;
        _identity = identity;
        _options = options.Value.Forwarding;
        _time = time;
        _logger = logger;
        _cache = new(_options.MaxCachedOwners, time);
    }

    public async ValueTask<AddressOwner?> ResolveAsync(IPAddress address, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(address);
        var key = Locator.Normalize(address);
        if (_cache.TryGet(key, out var cached))
        {
            return cached;
        }

        var task = _inFlight.GetOrAdd(key, StartResolve);
        return await task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public void Forget(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        _cache.Remove(Locator.Normalize(address));
    }

    private Task<AddressOwner?> StartResolve(IPAddress key)
    {
        var task = ResolveCoreAsync(key);
        _ = task.ContinueWith(t => _inFlight.TryRemove(new KeyValuePair<IPAddress, Task<AddressOwner?>>(key, t)),
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return task;
    }

    private async Task<AddressOwner?> ResolveCoreAsync(IPAddress address)
    {
        // Shared by every caller asking about this address: no one caller's cancellation applies.
        await Task.Yield();
        try
        {
            var claims = await _claims.VerifyAsync(address, CancellationToken.None).ConfigureAwait(false);
            AddressOwner? owner = null;
            foreach (var guid in claims.Verified)
            {
                if (guid == _identity.Guid)
                {
                    continue;
                }

                var record = await _records.LookupAsync(guid, fresh: false, CancellationToken.None).ConfigureAwait(false);
                if (record is null || !record.HasAddress(address))
                {
                    continue;
                }

                var endpoints = GnsPeerLocator.Endpoints(record);
                if (endpoints.Count > 0)
                {
                    owner = new AddressOwner(guid, [.. endpoints.Where(e => e.Address.Equals(address)), .. endpoints.Where(e => !e.Address.Equals(address))]);
                    break;
                }
            }

            Log.Resolved(_logger, address, owner?.Guid.ToString() ?? "none", claims.Verified.Length, claims.Refused.Length);
            Store(address, owner);
            return owner;
        }
        catch (Exception e) when (e is GnsException or IOException or TimeoutException)
        {
            Log.GnsFailed(_logger, address, e.Message);
            return null;
        }
    }

    private void Store(IPAddress key, AddressOwner? owner)
        => _cache.Set(key, owner, owner is null ? _options.NoOwnerCacheTime : _options.OwnerCacheTime);

    private static partial class Log
    {
        [LoggerMessage(8301, LogLevel.Debug, "Owner of {Address}: {Owner} ({Verified} verified, {Refused} refused claims).")]
        public static partial void Resolved(ILogger logger, IPAddress address, string owner, int verified, int refused);

        [LoggerMessage(8302, LogLevel.Debug, "Owner of {Address} unknown (plain TCP), the GNS could not be asked: {Error}.")]
        public static partial void GnsFailed(ILogger logger, IPAddress address, string error);
    }
}
