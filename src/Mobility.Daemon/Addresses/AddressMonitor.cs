using System.Collections.Immutable;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Net.Threading;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Addresses;

/// <summary>The host's addresses at one moment, and whether they were fixed (flag or API) or read from the interfaces.</summary>
/// <param name="Generation">Increases with every change; lets a caller wait until a given change was published.</param>
public sealed record AddressSnapshot(ImmutableArray<IPAddress> Addresses, bool Fixed, long Generation);

/// <summary>
/// Knows the host's current addresses: the fixed list (--address, or SetAddresses at run time), or
/// the interfaces' unicast addresses, re-read on every OS address event
/// (<see cref="NetworkChange.NetworkAddressChanged"/>) and every
/// <see cref="AddressWatchOptions.RecheckInterval"/> as a safety net. Subscribers are told of each
/// change (they only set a flag; the work happens on their own loops).
/// </summary>
public sealed partial class AddressMonitor : BackgroundService
{
    private readonly MobilitydOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<AddressMonitor> _logger;
    private readonly Lock _gate = new();
    private readonly AsyncAutoResetSignal _osEvent = new();
    private readonly List<Action> _subscribers = [];
    private AddressSnapshot _current;

    public AddressMonitor(IOptions<MobilitydOptions> options, TimeProvider time, ILogger<AddressMonitor> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _time = time;
        _logger = logger;
        var fixedList = _options.ParsedAddresses();
        _current = fixedList.Count > 0
            ? new AddressSnapshot([.. fixedList], true, 1)
            : new AddressSnapshot(ReadInterfaces(_options.AllowLoopback, _options.AllowLinkLocal), false, 1);
    }

    public AddressSnapshot Current
    {
        get
        {
            lock (_gate)
            {
                return _current;
            }
        }
    }

    /// <summary>Calls <paramref name="onChange"/> (which must be quick and not throw) after every change.</summary>
    public IDisposable Subscribe(Action onChange)
    {
        ArgumentNullException.ThrowIfNull(onChange);
        lock (_gate)
        {
            _subscribers.Add(onChange);
        }

        return new Subscription(this, onChange);
    }

    /// <summary>Fixes the address list (empty: follow the interfaces again). Returns the new snapshot.</summary>
    public AddressSnapshot SetFixed(IReadOnlyList<IPAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        var list = addresses.Select(Locator.Normalize).Distinct().ToImmutableArray();
        if (list.Length > GnsRecord.MaxLocators - 1)
        {
            throw new ArgumentException($"At most {GnsRecord.MaxLocators - 1} addresses fit a record.", nameof(addresses));
        }

        var snapshot = list.IsEmpty
            ? Apply(ReadInterfaces(_options.AllowLoopback, _options.AllowLinkLocal), isFixed: false, force: true)
            : Apply(list, isFixed: true, force: true);
        Log.AddressesSet(_logger, string.Join(' ', snapshot.Addresses), snapshot.Fixed);
        return snapshot;
    }

    /// <summary>Re-reads the interfaces now (when not fixed).</summary>
    public void Refresh()
    {
        if (Current.Fixed)
        {
            return;
        }

        Apply(ReadInterfaces(_options.AllowLoopback, _options.AllowLinkLocal), isFixed: false, force: false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        NetworkAddressChangedEventHandler handler = (_, _) => _osEvent.Set();
        NetworkChange.NetworkAddressChanged += handler;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var byEvent = await _osEvent.WaitAsync(_options.AddressWatch.RecheckInterval, _time, stoppingToken).ConfigureAwait(false);
                if (byEvent)
                {
                    Log.AddressEvent(_logger);
                }

                try
                {
                    Refresh();
                }
                catch (NetworkInformationException e)
                {
                    Log.InterfaceReadFailed(_logger, e);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            NetworkChange.NetworkAddressChanged -= handler;
        }
    }

    /// <summary>The interfaces' unicast addresses, filtered: up interfaces only; loopback and link-local only when allowed.</summary>
    public static ImmutableArray<IPAddress> ReadInterfaces(bool allowLoopback, bool allowLinkLocal)
    {
        var result = new List<IPAddress>();
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (nic.OperationalStatus is not (OperationalStatus.Up or OperationalStatus.Unknown))
            {
                continue;
            }

            foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
            {
                var address = Locator.Normalize(unicast.Address);
                if (Accept(address, allowLoopback, allowLinkLocal) && !result.Contains(address))
                {
                    result.Add(address);
                }
            }
        }

        result.Sort(Compare);
        return [.. result.Take(GnsRecord.MaxLocators - 1)];
    }

    /// <summary>Whether an interface address is published.</summary>
    public static bool Accept(IPAddress address, bool allowLoopback, bool allowLinkLocal)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || address.IsIPv6Multicast)
        {
            return false;
        }

        if (IPAddress.IsLoopback(address))
        {
            return allowLoopback;
        }

        var linkLocal = address.AddressFamily == AddressFamily.InterNetworkV6
            ? address.IsIPv6LinkLocal
            : address.GetAddressBytes() is [169, 254, _, _];
        return !linkLocal || allowLinkLocal;
    }

    private AddressSnapshot Apply(ImmutableArray<IPAddress> addresses, bool isFixed, bool force)
    {
        Action[] notify;
        AddressSnapshot snapshot;
        lock (_gate)
        {
            if (!force && _current.Fixed)
            {
                return _current;
            }

            if (_current.Fixed == isFixed && _current.Addresses.SequenceEqual(addresses))
            {
                return _current;
            }

            _current = snapshot = new AddressSnapshot(addresses, isFixed, _current.Generation + 1);
            notify = [.. _subscribers];
        }

        Log.AddressesChanged(_logger, string.Join(' ', snapshot.Addresses), snapshot.Generation);
        foreach (var subscriber in notify)
        {
            subscriber();
        }

        return snapshot;
    }

    private static int Compare(IPAddress a, IPAddress b)
    {
        var family = a.AddressFamily.CompareTo(b.AddressFamily);
        return family != 0 ? family : a.GetAddressBytes().AsSpan().SequenceCompareTo(b.GetAddressBytes());
    }

    private sealed class Subscription(AddressMonitor owner, Action action) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._gate)
            {
                owner._subscribers.Remove(action);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(7001, LogLevel.Information, "Host addresses are now [{Addresses}] (change {Generation}).")]
        public static partial void AddressesChanged(ILogger logger, string addresses, long generation);

        [LoggerMessage(7002, LogLevel.Information, "Addresses set through the API: [{Addresses}] (fixed: {Fixed}).")]
        public static partial void AddressesSet(ILogger logger, string addresses, bool @fixed);

        [LoggerMessage(7003, LogLevel.Debug, "The OS reported an address change.")]
        public static partial void AddressEvent(ILogger logger);

        [LoggerMessage(7004, LogLevel.Warning, "Could not read the network interfaces.")]
        public static partial void InterfaceReadFailed(ILogger logger, Exception exception);
    }
}
