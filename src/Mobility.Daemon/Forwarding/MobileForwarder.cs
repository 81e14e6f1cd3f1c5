using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.Identity;
using Mobility.Net.Threading;
using Mobility.Protocol.Identity;
using Mobility.Net.EndPoints;
using Mobility.Transport;
using Mobility.Daemon.Relay;
using Mobility.Transport.Flows;
using Mobility.Transport.Relay;

namespace Mobility.Daemon.Forwarding;

/// <summary>The peer answered an open header with something other than <see cref="OpenStatus.Ok"/>.</summary>
public sealed class OpenRefusedException : IOException
{
    public OpenRefusedException(OpenStatus status) : base($"The peer refused the stream: {status}.") => Status = status;

    public OpenRefusedException() : this(OpenStatus.NotExposed)
    {
    }

    public OpenRefusedException(string message) : base(message)
    {
    }

    public OpenRefusedException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public OpenStatus Status { get; }
}

/// <summary>
/// mobilityd's mobile transport: a <see cref="MobileListener"/> with the host key on
/// <see cref="MobilitydOptions.Transport"/> whose connections are forwarded, after an
/// <see cref="OpenHeader"/>, to exposed ports on 127.0.0.1; and a <see cref="MobileConnector"/> for
/// outgoing streams (<see cref="OpenAsync"/>, used by the SOCKS5 endpoint). Follows the host's
/// addresses: a listener bound to a specific address moves with them (RebindAsync), and outgoing
/// connections are told the usable addresses (NotifyLocalAddresses: a path whose address is gone
/// moves to a standby path or resumes, another address becomes a standby path). Started before the record publisher, which
/// publishes <see cref="LocalEndPoint"/>'s real port.
/// </summary>
public sealed partial class MobileForwarder : IHostedService, IAsyncDisposable
{
    private IPEndPoint? _listening;
    private readonly MobilitydOptions _options;
    private readonly DaemonIdentity _identity;
    private readonly AddressMonitor _addresses;
    private readonly ExposedPorts _exposed;
    private readonly GnsPeerLocator _locator;
    private readonly VerifiedAddressOwners _owners;
    private readonly TimeProvider _time;
    private readonly ILogger<MobileForwarder> _logger;
    private readonly ILoggerFactory _loggers;
    private readonly Transparent.SocketMark _mark;
    private readonly Inbound.InboundDelivery _inbound;
    private readonly ConcurrentDictionary<Task, byte> _relays = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly AsyncAutoResetSignal _moved = new();
    private readonly Lock _handOverGate = new();
    private MobileListener? _listener;
    private MobileConnector? _connector;
    private RelayRegistrar? _registrar;
    private IDisposable? _subscription;
    private Task _acceptLoop = Task.CompletedTask;
    private Task _moveLoop = Task.CompletedTask;
    private Task _rehearsal = Task.CompletedTask;
    private int _active;
    private int _listenerDisposed;
    private readonly Nat.NatDiscovery? _nat;
    private readonly PortMapping.PortMapper? _portMapper;

