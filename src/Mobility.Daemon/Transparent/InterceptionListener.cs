using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Access;
using Mobility.Daemon.Forwarding;
using Mobility.Gns.Client;
using Mobility.Net.EndPoints;
using Mobility.Transport;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// Where the interception rules send connections to virtual addresses: a listener on 127.0.0.1 and one on
/// ::1 (where REDIRECT delivers a host's own connections), each on a port the kernel picks. For each
/// connection: its original destination (SO_ORIGINAL_DST) must be a virtual address that names a peer
/// (<see cref="VirtualAddressMap"/>), and its program's user must pass the local access rule (as a SOCKS5
/// client must); then a mobile stream to that peer and port is opened and relayed exactly as the SOCKS5
/// endpoint does (<see cref="MobileForwarder.OpenAsync"/>, <see cref="MobileForwarder.StartRelay"/>).
/// With opportunistic mode (<see cref="Opportunistic"/>), connections to ordinary addresses arrive too: they go through
/// <see cref="MobileForwarder.ConnectAddressAsync(IPEndPoint, IAddressOwnerResolver?, CancellationToken)"/> with the owner
/// lookup in a time budget (<see cref="OwnerLookupBudget"/>): a mobile stream when a verified mobile host owns the address
/// (and the program's user passes the local access rule), else plain TCP from the daemon (marked), spliced.
/// Anything else is reset.
/// </summary>
public sealed partial class InterceptionListener : IAsyncDisposable
{
    private readonly MobilitydOptions _options;
    private readonly VirtualAddressMap _map;
    private readonly MobileForwarder _forwarder;
    private readonly LocalAccessPolicy _access;
    private readonly HeldSourceAddresses _held;
    private readonly ILogger<InterceptionListener> _logger;
    private CancellationTokenSource? _stopping;
    private Socket? _ipv4;
    private Socket? _ipv6;
    private Task[] _loops = [];
    private volatile OwnerLookupBudget? _opportunistic;
    private long _mobile;
    private long _plain;

    public InterceptionListener(IOptions<MobilitydOptions> options, VirtualAddressMap map, MobileForwarder forwarder, LocalAccessPolicy access,
        HeldSourceAddresses held, ILogger<InterceptionListener> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _map = map;
        _forwarder = forwarder;
        _access = access;
        _held = held;
        _logger = logger;
    }

    public int? Ipv4Port => (_ipv4?.LocalEndPoint as IPEndPoint)?.Port;

    public int? Ipv6Port => (_ipv6?.LocalEndPoint as IPEndPoint)?.Port;

    /// <summary>
    /// Opportunistic mode: the owner lookup (in its budget) connections to ordinary addresses are decided by; null: off,
    /// and such connections are reset (they reach the listener only while the rules of opportunistic mode are installed).
    /// </summary>
    public OwnerLookupBudget? Opportunistic
    {
        get => _opportunistic;
        set => _opportunistic = value;
    }

    /// <summary>Intercepted connections to ordinary addresses carried as mobile streams, and as plain TCP, since the daemon started.</summary>
    public (long Mobile, long Plain) OpportunisticCounts => (Interlocked.Read(ref _mobile), Interlocked.Read(ref _plain));

    /// <summary>Binds both listeners (IPv6 is left out, and its rule sends to a closed port, where the kernel has no ::1).</summary>
    public void Start()
    {
        _stopping = new CancellationTokenSource();
        _ipv4 = ListenSockets.ListenTcp(new IPEndPoint(IPAddress.Loopback, 0), "interception listener (transparent mode)", backlog: 512);
        try
        {
            _ipv6 = ListenSockets.ListenTcp(new IPEndPoint(IPAddress.IPv6Loopback, 0), "interception listener (transparent mode)", backlog: 512);
        }
        catch (ListenerBindException e)
        {
            Log.NoIpv6(_logger, e.Message);
        }

        _loops = [.. new[] { _ipv4, _ipv6 }.OfType<Socket>().Select(s => AcceptLoopAsync(s, _stopping.Token))];
        Log.Listening(_logger, Ipv4Port ?? 0, Ipv6Port ?? 0);
    }

