using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Addresses;
using Mobility.Net.EndPoints;
using Mobility.Net.Threading;
using Mobility.Protocol.PortMapping;

namespace Mobility.Daemon.PortMapping;

/// <summary>One mapping the gateway granted.</summary>
public sealed record PortMappingEntry(
    PortMappingProtocol Protocol, MappedTransport Transport, ushort InternalPort, IPEndPoint External, TimeSpan Lifetime, DateTimeOffset ObtainedAt)
{
    /// <summary>Renewed at half of the granted lifetime (RFC 6886 section 3.3, RFC 6887 section 11.2.1).</summary>
    public DateTimeOffset RenewAt => ObtainedAt + (Lifetime / 2);

    public DateTimeOffset ExpiresAt => ObtainedAt + Lifetime;

    public string ProtocolName => Protocol switch
    {
        PortMappingProtocol.Pcp => "pcp",
        PortMappingProtocol.NatPmp => "nat-pmp",
        _ => "upnp",
    };

    public string TransportName => Transport == MappedTransport.Tcp ? "tcp" : "udp";
}

/// <summary>The mappings held now, the gateway they are held at, and the last failure (or why mapping is off).</summary>
public sealed record PortMappingState(IPEndPoint? Gateway, ImmutableArray<PortMappingEntry> Mappings, string? Error, DateTimeOffset? CheckedAt)
{
    public static PortMappingState NotYet { get; } = new(null, [], null, null);

    /// <summary>The transport's mapping: peers connect there (an Observed locator of the record).</summary>
    public PortMappingEntry? Transport => Mappings.FirstOrDefault(m => m.Transport == MappedTransport.Tcp);
}

/// <summary>
/// Port mapping through the home NAT (docs/nat.md, "Port mapping"): asks the default gateway to map the transport port
/// (TCP) and the control port (UDP) with PCP MAP, or NAT-PMP when the gateway does not speak PCP, or UPnP IGD when it
/// answers neither (<see cref="UpnpClient"/>); renews each mapping at half of the lifetime granted (a permanent UPnP lease
/// at half of the lifetime asked for); asks again at once after an address change (the address monitor's events) or when a
/// reply's epoch says the gateway lost its state (RFC 6887 section 8.5, RFC 6886 section 3.6); deletes the mappings on
/// stop. The transport's mapping is published as an Observed locator by the record publisher (<see cref="Changed"/>).
/// One loop owns the schedule; the network is behind <see cref="IPortMapGateway"/>.
/// </summary>
public sealed partial class PortMapper : BackgroundService
{
    /// <summary>The first retry after a failed request (then doubling up to <c>Nat:PortMappingMaxRetryDelay</c>).</summary>
    public static readonly TimeSpan FirstRetryDelay = TimeSpan.FromSeconds(30);

    /// <summary>How long deleting the mappings at stop may take: the host is shutting down, and a mapping left behind expires on its own.</summary>
    public static readonly TimeSpan DeleteTimeout = TimeSpan.FromSeconds(2);

    private readonly MobilitydOptions _options;
    private readonly AddressMonitor _addresses;
    private readonly TimeProvider _time;
    private readonly ILogger<PortMapper> _logger;
    private readonly IPortMapGateway _gateway;
    private readonly Func<IPEndPoint?> _findGateway;
    private readonly AsyncAutoResetSignal _wake = new();
    private readonly Lock _gate = new();
    private PortMappingState _state = PortMappingState.NotYet;
    private int _addressesChanged;

    public PortMapper(IOptions<MobilitydOptions> options, AddressMonitor addresses, TimeProvider time, ILogger<PortMapper> logger)
        : this(options, addresses, time, logger, null, null)
    {
    }

