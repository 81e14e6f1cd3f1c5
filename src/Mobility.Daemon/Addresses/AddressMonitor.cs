using System.Collections.Immutable;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Net.Netlink;
using Mobility.Net.Threading;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Addresses;

/// <summary>The host's addresses at one moment, and whether they were fixed (flag or API) or read from the interfaces.</summary>
/// <param name="Generation">Increases with every change; lets a caller wait until a given change was published.</param>
public sealed record AddressSnapshot(ImmutableArray<IPAddress> Addresses, bool Fixed, long Generation);

/// <summary>
/// Knows the host's current addresses: the fixed list (--address, or SetAddresses at run time), or
/// the interfaces' usable unicast addresses. On Linux it follows the kernel's netlink notifications
/// for links and both address families (RTM_NEWADDR / RTM_DELADDR with their flags, after a dump of
/// the tables at start) in a <see cref="KernelAddressTable"/>, and publishes once per burst: it
/// applies every message already queued on the socket, then publishes the usable set if it changed,
/// so one move (old address gone, new one added) is one change when its messages arrive together.
/// Where the netlink socket cannot be opened it falls back to re-reading the interfaces on every
/// <see cref="NetworkChange.NetworkAddressChanged"/> and every
/// <see cref="AddressWatchOptions.RecheckInterval"/>. Subscribers are told of each change in
/// <see cref="AddressChangeOrder"/>: the record's update and the transport's hand-over on the thread that
/// saw the change, then the flags of the background loops (whose work happens on their own loops).
/// </summary>
public sealed partial class AddressMonitor : BackgroundService
{
    /// <summary>
    /// Netlink failures in a row (unreadable datagram, overrun, socket error) after which the monitor
    /// gives up the socket for the fallback. A healthy socket fails rarely and recovers with one dump;
    /// five in a row means it will not, and retrying it forever would spin.
    /// </summary>
    public const int MaxNetlinkFailures = 5;

    /// <summary>
    /// How long a burst that leaves the host with no usable address waits for the next one before the
    /// empty set is published. A move in one batch (link down, old address deleted, new one added)
    /// can reach the socket as two bursts a millisecond apart; publishing the empty set between them
    /// made two events per move, and an empty set is useful to no one (no record to publish, no
    /// address to resume from). Nothing else waits: a new address is published at once, and a
    /// host that really went offline is told 100 ms later.
    /// </summary>
    public static readonly TimeSpan EmptySetHold = TimeSpan.FromMilliseconds(100);

    private readonly MobilitydOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<AddressMonitor> _logger;
    private readonly Lock _gate = new();
    private readonly AsyncAutoResetSignal _osEvent = new();
    private readonly List<(Action Action, AddressChangeOrder Order)> _subscribers = [];
    private AddressSnapshot _current;
    private ImmutableArray<IPAddress>? _kernelView;

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