    public MobileForwarder(IOptions<MobilitydOptions> options, DaemonIdentity identity, AddressMonitor addresses, ExposedPorts exposed,
        GnsPeerLocator locator, VerifiedAddressOwners owners, Transparent.SocketMark mark, Inbound.InboundDelivery inbound, TimeProvider time,
        ILoggerFactory loggers, Nat.NatDiscovery? nat = null, PortMapping.PortMapper? portMapper = null)
    {
        _nat = nat;
        _portMapper = portMapper;
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggers);
        _options = options.Value;
        _identity = identity;
        _addresses = addresses;
        _exposed = exposed;
        _locator = locator;
        _owners = owners;
        _mark = mark;
        _inbound = inbound;
        _time = time;
        _loggers = loggers;
        _logger = loggers.CreateLogger<MobileForwarder>();
    }

    /// <summary>Where the transport listens (the real port once started).</summary>
    public IPEndPoint LocalEndPoint => _listener?.LocalEndPoint ?? throw new InvalidOperationException("The transport is not started.");

    /// <summary>
    /// Whether the transport listener takes connections to <paramref name="address"/>'s family ([::] both,
    /// 0.0.0.0 IPv4 only); true before it is started. The record publisher publishes only such locators.
    /// </summary>
    public bool Serves(IPAddress address) => Volatile.Read(ref _listening) is not { } bound || ListenSockets.ServesFamilyOf(bound, address);

    /// <summary>The home relay this host is registered at now (<c>--relay</c>), published as a Relay locator; null when none.</summary>
    public IPEndPoint? CurrentRelay => _registrar?.Current;

    /// <summary>Raised when <see cref="CurrentRelay"/> changed (the record publisher publishes again).</summary>
    public event EventHandler? RelayChanged;

    /// <summary>Live outgoing mobile connections (opened for SOCKS5 clients).</summary>
    public IReadOnlyCollection<MobileConnection> OutgoingConnections => _connector?.Connections ?? [];

    /// <summary>Live incoming mobile connections.</summary>
    public IReadOnlyCollection<MobileConnection> IncomingConnections => _listener?.Connections ?? [];

    /// <summary>Relays running now (incoming and outgoing).</summary>
    public int ActiveRelays => Volatile.Read(ref _active);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var endpoint = InitialEndPoint();
        var specific = !endpoint.Address.Equals(IPAddress.Any) && !endpoint.Address.Equals(IPAddress.IPv6Any);
        var transport = _options.Forwarding.Transport;
        _listener = new MobileListener(_identity.Key, transport.Apply(new MobileListenerOptions
        {
            LoggerFactory = _loggers,
            TimeProvider = _time,
            MaxPendingHandshakes = transport.MaxPendingHandshakes,
            MaxQueuedHandshakes = transport.MaxQueuedHandshakes,
            ListenBacklog = transport.ListenBacklog,
            FastOpenQueue = transport.FastOpenQueue,
            // The server's side of a simultaneous open, marked like every flow of the daemon.
            PunchFlowFactory = new global::Mobility.Transport.Flows.TcpFlowFactory(_mark.Apply),
            // A client's PUNCH makes this end connect only to addresses its GNS record publishes.
            PunchTargetLocator = _locator,
        }));
        try
        {
            _listener.Start(endpoint);
        }
        catch (ListenerBindException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse && _options.TransportEndPoint is null
                                              && _options.TransportPort == MobilitydOptions.DefaultTransportPort)
        {
            // The default port is taken (another daemon on the host): any port will do, since peers
            // find the port in the record. A configured endpoint or port is required, so it fails.
            Log.DefaultPortTaken(_logger, endpoint, e.InnerException!.Message);
            endpoint = new IPEndPoint(endpoint.Address, 0);
            _listener.Start(endpoint);
        }
        catch (ListenerBindException e)
        {
            var option = _options.TransportEndPoint is null ? "TransportPort (--transport-port)" : MobilitydOptions.TransportOption;
            throw new IOException($"cannot bind TCP {e.EndPoint} (mobile transport, {option}): {e.InnerException!.Message}", e);
        }

        // Marked while transparent mode is on, so that its rules never intercept the daemon's own flows;
        // a peer's Relay locators (RelayEndPoint, from the peer locator) are dialled through their relay.
        var flows = new RelayFlowFactory(new global::Mobility.Transport.Flows.TcpFlowFactory(_mark.Apply));
        _connector = new MobileConnector(_identity.Key, transport.Apply(new MobileConnectionOptions
        {
            LoggerFactory = _loggers,
            TimeProvider = _time,
            LocalAddress = specific ? endpoint.Address : null,
            FlowFactory = flows,
        }));
        // A server that moved calls this host's outgoing connections back on the transport listener.
        _listener.AcceptCallBacksFor(_connector);
        if (_options.RelayTargets is { Count: > 0 } relays)
        {
            _registrar = new RelayRegistrar(_identity.Key, relays, _options.RelayPins, _listener, _loggers.CreateLogger<RelayRegistrar>());
            _registrar.Changed += (_, _) => RelayChanged?.Invoke(this, EventArgs.Empty);
            _registrar.Start();
        }

        _connector.NotifyLocalAddresses(_addresses.Current.Addresses);

        // The record publisher publishes TransportPort: make it the port really bound (port 0 works).
        _options.TransportPort = _listener.LocalEndPoint.Port;
        Volatile.Write(ref _listening, _listener.LocalEndPoint);
        Log.Listening(_logger, _listener.LocalEndPoint);
        _subscription = specific
            ? _addresses.Subscribe(_moved.Set)
            : _addresses.Subscribe(HandOverAddresses, AddressChangeOrder.Transport);
        _acceptLoop = AcceptLoopAsync(_stopping.Token);
        _moveLoop = MoveLoopAsync(specific, _stopping.Token);
        if (transport.RehearseMove)
        {
            _rehearsal = Task.Run(() => RehearseMoveAsync(transport, flows, _stopping.Token), CancellationToken.None);
        }
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _subscription?.Dispose();
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_registrar is { } registrar)
        {
            await registrar.DisposeAsync().ConfigureAwait(false);
        }

        await DisposeListenerAsync().ConfigureAwait(false);
        await Task.WhenAll([_acceptLoop, _moveLoop, _rehearsal, .. _relays.Keys]).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await DisposeListenerAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task DisposeListenerAsync()
    {
        if (_listener is { } listener && Interlocked.Exchange(ref _listenerDisposed, 1) == 0)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Opens a mobile connection to <paramref name="peer"/> (found through the GNS) and asks for its
    /// local <paramref name="port"/>. Throws <see cref="OpenRefusedException"/> when the peer refuses,
    /// <see cref="MobileConnectionException"/> when it cannot be reached.
    /// </summary>
    public Task<MobileConnection> OpenAsync(HostGuid peer, ushort port, CancellationToken cancellationToken)
        => OpenAsync(peer, port, udp: false, cancellationToken);

    /// <summary>Like <see cref="OpenAsync(HostGuid, ushort, CancellationToken)"/>; with <paramref name="udp"/>, a UDP session to the peer's UDP <paramref name="port"/>.</summary>
    public Task<MobileConnection> OpenAsync(HostGuid peer, ushort port, bool udp, CancellationToken cancellationToken)
        => OpenAsync(peer, port, udp, earlyFrom: null, cancellationToken);

    /// <summary>
    /// Most bytes a program has already written that go in the same write as the open header (<see cref="OpenAsync(HostGuid, ushort, Socket, CancellationToken)"/>):
    /// a request line and headers, a protocol's greeting; bounded so that an opening costs at most this much memory more, and
    /// below one DATA frame (32 KiB), so they leave in the header's frame.
    /// </summary>
    public const int EarlyDataLimit = 16 * 1024;

    /// <summary>
    /// Like <see cref="OpenAsync(HostGuid, ushort, CancellationToken)"/> for a program's <paramref name="program"/> socket that
    /// is relayed next: once the connection is up, the bytes the program has already written (those waiting in the socket,
    /// up to <see cref="EarlyDataLimit"/>, read without waiting) go in the same write as the open header instead of after
    /// its answer, so a program that speaks first (HTTP, iperf3) saves that round trip. The peer relays them only after
    /// its OK, as any later byte; refused, they are dropped with the connection.
    /// </summary>
    public Task<MobileConnection> OpenAsync(HostGuid peer, ushort port, Socket program, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(program);
        return OpenAsync(peer, port, udp: false, program, cancellationToken);
    }

    private async Task<MobileConnection> OpenAsync(HostGuid peer, ushort port, bool udp, Socket? earlyFrom, CancellationToken cancellationToken)
    {
        var connector = _connector ?? throw new InvalidOperationException("The transport is not started.");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        timeout.CancelAfter(_options.Forwarding.ConnectTimeout);
        var connection = await connector.ConnectAsync(peer, _locator, timeout.Token).ConfigureAwait(false);
        // The peer learns this end's candidates too: a server asked to punch connects to its reflexive one.
        SendDirectCandidates(connection);
        try
        {
            await OpenPortAsync(connection, port, timeout.Token, udp, earlyFrom).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Connects to <paramref name="target"/>, an address and port an application named: when the
    /// address's owner proves a GUID (<see cref="VerifiedAddressOwners"/>) and publishes a transport
    /// endpoint, a mobile connection to that GUID opened on the target's port (like
    /// <see cref="OpenAsync"/>); otherwise, or when that attempt fails before any byte, plain TCP to
    /// the address. Throws <see cref="SocketException"/> when plain TCP cannot connect.
    /// </summary>
    public Task<AddressConnection> ConnectAddressAsync(IPEndPoint target, CancellationToken cancellationToken)
        => ConnectAddressAsync(target, owners: null, cancellationToken);

    /// <summary>
    /// Like <see cref="ConnectAddressAsync(IPEndPoint, CancellationToken)"/>, asking <paramref name="owners"/> (null: the
    /// daemon's <see cref="VerifiedAddressOwners"/>; opportunistic mode passes them wrapped in a
    /// <see cref="Transparent.OwnerLookupBudget"/>). The plain TCP socket carries the daemon's mark while transparent mode is
    /// on, so that the interception rules let it pass.
    /// </summary>
    public async Task<AddressConnection> ConnectAddressAsync(IPEndPoint target, IAddressOwnerResolver? owners, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var connector = _connector ?? throw new InvalidOperationException("The transport is not started.");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        timeout.CancelAfter(_options.Forwarding.ConnectTimeout);
        return await connector.ConnectToAddressAsync(target, new AddressConnectOptions
        {
            Owners = owners ?? _owners,
            Locator = _locator,
            OpenStream = (connection, t, ct) => OpenPortAsync(connection, (ushort)t.Port, ct),
            PlainSocketSetup = _mark.Apply,
        }, timeout.Token).ConfigureAwait(false);
    }

    /// <summary>Writes the open header for <paramref name="port"/> and reads the answer; <see cref="OpenRefusedException"/> unless ok.</summary>
    private static async ValueTask OpenPortAsync(MobileConnection connection, ushort port, CancellationToken cancellationToken, bool udp = false,
        Socket? earlyFrom = null)
    {
        var header = OpenHeader.Create(port, udp);
        var first = header.AsMemory();
        if (earlyFrom is { Available: > 0 } program)
        {
            // What the program wrote already: taken now without waiting (Available bytes are there), sent behind the header.
            var buffer = new byte[OpenHeader.Size + Math.Min(program.Available, EarlyDataLimit)];
            header.CopyTo(buffer, 0);
            var early = program.Receive(buffer.AsSpan(OpenHeader.Size), SocketFlags.None);
            first = buffer.AsMemory(0, OpenHeader.Size + early);
        }

        await connection.WriteAsync(first, cancellationToken).ConfigureAwait(false);
        var status = new byte[1];
        if (await connection.ReadAsync(status, cancellationToken).ConfigureAwait(false) != 1)
        {
            throw new MobileConnectionException(MobileConnectionError.Aborted, "The peer closed the stream before answering the open header.");
        }

        if ((OpenStatus)status[0] != OpenStatus.Ok)
        {
            throw new OpenRefusedException((OpenStatus)status[0]);
        }
    }

    /// <summary>Relays <paramref name="connection"/> and <paramref name="socket"/> until both ends closed; disposes both. Tracked so that stop waits for it.</summary>
    public void StartRelay(MobileConnection connection, Socket socket, ReadOnlyMemory<byte> initialToConnection = default, IDisposable? lease = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(socket);
        Track(RelayAsync(connection, socket, initialToConnection, lease));
    }

    /// <summary>
    /// Relays two plain sockets (an application's and a plain TCP connection to the address it asked for) until both ends
    /// closed, <paramref name="early"/> first to <paramref name="target"/>; disposes both and releases the relay slot. Tracked.
    /// </summary>
    public void StartPlainRelay(Socket client, Socket target, ReadOnlyMemory<byte> early = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(target);
        Track(PlainRelayAsync(client, target, early));
    }

    private async Task PlainRelayAsync(Socket client, Socket target, ReadOnlyMemory<byte> early)
    {
        try
        {
            var a = new NetworkStream(client, ownsSocket: true);
            var b = new NetworkStream(target, ownsSocket: true);
            await using (a.ConfigureAwait(false))
            await using (b.ConfigureAwait(false))
            {
                if (!early.IsEmpty)
                {
                    await b.WriteAsync(early, _stopping.Token).ConfigureAwait(false);
                }

                await StreamCopier.RelayAsync(new RelaySide(a, () => client.Shutdown(SocketShutdown.Send)),
                    new RelaySide(b, () => target.Shutdown(SocketShutdown.Send)), _options.Forwarding.IdleTimeout, _time, _stopping.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            Log.PlainRelayFailed(_logger, e.Message);
        }
        finally
        {
            ReleaseRelay();
        }
    }

    /// <summary>Counts a relay slot; false when <see cref="ForwardingOptions.MaxRelays"/> are running.</summary>
    public bool TryReserveRelay()
    {
        if (Interlocked.Increment(ref _active) > _options.Forwarding.MaxRelays)
        {
            Interlocked.Decrement(ref _active);
            return false;
        }

        return true;
    }

    public void ReleaseRelay() => Interlocked.Decrement(ref _active);

    internal void Track(Task task)
    {
        _relays.TryAdd(task, 0);
        _ = task.ContinueWith(static (t, s) => ((ConcurrentDictionary<Task, byte>)s!).TryRemove(t, out _), _relays, CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private IPEndPoint InitialEndPoint()
    {
        if (_options.TransportEndPoint is { } configured)
        {
            return configured;
        }

        // Default: the transport port on the host's (first) address when they are fixed, else every
        // address of both families ([::] dual stack; 0.0.0.0 where the kernel has no IPv6).
        var current = _addresses.Current;
        return current.Fixed && current.Addresses.Length > 0
            ? new IPEndPoint(current.Addresses[0], _options.TransportPort)
            : ListenSockets.DualStackAny(_options.TransportPort);
    }

    /// <summary>
    /// One move rehearsed over loopback with the transport's settings and flows (<see cref="MoveRehearsal"/>), so the
    /// first real move runs warm code; its outcome is logged (9310, or 9311 as a warning), never fatal.
    /// </summary>
    private async Task RehearseMoveAsync(TransportSettings transport, IFlowFactory flows, CancellationToken cancellationToken)
    {
        var loopback = IPAddress.Loopback;
        try
        {
            var result = await MoveRehearsal.RunAsync(_identity.Key, loopback,
                transport.Apply(new MobileListenerOptions { LoggerFactory = _loggers, TimeProvider = _time, FastOpenQueue = transport.FastOpenQueue }),
                transport.Apply(new MobileConnectionOptions { LoggerFactory = _loggers, TimeProvider = _time, FlowFactory = flows }),
                RehearsalLimit, cancellationToken).ConfigureAwait(false);
            MoveRehearsal.Log.Rehearsed(_logger, loopback, result.Took.TotalMilliseconds, result.Move?.ResumedAfter?.TotalMilliseconds ?? 0, result.StandbySwitched, result.CalledBack);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
#pragma warning disable CA1031 // A rehearsal that fails costs only speed: logged, never fatal.
        catch (Exception e)
#pragma warning restore CA1031
        {
            MoveRehearsal.Log.Failed(_logger, loopback, e is OperationCanceledException ? $"not done within {RehearsalLimit.TotalSeconds:0} s" : e.Message);
        }
    }

    /// <summary>How long the start's move rehearsal may take (a few milliseconds when warm; its cold run is what it is for).</summary>
    private static readonly TimeSpan RehearsalLimit = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A listener on the wildcard address does not move: the connections are handed the new addresses on the address
    /// monitor's thread, at once (each only posts to its loop), so they drop their dead paths and resume without waiting
    /// for a thread-pool thread; the relay registration and the GNS watch follow on the move loop.
    /// </summary>
    private void HandOverAddresses()
    {
        lock (_handOverGate)
        {
            // Under the lock, and read here: two changes told on two threads hand over the newer list last.
            var addresses = _addresses.Current.Addresses;
            // First: a call back or connect the hand-over starts must not trust a watch that ran from a gone address.
            _locator.DistrustCached();
            _listener!.NotifyLocalAddresses(addresses);
            _connector!.NotifyLocalAddresses(addresses);
        }

        _moved.Set();
    }

    private async Task MoveLoopAsync(bool specific, CancellationToken cancellationToken)
    {
        try
        {
            while (await _moved.WaitAsync(Timeout.InfiniteTimeSpan, _time, cancellationToken).ConfigureAwait(false))
            {
                var addresses = _addresses.Current.Addresses;
                var bound = _listener!.LocalEndPoint;
                var next = addresses.FirstOrDefault(a => a.AddressFamily == bound.Address.AddressFamily) ?? addresses.FirstOrDefault();
                if (specific && next is not null && !next.Equals(bound.Address))
                {
                    try
                    {
                        var now = await _listener.RebindAsync(new IPEndPoint(next, bound.Port)).ConfigureAwait(false);
                        Volatile.Write(ref _listening, now);
                        Log.Moved(_logger, bound, now);
                    }
                    catch (ListenerBindException e)
                    {
                        Log.RebindFailed(_logger, next, e.Message);
                    }
                }

                if (specific)
                {
                    _locator.DistrustCached();

                    // Incoming connections whose path ran over an address that is gone drop it and call their client
                    // back from a new one. (On the wildcard address HandOverAddresses did this and the next step.)
                    _listener.NotifyLocalAddresses(addresses);
                }

                // A registration at the home relay from an address that is gone is dead: register again from the new one.
                _registrar?.NotifyLocalAddresses(addresses);

                if (specific)
                {
                    // Each connection drops only the paths whose address is gone (switching at once to a
                    // standby path from another address when one is up, else resuming) and joins standby
                    // paths from addresses it does not use yet (make-before-break).
                    _connector!.NotifyLocalAddresses(addresses);
                }

                // The GNS watch ran from the old address too: re-open it now, and catch up on pushes it missed.
                _locator.NotifyLocalAddressChanged();
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private async Task AcceptLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            MobileConnection connection;
            try
            {
                connection = await _listener!.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }

            if (!TryReserveRelay())
            {
                Log.TooManyRelays(_logger, connection.RemoteGuid.ToString());
                await connection.DisposeAsync().ConfigureAwait(false);
                continue;
            }

            SendDirectCandidates(connection);
            Track(ServeAsync(connection, cancellationToken));
        }
    }

    /// <summary>
    /// Tells the peer of a connection where this host can be reached directly (its mapped, reflexive and
    /// local transport endpoints: <see cref="DirectCandidateList"/>), so a connection that came through a
    /// relay can move to a direct path (docs/nat.md, "Direct paths"): the client of an incoming connection
    /// dials them, the server of an outgoing one punches to the reflexive one when asked. Off with
    /// <c>Forwarding:Transport:DirectPaths=false</c>.
    /// </summary>
    private void SendDirectCandidates(MobileConnection connection)
    {
        if (!_options.Forwarding.Transport.DirectPaths || _listener is not { } listener)
        {
            return;
        }

        var (punch, candidates) = DirectCandidateList.Build(_nat?.State ?? Nat.NatState.NotYet, _portMapper?.State ?? PortMapping.PortMappingState.NotYet,
            _addresses.Current.Addresses, listener.LocalEndPoint.Port);
        if (candidates.Length == 0)
        {
            return;
        }

        connection.SetDirectCandidates(punch, candidates);
        DirectLog.CandidatesSent(_logger, connection.RemoteGuid.ToString(), candidates.Length, string.Join(' ', candidates.Select(c => c.EndPoint)));
    }

    private static partial class DirectLog
    {
        [LoggerMessage(4400, LogLevel.Debug, "Sent {Count} direct candidates to {Peer}: {Candidates}")]
        public static partial void CandidatesSent(ILogger logger, string peer, int count, string candidates);
    }

    /// <summary>One incoming stream: the open header, the exposure check, the local connect, the status byte, the relay.</summary>
    private async Task ServeAsync(MobileConnection connection, CancellationToken cancellationToken)
    {
        var reserved = true;
        try
        {
            ushort port;
            bool udp;
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                handshake.CancelAfter(_options.Forwarding.HandshakeTimeout);
                (port, udp) = await ReadOpenHeaderAsync(connection, handshake.Token).ConfigureAwait(false);
            }

            if (udp)
            {
                // The relay slot stays reserved until the session ends (released below).
                await ServeUdpAsync(connection, port, cancellationToken).ConfigureAwait(false);
                return;
            }

            // A port that is not exposed and a port this peer may not open get the same answer, before
            // any local connect, so a peer off the allow-list cannot tell whether the port exists.
            if (_exposed.Find(port, connection.RemoteGuid) is not { } exposed)
            {
                Log.NotExposed(_logger, connection.RemoteGuid.ToString(), port);
                await RefuseAsync(connection, OpenStatus.NotExposed, cancellationToken).ConfigureAwait(false);
                return;
            }

            // From the peer's virtual address or from 127.0.0.1, as the port's source says (Inbound/InboundDelivery).
            Socket socket;
            try
            {
                using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                connect.CancelAfter(_options.Forwarding.ConnectTimeout);
                socket = await _inbound.ConnectAsync(connection.RemoteGuid, port, exposed.Source, connect.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                Log.LocalConnectFailed(_logger, port, e.Message);
                await RefuseAsync(connection, OpenStatus.ConnectionRefused, cancellationToken).ConfigureAwait(false);
                return;
            }

            try
            {
                await connection.WriteAsync(new[] { (byte)OpenStatus.Ok }, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            Log.Forwarding(_logger, connection.RemoteGuid.ToString(), port);
            reserved = false;
            await RelayAsync(connection, socket, default, lease: null).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or OperationCanceledException or ObjectDisposedException)
        {
            Log.StreamFailed(_logger, connection.RemoteGuid.ToString(), e.Message);
        }
        finally
        {
            if (reserved)
            {
                ReleaseRelay();
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static async Task<(ushort Port, bool Udp)> ReadOpenHeaderAsync(MobileConnection connection, CancellationToken cancellationToken)
    {
        var buffer = new byte[OpenHeader.Size];
        var filled = 0;
        while (true)
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(buffer, 0, filled));
            if (OpenHeader.TryRead(ref reader, out var port, out var udp))
            {
                return (port, udp);
            }

            var read = await connection.ReadAsync(buffer.AsMemory(filled), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new InvalidDataException("The stream ended inside the open header.");
            }

            filled += read;
        }
    }

    private async Task RefuseAsync(MobileConnection connection, OpenStatus status, CancellationToken cancellationToken)
    {
        await connection.WriteAsync(new[] { (byte)status }, cancellationToken).ConfigureAwait(false);
        using var close = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        close.CancelAfter(_options.Forwarding.HandshakeTimeout);
        try
        {
            await connection.CloseAsync(close.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            Log.StreamFailed(_logger, connection.RemoteGuid.ToString(), e.Message);
        }
    }

    private async Task RelayAsync(MobileConnection connection, Socket socket, ReadOnlyMemory<byte> initialToConnection, IDisposable? lease)
    {
        try
        {
            var network = new NetworkStream(socket, ownsSocket: true);
            await using (network.ConfigureAwait(false))
            {
                if (!initialToConnection.IsEmpty)
                {
                    await connection.WriteAsync(initialToConnection, _stopping.Token).ConfigureAwait(false);
                }

                var (toLocal, toPeer) = await StreamCopier.RelayAsync(
                    new RelaySide(connection.Stream, connection.ShutdownWrite, () => connection.Available > 0),
                    new RelaySide(network, () => socket.Shutdown(SocketShutdown.Send)),
                    _options.Forwarding.IdleTimeout, _time, _stopping.Token).ConfigureAwait(false);
                Log.RelayEnded(_logger, connection.RemoteGuid.ToString(), toLocal, toPeer);
                if (toLocal == CopyResult.Success && toPeer == CopyResult.Success)
                {
                    using var close = new CancellationTokenSource(_options.Forwarding.HandshakeTimeout);
                    await connection.CloseAsync(close.Token).ConfigureAwait(false);
                }
                else
                {
                    connection.Abort($"relay ended: {toLocal}/{toPeer}");
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            Log.StreamFailed(_logger, connection.RemoteGuid.ToString(), e.Message);
        }
        finally
        {
            ReleaseRelay();
            await connection.DisposeAsync().ConfigureAwait(false);
            lease?.Dispose();
        }
    }

    /// <summary>The forwarder's messages, the UDP sessions' (86xx: MobileForwarder.Udp, UdpForwards) among them.</summary>
    internal static partial class Log
    {
        [LoggerMessage(8001, LogLevel.Information, "Mobile transport listening on {EndPoint}.")]
        public static partial void Listening(ILogger logger, IPEndPoint endPoint);

        [LoggerMessage(8002, LogLevel.Information, "Mobile transport moved from {Old} to {New}.")]
        public static partial void Moved(ILogger logger, IPEndPoint old, IPEndPoint @new);

        [LoggerMessage(8003, LogLevel.Warning, "Could not move the mobile transport to {Address}: {Error}.")]
        public static partial void RebindFailed(ILogger logger, IPAddress address, string error);

        [LoggerMessage(8004, LogLevel.Debug, "Refused a stream from {Guid}: too many relays.")]
        public static partial void TooManyRelays(ILogger logger, string guid);

        [LoggerMessage(8005, LogLevel.Debug, "Refused a stream from {Guid} to port {Port}: not exposed, or not to this peer.")]
        public static partial void NotExposed(ILogger logger, string guid, int port);

        [LoggerMessage(8006, LogLevel.Debug, "Could not connect to exposed port {Port}: {Error}.")]
        public static partial void LocalConnectFailed(ILogger logger, int port, string error);

        [LoggerMessage(8007, LogLevel.Debug, "Forwarding a stream from {Guid} to port {Port}.")]
        public static partial void Forwarding(ILogger logger, string guid, int port);

        [LoggerMessage(8008, LogLevel.Debug, "Stream with {Guid} failed: {Error}.")]
        public static partial void StreamFailed(ILogger logger, string guid, string error);

        [LoggerMessage(8010, LogLevel.Information, "Default transport endpoint {EndPoint} is taken ({Error}); listening on a free port instead.")]
        public static partial void DefaultPortTaken(ILogger logger, IPEndPoint endPoint, string error);

        [LoggerMessage(8009, LogLevel.Debug, "Relay with {Guid} ended: to local {ToLocal}, to peer {ToPeer}.")]
        public static partial void RelayEnded(ILogger logger, string guid, CopyResult toLocal, CopyResult toPeer);

        [LoggerMessage(8612, LogLevel.Debug, "UDP forward {Local}: session for {Source} to {Guid} port {Port} opened.")]
        public static partial void SessionOpened(ILogger logger, IPEndPoint local, IPEndPoint source, string guid, int port);

        [LoggerMessage(8601, LogLevel.Debug, "UDP session from {Guid} to port {Port} ended: {End}.")]
        public static partial void UdpSessionEnded(ILogger logger, string guid, int port, UdpRelayEnd end);

        [LoggerMessage(8600, LogLevel.Debug, "Serving a UDP session from {Guid} to port {Port}.")]
        public static partial void UdpSessionServed(ILogger logger, string guid, int port);

        [LoggerMessage(8930, LogLevel.Debug, "Plain TCP relay ended: {Error}.")]
        public static partial void PlainRelayFailed(ILogger logger, string error);

        [LoggerMessage(8611, LogLevel.Information, "UDP forward {Local} stopped.")]
        public static partial void ForwardStopped(ILogger logger, IPEndPoint local);

        [LoggerMessage(8610, LogLevel.Information, "UDP forward {Local} to {Guid} port {Port} started.")]
        public static partial void ForwardStarted(ILogger logger, IPEndPoint local, string guid, int port);

        [LoggerMessage(8613, LogLevel.Debug, "UDP forward {Local}: session for {Source} ended: {End}.")]
        public static partial void ForwardSessionEnded(ILogger logger, IPEndPoint local, IPEndPoint source, UdpRelayEnd end);

        [LoggerMessage(8615, LogLevel.Debug, "UDP forward {Local}: no session for {Source}: too many relays.")]
        public static partial void SessionRefused(ILogger logger, IPEndPoint local, IPEndPoint source);

        [LoggerMessage(8614, LogLevel.Debug, "UDP forward {Local}: session for {Source} failed: {Error}.")]
        public static partial void SessionFailed(ILogger logger, IPEndPoint local, IPEndPoint source, string error);
    }
}