    internal PortMapper(IOptions<MobilitydOptions> options, AddressMonitor addresses, TimeProvider time, ILogger<PortMapper> logger,
        IPortMapGateway? gateway, Func<IPEndPoint?>? findGateway)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _addresses = addresses;
        _time = time;
        _logger = logger;
        _gateway = gateway ?? new PortMapClient(_options.Nat.ProbeTimeout, _options.Nat.Attempts, new UpnpClient(_options.Nat.ProbeTimeout, _options.Nat.Attempts, logger));
        _findGateway = findGateway ?? FindGateway;
    }

    /// <summary>Raised when the mappings held change (handlers must be quick).</summary>
    public event Action? Changed;

    public PortMappingState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <summary>The ports mapped: the transport's (TCP) and the control endpoint's (UDP), each when it is fixed.</summary>
    private IEnumerable<(MappedTransport Transport, ushort Port)> Wanted()
    {
        if (_options.TransportPort is > 0 and <= 65535)
        {
            yield return (MappedTransport.Tcp, (ushort)_options.TransportPort);
        }

        if (_options.Control.Length == 0 && _options.ControlPort is > 0 and <= 65535)
        {
            yield return (MappedTransport.Udp, (ushort)_options.ControlPort);
        }
    }

    /// <summary>Why port mapping does not run, or null when it does.</summary>
    private string? Off()
    {
        return _options.Nat.PortMapping ? null : "off (Nat:PortMapping is false)";
    }

    /// <summary>
    /// A host asks its gateway only while it has a private IPv4 address (RFC 1918, or RFC 6598's shared space): the
    /// sign of a NAT in front of it, as Tailscale's portmapper decides. A host with only public (or loopback) addresses
    /// needs no mapping and sends nothing.
    /// </summary>
    public static bool IsPrivate(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.AddressFamily != AddressFamily.InterNetwork)
        {
            return false;
        }

        var b = address.GetAddressBytes();
        return b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) || (b[0] == 100 && (b[1] & 0xc0) == 64);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (Off() is { } off)
        {
            SetState(new PortMappingState(null, [], off, null));
            return;
        }

        var wanted = Wanted().ToArray();
        var slots = wanted.Select(w => new Slot(w.Transport, w.Port)).ToArray();
        using var subscription = _addresses.Subscribe(() =>
        {
            Interlocked.Exchange(ref _addressesChanged, 1);
            _wake.Set();
        });
        IPEndPoint? gateway = null;
        (uint Epoch, DateTimeOffset At)? lastEpoch = null;
        var retry = TimeSpan.Zero;
        DateTimeOffset? retryAt = null;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var behindNat = _addresses.Current.Addresses.Any(IsPrivate);
                var found = behindNat ? _findGateway() : null;
                var moved = Interlocked.Exchange(ref _addressesChanged, 0) == 1;
                if (moved || !Equals(found, gateway))
                {
                    // A new address or another gateway: what was mapped is for the old one. Fresh nonces, ask again now.
                    if (slots.Any(s => s.Mapping is not null))
                    {
                        LogForgotten(_logger, gateway?.ToString() ?? "-", found?.ToString() ?? "-");
                    }

                    foreach (var slot in slots)
                    {
                        slot.Reset();
                    }

                    gateway = found;
                    lastEpoch = null;
                    retry = TimeSpan.Zero;
                    retryAt = null;
                }

                string? error = null;
                var now = _time.GetUtcNow();
                if (gateway is null)
                {
                    error = behindNat ? "no IPv4 default gateway" : "not asked: the host has no private IPv4 address";
                }
                else if (retryAt is null || now >= retryAt)
                {
                    foreach (var slot in slots.Where(s => s.Mapping is null || now >= s.Mapping.RenewAt).ToArray())
                    {
                        try
                        {
                            var granted = await _gateway.MapAsync(
                                new MappingRequest(gateway, slot.Transport, slot.Port, _options.Nat.PortMappingLifetime, slot.Nonce, slot.Mapping?.Protocol,
                                    slot.Mapping?.External),
                                stoppingToken).ConfigureAwait(false);
                            now = _time.GetUtcNow();

                            // UPnP has no epoch (a restarted IGD is seen at the next renewal); PCP and NAT-PMP replies carry one.
                            if (granted.Protocol != PortMappingProtocol.Upnp && lastEpoch is { } last && EpochReset(last.Epoch, last.At, granted.Epoch, now))
                            {
                                // The gateway restarted and forgot every mapping: ask for the others again at once.
                                LogEpochReset(_logger, gateway.ToString(), last.Epoch, granted.Epoch);
                                foreach (var other in slots.Where(s => s != slot))
                                {
                                    other.Mapping = null;
                                }
                            }

                            if (granted.Protocol != PortMappingProtocol.Upnp)
                            {
                                lastEpoch = (granted.Epoch, now);
                            }

                            // A lease of 0 is permanent on some UPnP routers: renew it anyway, as if the lifetime asked for was granted.
                            var lifetime = granted.Lifetime > TimeSpan.Zero ? granted.Lifetime : _options.Nat.PortMappingLifetime;
                            var entry = new PortMappingEntry(granted.Protocol, slot.Transport, slot.Port, granted.External, lifetime, now);
                            if (slot.Mapping is null || !slot.Mapping.External.Equals(entry.External) || slot.Mapping.Protocol != entry.Protocol)
                            {
                                LogMapped(_logger, entry.ProtocolName, entry.TransportName, slot.Port, entry.External.ToString(), (long)entry.Lifetime.TotalSeconds);
                            }

                            slot.Mapping = entry;
                        }
                        catch (Exception e) when (e is PortMappingException or SocketException)
                        {
                            error = e.Message;
                            if (slot.Mapping is { } held && now >= held.ExpiresAt)
                            {
                                slot.Mapping = null;
                            }
                        }
                    }

                    if (error is null)
                    {
                        retry = TimeSpan.Zero;
                        retryAt = null;
                    }
                    else
                    {
                        retry = retry == TimeSpan.Zero ? FirstRetryDelay : TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, _options.Nat.PortMappingMaxRetryDelay.Ticks));
                        retryAt = _time.GetUtcNow() + retry;
                        LogFailed(_logger, error, retry.TotalSeconds);
                    }
                }
                else
                {
                    error = State.Error;
                }

                // Each slot is due at its renewal (an empty one, e.g. after an epoch reset, at once), but not before a retry's time.
                now = _time.GetUtcNow();
                var next = slots.Length == 0 ? DateTimeOffset.MaxValue : slots.Min(s => s.Mapping?.RenewAt ?? now);
                if (retryAt is { } retryTime && retryTime > next)
                {
                    next = retryTime;
                }

                SetState(new PortMappingState(gateway, [.. slots.Select(s => s.Mapping).OfType<PortMappingEntry>()], error, now));
                // The clock read again right before the timer is set: time that passed while the state was published (a
                // slow handler, a preempted thread) is not waited again.
                var wait = slots.Length == 0 ? Timeout.InfiniteTimeSpan
                    : gateway is null ? (behindNat ? FirstRetryDelay : Timeout.InfiniteTimeSpan)
                    : Max(next - _time.GetUtcNow(), TimeSpan.Zero);
                if (wait == TimeSpan.Zero)
                {
                    continue;
                }

                if (await _wake.WaitAsync(wait, _time, stoppingToken).ConfigureAwait(false) && _options.AddressWatch.Debounce > TimeSpan.Zero)
                {
                    await Task.Delay(_options.AddressWatch.Debounce, _time, stoppingToken).ConfigureAwait(false);
                    _wake.TryReset();
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            if (gateway is not null)
            {
                await DeleteAsync(gateway, slots).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Deletes what is held (lifetime 0), each within <see cref="DeleteTimeout"/>; a failure only logs.</summary>
    private async Task DeleteAsync(IPEndPoint gateway, Slot[] slots)
    {
        foreach (var slot in slots.Where(s => s.Mapping is not null))
        {
            using var timeout = new CancellationTokenSource(DeleteTimeout, _time);
            try
            {
                await _gateway.MapAsync(new MappingRequest(gateway, slot.Transport, slot.Port, TimeSpan.Zero, slot.Nonce, slot.Mapping!.Protocol, slot.Mapping.External),
                        timeout.Token)
                    .ConfigureAwait(false);
                LogDeleted(_logger, slot.Mapping.ProtocolName, slot.Mapping.TransportName, slot.Port);
            }
            catch (Exception e) when (e is PortMappingException or SocketException or OperationCanceledException)
            {
                LogDeleteFailed(_logger, slot.Port, e.Message);
            }

            slot.Mapping = null;
        }

        SetState(State with { Mappings = [] });
    }

    /// <summary>
    /// Whether a reply's epoch says the gateway lost its state since the last reply: its clock must have advanced by at
    /// least 7/8 of ours, less 2 s of slack (RFC 6887 section 8.5; RFC 6886 section 3.6 says the same in other words).
    /// </summary>
    public static bool EpochReset(uint previousEpoch, DateTimeOffset previousAt, uint epoch, DateTimeOffset now)
    {
        var elapsed = Math.Max(0, (now - previousAt).TotalSeconds);
        return epoch + 2.0 < previousEpoch + (elapsed * 7 / 8);
    }

    /// <summary><c>auto</c>, <c>IP</c> or <c>IP:PORT</c> (port 5351 when left out); <paramref name="gateway"/> null for auto.</summary>
    public static bool TryParseGateway(string? text, out IPEndPoint? gateway)
    {
        gateway = null;
        if (string.Equals(text, "auto", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        if (IPAddress.TryParse(text, out var address) && address.AddressFamily == AddressFamily.InterNetwork && !text.Contains(':', StringComparison.Ordinal))
        {
            gateway = new IPEndPoint(address, PortMappingMessage.ServerPort);
            return true;
        }

        if (EndPointParser.TryParse(text, out var endPoint) && endPoint.AddressFamily == AddressFamily.InterNetwork)
        {
            gateway = endPoint;
            return true;
        }

        return false;
    }

    /// <summary>The configured gateway, or the IPv4 default route's gateway of an interface that is up.</summary>
    private IPEndPoint? FindGateway()
    {
        if (TryParseGateway(_options.Nat.PortMappingGateway, out var configured) && configured is not null)
        {
            return configured;
        }

        return DefaultGateway() is { } address ? new IPEndPoint(address, PortMappingMessage.ServerPort) : null;
    }

    [SuppressMessage("Design", "CA1031", Justification = "An interface that vanishes while it is read means no gateway, not a failure.")]
    private static IPAddress? DefaultGateway()
    {
        try
        {
            return NetworkInterface.GetAllNetworkInterfaces()
                .Where(i => i.OperationalStatus == OperationalStatus.Up && i.NetworkInterfaceType != NetworkInterfaceType.Loopback)
                .SelectMany(i => i.GetIPProperties().GatewayAddresses)
                .Select(g => g.Address)
                .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !a.Equals(IPAddress.Any));
        }
        catch (Exception e) when (e is NetworkInformationException or IOException)
        {
            return null;
        }
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    public override void Dispose()
    {
        (_gateway as IDisposable)?.Dispose();
        base.Dispose();
    }

    private void SetState(PortMappingState state)
    {
        PortMappingState previous;
        lock (_gate)
        {
            previous = _state;
            _state = state;
        }

        if (!previous.Mappings.Select(m => (m.Transport, m.External)).SequenceEqual(state.Mappings.Select(m => (m.Transport, m.External))))
        {
            Changed?.Invoke();
        }
    }

    /// <summary>One wanted mapping: its nonce (kept for renewals, new after a move) and what the gateway granted.</summary>
    private sealed class Slot(MappedTransport transport, ushort port)
    {
        public MappedTransport Transport { get; } = transport;

        public ushort Port { get; } = port;

        public PcpNonce Nonce { get; private set; } = PcpNonce.Random();

        public PortMappingEntry? Mapping { get; set; }

        public void Reset()
        {
            Mapping = null;
            Nonce = PcpNonce.Random();
        }
    }

    [LoggerMessage(4300, LogLevel.Information, "Port mapping ({Protocol}): {Transport} port {Port} is reachable at {External} for {Lifetime} s.")]
    private static partial void LogMapped(ILogger logger, string protocol, string transport, ushort port, string external, long lifetime);

    [LoggerMessage(4301, LogLevel.Debug, "Port mapping failed: {Error}; asking again in {Retry} s.")]
    private static partial void LogFailed(ILogger logger, string error, double retry);

    [LoggerMessage(4302, LogLevel.Information, "Port mapping: gateway {Gateway} lost its state (epoch {Previous} -> {Epoch}); mapping again.")]
    private static partial void LogEpochReset(ILogger logger, string gateway, uint previous, uint epoch);

    [LoggerMessage(4303, LogLevel.Information, "Port mapping: addresses or gateway changed ({Old} -> {New}); mapping again.")]
    private static partial void LogForgotten(ILogger logger, string old, string @new);

    [LoggerMessage(4304, LogLevel.Information, "Port mapping ({Protocol}): deleted the mapping of {Transport} port {Port}.")]
    private static partial void LogDeleted(ILogger logger, string protocol, string transport, ushort port);

    [LoggerMessage(4305, LogLevel.Debug, "Port mapping: could not delete the mapping of port {Port}: {Error}.")]
    private static partial void LogDeleteFailed(ILogger logger, ushort port, string error);
}
