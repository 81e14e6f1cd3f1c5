using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Protocol.Identity;
using Mobility.Transport;

namespace Mobility.Daemon.Forwarding;

/// <summary>A UDP forward: datagrams to <see cref="Local"/> go to <see cref="Peer"/>'s UDP <see cref="Port"/>.</summary>
public sealed record UdpForwardView(IPEndPoint Local, HostGuid Peer, int Port, int Sessions);

/// <summary>
/// UDP forwards opened by the daemon itself (no relaying process): each listens on a UDP port of
/// 127.0.0.1, and each local source (address and port of the application's socket) gets its own
/// mobile connection to the peer, opened with a "MUDP" open header, whose datagram frames carry
/// the source's datagrams and bring the replies back to it. A session ends after
/// <see cref="ForwardingOptions.UdpIdleTimeout"/> without a datagram; the next datagram from that
/// source opens a new one. Sessions count as relays (<see cref="ForwardingOptions.MaxRelays"/>);
/// forwards are bounded by <see cref="ForwardingOptions.MaxUdpForwards"/>.
/// </summary>
public sealed partial class UdpForwards : IHostedService, IAsyncDisposable
{
    /// <summary>Receive buffer of a UDP socket: the largest UDP payload fits, so nothing is truncated before the size check.</summary>
    public const int ReceiveBufferSize = 64 * 1024;

    /// <summary>Datagrams a session holds while its connection is being opened; more are dropped.</summary>
    public const int MaxPendingDatagrams = 16;

    private readonly Dictionary<int, Forward> _forwards = [];
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly MobileForwarder _forwarder;
    private readonly ForwardingOptions _options;
    private readonly ILogger<UdpForwards> _logger;
    private readonly TimeProvider _time;
    private int _disposed;

    public UdpForwards(MobileForwarder forwarder, IOptions<MobilitydOptions> options, TimeProvider time, ILogger<UdpForwards> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _forwarder = forwarder;
        _options = options.Value.Forwarding;
        _time = time;
        _logger = logger;
    }

    /// <summary>The forwards, by local port.</summary>
    public System.Collections.Immutable.ImmutableArray<UdpForwardView> List()
    {
        lock (_gate)
        {
            return [.. _forwards.Values.OrderBy(f => f.Local.Port).Select(f => f.View())];
        }
    }