    /// <summary>Closes the listeners; relays already running go on (they belong to the forwarder).</summary>
    public async Task StopAsync()
    {
        if (_stopping is null)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        _ipv4?.Dispose();
        _ipv6?.Dispose();
        await Task.WhenAll(_loops).ConfigureAwait(false);
        _stopping.Dispose();
        _stopping = null;
        _ipv4 = _ipv6 = null;
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    private async Task AcceptLoopAsync(Socket listener, CancellationToken stopping)
    {
        while (await AcceptLoop.NextAsync(listener, stopping).ConfigureAwait(false) is { } client)
        {
            if (!_forwarder.TryReserveRelay())
            {
                Log.Refused(_logger, client.RemoteEndPoint, null, "too many relays");
                Reset(client);
                continue;
            }

            client.NoDelay = true;
            _forwarder.Track(ServeAsync(client, stopping));
        }
    }

    private async Task ServeAsync(Socket client, CancellationToken stopping)
    {
        var relaying = false;
        var original = OriginalDestination.Of(client);
        try
        {
            if (original is null || client.RemoteEndPoint is not IPEndPoint source)
            {
                Log.Refused(_logger, client.RemoteEndPoint, original, "not a redirected connection");
                return;
            }

            var isVirtual = _map.Pool.Contains(original.Address) || VirtualAddressPool.IsVirtualIpv6(original.Address);
            if (!isVirtual && Opportunistic is { } owners)
            {
                relaying = await ConnectOpportunisticAsync(client, source, original, owners, stopping).ConfigureAwait(false);
                return;
            }

            if (!_map.TryGetGuid(original.Address, out var guid))
            {
                Log.Refused(_logger, source, original, "no peer holds this virtual address");
                return;
            }

            // The program's socket is the kernel's row from its address to the original destination.
            var verdict = _access.Check(TcpSocketTable.FindOwner(source, original));
            if (!verdict.Admitted)
            {
                Log.Refused(_logger, source, original, verdict.Reason);
                return;
            }

            using var connect = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            connect.CancelAfter(_options.Forwarding.ConnectTimeout);
            // The program's first bytes, when it spoke first, go with the open header (one round trip less).
            var connection = await _forwarder.OpenAsync(guid, (ushort)original.Port, client, connect.Token).ConfigureAwait(false);
            Log.Intercepted(_logger, source, original, guid.ToString());
            _forwarder.StartRelay(connection, client);
            relaying = true;
        }
        catch (Exception e) when (e is OpenRefusedException or MobileConnectionException or GnsException or SocketException or IOException
                                      or OperationCanceledException)
        {
            Log.Refused(_logger, client.RemoteEndPoint, original, e.Message);
        }
        finally
        {
            if (!relaying)
            {
                _forwarder.ReleaseRelay();
                Reset(client);
            }
        }
    }

    /// <summary>
    /// Opportunistic mode: mobile when the owner lookup finds a verified mobile host within its budget and the program's
    /// user may use the daemon's identity (the local access rule, asked only then: most connections go plain, and reading
    /// the kernel's TCP table costs); plain TCP otherwise, as without the daemon.
    /// </summary>
    private async Task<bool> ConnectOpportunisticAsync(Socket client, IPEndPoint source, IPEndPoint original, OwnerLookupBudget owners,
        CancellationToken stopping)
    {
        var admitted = new AdmittedOwners(owners, () => _access.Check(TcpSocketTable.FindOwner(source, original)));
        var connection = await _forwarder.ConnectAddressAsync(original, admitted, stopping).ConfigureAwait(false);
        if (connection.Mobile is { } mobile)
        {
            Interlocked.Increment(ref _mobile);
            Log.OpportunisticMobile(_logger, source, original, mobile.RemoteGuid.ToString());
            // The program's socket keeps this host's address as its source: held on lo if the host moves away from it.
            _forwarder.StartRelay(mobile, client, lease: _held.Use(source.Address));
        }
        else
        {
            Interlocked.Increment(ref _plain);
            Log.OpportunisticPlain(_logger, source, original, admitted.Refusal ?? connection.PlainReason ?? "");
            _forwarder.StartPlainRelay(client, connection.PlainSocket!);
        }

        return true;
    }

    /// <summary>The owner lookup, whose owner is kept only when the program's user passes the local access rule (else plain TCP).</summary>
    private sealed class AdmittedOwners(IAddressOwnerResolver inner, Func<LocalAccessVerdict> check) : IAddressOwnerResolver
    {
        public string? Refusal { get; private set; }

        public async ValueTask<AddressOwner?> ResolveAsync(IPAddress address, CancellationToken cancellationToken)
        {
            if (await inner.ResolveAsync(address, cancellationToken).ConfigureAwait(false) is not { } owner)
            {
                return null;
            }

            var verdict = check();
            Refusal = verdict.Admitted ? null : verdict.Reason;
            return verdict.Admitted ? owner : null;
        }

        public void Forget(IPAddress address) => inner.Forget(address);
    }

    /// <summary>Closes with a RST, so the program sees "connection reset" at once rather than an empty stream.</summary>
    private static void Reset(Socket client)
    {
        try
        {
            client.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException)
        {
        }

        client.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(8450, LogLevel.Information, "Interception listener on 127.0.0.1:{Ipv4Port} and [::1]:{Ipv6Port}.")]
        public static partial void Listening(ILogger logger, int ipv4Port, int ipv6Port);

        [LoggerMessage(8451, LogLevel.Information, "Interception listener: no IPv6 loopback ({Error}); IPv6 connections to virtual addresses will be refused.")]
        public static partial void NoIpv6(ILogger logger, string error);

        [LoggerMessage(8452, LogLevel.Debug, "Intercepted {Source} -> {Destination}: mobile stream to {Guid}.")]
        public static partial void Intercepted(ILogger logger, IPEndPoint source, IPEndPoint destination, string guid);

        [LoggerMessage(8453, LogLevel.Debug, "Interception of {Source} -> {Destination} refused: {Reason}.")]
        public static partial void Refused(ILogger logger, EndPoint? source, IPEndPoint? destination, string reason);

        [LoggerMessage(8900, LogLevel.Debug, "Opportunistic: {Source} -> {Destination} carried as a mobile stream to its verified owner {Guid}.")]
        public static partial void OpportunisticMobile(ILogger logger, IPEndPoint source, IPEndPoint destination, string guid);

        [LoggerMessage(8901, LogLevel.Debug, "Opportunistic: {Source} -> {Destination} carried as plain TCP: {Reason}.")]
        public static partial void OpportunisticPlain(ILogger logger, IPEndPoint source, IPEndPoint destination, string reason);
    }
}