    /// <summary>
    /// Calls <paramref name="onChange"/> (which must not throw, and should be quick) after every change, on the thread
    /// that saw it, in <paramref name="order"/> (subscribers of one order in the order they subscribed). Every wake-up of
    /// another thread may let the scheduler switch away from this one, so work that must leave the host at once goes
    /// before the flags of the background loops (docs/mobilityd.md, "Record upkeep").
    /// </summary>
    public IDisposable Subscribe(Action onChange, AddressChangeOrder order = AddressChangeOrder.Background)
    {
        ArgumentNullException.ThrowIfNull(onChange);
        lock (_gate)
        {
            // Stable: after every subscriber of the same or an earlier order.
            var at = _subscribers.FindLastIndex(s => s.Order <= order) + 1;
            _subscribers.Insert(at, (onChange, order));
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
            ? Apply(ReadFollowed(), isFixed: false, force: true)
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

        Apply(ReadFollowed(), isFixed: false, force: false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var netlink = NetlinkAddressSocket.TryOpen(out var error);
        if (netlink is null)
        {
            Log.NetlinkUnavailable(_logger, error ?? "unknown");
            await FollowNetworkChangeAsync(stoppingToken).ConfigureAwait(false);
            return;
        }

        try
        {
            if (!await FollowNetlinkAsync(netlink, stoppingToken).ConfigureAwait(false))
            {
                lock (_gate)
                {
                    _kernelView = null;
                }

                await FollowNetworkChangeAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// The netlink loop: a dump of links and addresses (again after an overrun or a datagram it could
    /// not read), then one publish per burst of notifications. Returns false (give up, use the
    /// fallback) after <see cref="MaxNetlinkFailures"/> failures in a row, so a socket that keeps
    /// failing cannot spin; returns true when stopped.
    /// </summary>
    private async Task<bool> FollowNetlinkAsync(NetlinkAddressSocket netlink, CancellationToken stoppingToken)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(NetlinkAddressSocket.BufferSize);
        var table = new KernelAddressTable();
        var events = new List<NetlinkEvent>();
        var resync = true;
        long? emptyUntil = null;
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            if (failures >= MaxNetlinkFailures)
            {
                Log.NetlinkUnavailable(_logger, $"{failures} failures in a row");
                return false;
            }

            events.Clear();
            bool changed;
            try
            {
                if (resync)
                {
                    table.Clear();
                    await DumpAsync(netlink, table, NetlinkRouteReader.RtmGetLink, buffer, events, stoppingToken).ConfigureAwait(false);
                    await DumpAsync(netlink, table, NetlinkRouteReader.RtmGetAddr, buffer, events, stoppingToken).ConfigureAwait(false);
                    resync = false;
                    changed = true;
                }
                else
                {
                    if (await ReceiveAsync(netlink, buffer, emptyUntil, stoppingToken).ConfigureAwait(false) is not { } received)
                    {
                        // No address came back within the hold: the host really has no usable address.
                        emptyUntil = null;
                        Apply(table.Usable(_options.AllowLoopback, _options.AllowLinkLocal), isFixed: false, force: false);
                        continue;
                    }

                    NetlinkRouteReader.Read(buffer.AsSpan(0, received), events);
                    // The rest of the burst: whatever is queued already, without waiting.
                    while ((received = netlink.TryReceive(buffer)) > 0)
                    {
                        NetlinkRouteReader.Read(buffer.AsSpan(0, received), events);
                    }

                    changed = false;
                    foreach (var e in events)
                    {
                        resync |= e.Kind == NetlinkEventKind.Overrun;
                        changed |= table.Apply(e);
                    }

                    if (resync)
                    {
                        Log.NetlinkResync(_logger, "overrun");
                        failures++;
                        continue;
                    }
                }
            }
            catch (Exception e) when (e is InvalidDataException or SocketException)
            {
                // A datagram we could not read, or ENOBUFS (the kernel dropped notifications): read the tables again.
                Log.NetlinkResync(_logger, e.Message);
                resync = true;
                failures++;
                continue;
            }

            failures = 0;

            if (changed)
            {
                Log.AddressEvent(_logger);
                var usable = table.Usable(_options.AllowLoopback, _options.AllowLinkLocal);
                lock (_gate)
                {
                    _kernelView = usable;
                }

                if (usable.IsEmpty && !Current.Addresses.IsEmpty)
                {
                    // Hold the empty set while bursts keep it empty, up to EmptySetHold from the first.
                    emptyUntil ??= Environment.TickCount64 + (long)EmptySetHold.TotalMilliseconds;
                    if (Environment.TickCount64 < emptyUntil)
                    {
                        continue;
                    }
                }

                emptyUntil = null;
                Apply(usable, isFixed: false, force: false);
            }
        }

        return true;
    }

    /// <summary>The next datagram's length; null when an empty set is held (<paramref name="emptyUntil"/>, Environment.TickCount64) and none came before then.</summary>
    private static async Task<int?> ReceiveAsync(NetlinkAddressSocket netlink, byte[] buffer, long? emptyUntil, CancellationToken stoppingToken)
    {
        if (emptyUntil is not { } until)
        {
            return await netlink.ReceiveAsync(buffer, stoppingToken).ConfigureAwait(false);
        }

        var left = until - Environment.TickCount64;
        if (left <= 0)
        {
            return null;
        }

        using var hold = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        hold.CancelAfter(TimeSpan.FromMilliseconds(left));
        try
        {
            return await netlink.ReceiveAsync(buffer, hold.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Requests a dump of <paramref name="type"/> and applies what arrives (notifications too) until its NLMSG_DONE.</summary>
    private static async Task DumpAsync(NetlinkAddressSocket netlink, KernelAddressTable table, ushort type, byte[] buffer,
        List<NetlinkEvent> events, CancellationToken cancellationToken)
    {
        var sequence = netlink.RequestDump(type);
        while (true)
        {
            events.Clear();
            var received = await netlink.ReceiveAsync(buffer, cancellationToken).ConfigureAwait(false);
            NetlinkRouteReader.Read(buffer.AsSpan(0, received), events);
            foreach (var e in events)
            {
                if (e.Sequence == sequence && e.Kind is NetlinkEventKind.Done)
                {
                    return;
                }

                if (e.Sequence == sequence && e.Kind is NetlinkEventKind.Error && e.Error != 0)
                {
                    throw new SocketException(-e.Error);
                }

                table.Apply(e);
            }
        }
    }

    /// <summary>The fallback: re-read the interfaces on every OS address event and every re-check interval.</summary>
    private async Task FollowNetworkChangeAsync(CancellationToken stoppingToken)
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
                if (Accept(address, allowLoopback, allowLinkLocal))
                {
                    result.Add(address);
                }
            }
        }

        return Order(result);
    }

    /// <summary>Addresses as they are published: normalized, distinct, sorted by family then bytes, at most one record's worth.</summary>
    public static ImmutableArray<IPAddress> Order(IEnumerable<IPAddress> addresses)
    {
        var result = addresses.Select(Locator.Normalize).Distinct().ToList();
        result.Sort(Compare);
        return [.. result.Take(GnsRecord.MaxLocators - 1)];
    }

    /// <summary>What the monitor follows now: the kernel's usable addresses once netlink is followed, else the interfaces.</summary>
    private ImmutableArray<IPAddress> ReadFollowed()
    {
        lock (_gate)
        {
            if (_kernelView is { } view)
            {
                return view;
            }
        }

        return ReadInterfaces(_options.AllowLoopback, _options.AllowLinkLocal);
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
            notify = [.. _subscribers.Select(s => s.Action)];
        }

        Log.AddressesChanged(_logger, string.Join(' ', snapshot.Addresses), snapshot.Generation);
        foreach (var subscriber in notify)
        {
            try
            {
                subscriber();
            }
#pragma warning disable CA1031 // One subscriber's bug must not keep the change from the ones after it (the state files, the GNS watch).
            catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
            {
                Log.SubscriberFailed(_logger, e);
            }
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
                var at = owner._subscribers.FindIndex(s => s.Action == action);
                if (at >= 0)
                {
                    owner._subscribers.RemoveAt(at);
                }
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

        [LoggerMessage(7005, LogLevel.Warning, "Cannot follow the kernel's address notifications ({Reason}); re-reading the interfaces on OS events and every re-check interval instead.")]
        public static partial void NetlinkUnavailable(ILogger logger, string reason);

        [LoggerMessage(7007, LogLevel.Error, "A part of the daemon failed on an address change; the others were told.")]
        public static partial void SubscriberFailed(ILogger logger, Exception exception);

        [LoggerMessage(7006, LogLevel.Debug, "Reading the kernel's links and addresses again: {Reason}.")]
        public static partial void NetlinkResync(ILogger logger, string reason);
    }
}