    /// <summary>
    /// Listens on 127.0.0.1:<paramref name="localPort"/> (0: a free port) and forwards what arrives to
    /// <paramref name="peer"/>'s UDP <paramref name="port"/>. <see cref="ArgumentException"/>: a bad
    /// port, a port that cannot be bound, or <see cref="ForwardingOptions.MaxUdpForwards"/> reached.
    /// </summary>
    public UdpForwardView Start(int localPort, HostGuid peer, int port)
    {
        if (localPort is < 0 or > ushort.MaxValue || port is < 1 or > ushort.MaxValue)
        {
            throw new ArgumentException($"Ports are 1 to 65535 (0 for a free local port): {localPort}, {port}.");
        }

        if (peer == HostGuid.Empty)
        {
            throw new ArgumentException("The empty GUID is no peer.", nameof(peer));
        }

        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, localPort));
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new ArgumentException($"cannot bind UDP 127.0.0.1:{localPort}: {e.Message}", nameof(localPort), e);
        }

        var forward = new Forward(this, socket, peer, (ushort)port);
        lock (_gate)
        {
            if (_forwards.Count >= _options.MaxUdpForwards)
            {
                socket.Dispose();
                throw new ArgumentException($"At most {_options.MaxUdpForwards} UDP forwards at once (Forwarding:MaxUdpForwards).");
            }

            _forwards[forward.Local.Port] = forward;
        }

        forward.Start(_stopping.Token);
        MobileForwarder.Log.ForwardStarted(_logger, forward.Local, peer.ToString(), port);
        return forward.View();
    }

    /// <summary>Stops the forward on <paramref name="localPort"/> and ends its sessions; false when there is none.</summary>
    public bool Stop(int localPort)
    {
        Forward? forward;
        lock (_gate)
        {
            if (!_forwards.Remove(localPort, out forward))
            {
                return false;
            }
        }

        forward.Stop();
        _forwarder.Track(forward.Completion);
        MobileForwarder.Log.ForwardStopped(_logger, forward.Local);
        return true;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        Forward[] all;
        lock (_gate)
        {
            all = [.. _forwards.Values];
            _forwards.Clear();
        }

        foreach (var forward in all)
        {
            forward.Stop();
        }

        await Task.WhenAll(all.Select(f => f.Completion)).ConfigureAwait(false);
    }

    /// <summary>Stops every forward; once (the container disposes the hosted service and the singleton, the same object).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await StopAsync(CancellationToken.None).ConfigureAwait(false);
            _stopping.Dispose();
        }
    }

    /// <summary>One listening socket and its sessions, one per local source.</summary>
    private sealed class Forward(UdpForwards owner, Socket socket, HostGuid peer, ushort port)
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<IPEndPoint, UdpSession> _sessions = new();
        private readonly CancellationTokenSource _stop = new();

        public IPEndPoint Local { get; } = (IPEndPoint)socket.LocalEndPoint!;

        public Task Completion { get; private set; } = Task.CompletedTask;

        public UdpForwardView View() => new(Local, peer, port, _sessions.Count);

        public void Start(CancellationToken stopping)
        {
            stopping.Register(static s => ((CancellationTokenSource)s!).Cancel(), _stop);
            Completion = Task.Run(() => RunAsync(_stop.Token));
        }

        public void Stop() => _stop.Cancel();

        private async Task RunAsync(CancellationToken cancellationToken)
        {
            var buffer = new byte[ReceiveBufferSize];
            EndPoint any = new IPEndPoint(IPAddress.Any, 0);
            try
            {
                while (true)
                {
                    SocketReceiveFromResult received;
                    try
                    {
                        received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, cancellationToken).ConfigureAwait(false);
                    }
                    catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset)
                    {
                        // ICMP port unreachable from a reply to a source that has gone: keep receiving.
                        continue;
                    }

                    var source = (IPEndPoint)received.RemoteEndPoint;
                    if (!_sessions.TryGetValue(source, out var session))
                    {
                        if (_sessions.Count >= owner._options.MaxRelays || !owner._forwarder.TryReserveRelay())
                        {
                            MobileForwarder.Log.SessionRefused(owner._logger, Local, source);
                            continue;
                        }

                        session = new UdpSession(source);
                        _sessions[source] = session;
                        owner._forwarder.Track(RunSessionAsync(session, cancellationToken));
                    }

                    session.Deliver(buffer.AsSpan(0, received.ReceivedBytes));
                }
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                socket.Dispose();
            }
        }

        /// <summary>Opens the session's connection (datagrams wait meanwhile, up to <see cref="MaxPendingDatagrams"/>), then relays until it ends.</summary>
        private async Task RunSessionAsync(UdpSession session, CancellationToken cancellationToken)
        {
            MobileConnection? connection = null;
            try
            {
                connection = await owner._forwarder.OpenAsync(peer, port, udp: true, cancellationToken).ConfigureAwait(false);
                MobileForwarder.Log.SessionOpened(owner._logger, Local, session.Source, peer.ToString(), port);
                using var relay = new UdpRelay(connection,
                    async (datagram, ct) => await socket.SendToAsync(datagram, SocketFlags.None, session.Source, ct).ConfigureAwait(false),
                    owner._options.UdpIdleTimeout, owner._time);
                session.Attach(relay);
                var end = await relay.RunAsync(owner._options.HandshakeTimeout, cancellationToken).ConfigureAwait(false);
                MobileForwarder.Log.ForwardSessionEnded(owner._logger, Local, session.Source, end);
            }
            catch (Exception e) when (e is MobileConnectionException or IOException or OperationCanceledException or ObjectDisposedException)
            {
                MobileForwarder.Log.SessionFailed(owner._logger, Local, session.Source, e.Message);
            }
            finally
            {
                _sessions.TryRemove(KeyValuePair.Create(session.Source, session));
                owner._forwarder.ReleaseRelay();
                if (connection is not null)
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }
}
