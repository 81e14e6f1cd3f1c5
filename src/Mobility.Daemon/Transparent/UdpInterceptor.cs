using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Mobility.Daemon.Access;
using Mobility.Daemon.Forwarding;
using Mobility.Protocol.Identity;
using Mobility.Transport;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// UDP to virtual addresses (docs/transparent.md, "UDP"): TPROXY delivers a flow's first datagrams to a
/// transparent listener on 127.0.0.1 (and ::1) with their original destination. A flow is the program's
/// source endpoint and the virtual destination endpoint; each gets a session: the program's user must pass
/// the local access rule (its socket's owner in the kernel's UDP table), then a socket bound to the virtual
/// endpoint and connected to the program (replies come from the address the program sent to, and the
/// flow's later datagrams reach this socket directly), and a mobile connection to the peer opened with the
/// UDP open header for the destination port, carrying the datagrams as DATAGRAM frames
/// (<see cref="UdpRelay"/>, as <c>mob forward --udp</c> does). Bounded: <see cref="TransparentOptions.MaxUdpSessions"/>
/// sessions, each also a relay (<see cref="ForwardingOptions.MaxRelays"/>); a session ends after
/// <see cref="ForwardingOptions.UdpIdleTimeout"/> without a datagram; a flow whose session could not be opened is
/// dropped for <see cref="RetryDelay"/> before the next attempt. Everything a local program causes is logged at Debug.
/// </summary>
public sealed partial class UdpInterceptor(Microsoft.Extensions.Options.IOptions<MobilitydOptions> options, VirtualAddressMap map, MobileForwarder forwarder,
    LocalAccessPolicy access, TimeProvider time, ILogger<UdpInterceptor> logger) : IAsyncDisposable
{
    /// <summary>A flow whose session failed (refused, unreachable peer) drops its datagrams this long, so a program sending fast costs one attempt a second.</summary>
    public static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

    private readonly MobilitydOptions _options = options.Value;
    private readonly ConcurrentDictionary<(IPEndPoint Source, IPEndPoint Destination), UdpSession> _sessions = new();
    private readonly ConcurrentDictionary<Task, byte> _running = new();
    private CancellationTokenSource? _stopping;
    private TransparentUdpSocket? _ipv4;
    private TransparentUdpSocket? _ipv6;
    private Task[] _loops = [];

    public int? Ipv4Port => _ipv4?.LocalEndPoint.Port;

    public int? Ipv6Port => _ipv6?.LocalEndPoint.Port;

    /// <summary>Flows with a session (being opened, relaying, or waiting out <see cref="RetryDelay"/>).</summary>
    public int Sessions => _sessions.Count;

    /// <summary>Binds the listeners (IPv6 is left out where the kernel has no ::1). Throws <see cref="SocketException"/> without CAP_NET_ADMIN.</summary>
    public void Start()
    {
        _stopping = new CancellationTokenSource();
        _ipv4 = TransparentUdpSocket.Listen(IPAddress.Loopback, UdpForwards.ReceiveBufferSize);
        string ipv6;
        try
        {
            _ipv6 = TransparentUdpSocket.Listen(IPAddress.IPv6Loopback, UdpForwards.ReceiveBufferSize);
            ipv6 = $" and [::1]:{Ipv6Port}";
        }
        catch (SocketException e)
        {
            ipv6 = $"; not on ::1 ({e.Message}): UDP to virtual IPv6 addresses is not intercepted";
        }

        _loops = [.. new[] { _ipv4, _ipv6 }.OfType<TransparentUdpSocket>().Select(s => Task.Run(() => ReceiveLoopAsync(s, _stopping.Token)))];
        Log.Listening(logger, $"127.0.0.1:{Ipv4Port}{ipv6}");
    }

    /// <summary>Closes the listeners and ends every session (their connections are closed gracefully, so the peers' sessions end too).</summary>
    public async Task StopAsync()
    {
        if (_stopping is null)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_loops).ConfigureAwait(false);
        await Task.WhenAll(_running.Keys).ConfigureAwait(false);
        _ipv4?.Dispose();
        _ipv6?.Dispose();
        _stopping.Dispose();
        _stopping = null;
        _ipv4 = _ipv6 = null;
        _loops = [];
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    private async Task ReceiveLoopAsync(TransparentUdpSocket listener, CancellationToken stopping)
    {
        var buffer = new byte[UdpForwards.ReceiveBufferSize];
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await listener.WaitAsync(stopping).ConfigureAwait(false);
                while (listener.TryReceive(buffer) is { } datagram)
                {
                    Deliver(datagram, buffer.AsSpan(0, datagram.Length), stopping);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException e)
            {
                Log.ReceiveFailed(logger, e.Message);
                await Task.Delay(RetryDelay, time, stopping).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>The listener's datagram to its flow's session, opening one when the flow has none and the bounds allow.</summary>
    private void Deliver(InterceptedDatagram datagram, ReadOnlySpan<byte> payload, CancellationToken stopping)
    {
        var key = (datagram.Source, datagram.Destination);
        if (_sessions.TryGetValue(key, out var session))
        {
            session.Deliver(payload);
            return;
        }

        if (!map.TryGetGuid(datagram.Destination.Address, out var guid))
        {
            Log.Dropped(logger, datagram.Source, datagram.Destination, "no peer holds this virtual address");
            return;
        }

        if (_sessions.Count >= _options.Transparent.MaxUdpSessions || !forwarder.TryReserveRelay())
        {
            Log.Dropped(logger, datagram.Source, datagram.Destination, "too many UDP sessions");
            return;
        }

        session = new UdpSession(datagram.Source);
        _sessions[key] = session;
        session.Deliver(payload);
        var run = RunSessionAsync(key, session, guid, stopping);
        _running.TryAdd(run, 0);
        _ = run.ContinueWith(static (t, s) => ((ConcurrentDictionary<Task, byte>)s!).TryRemove(t, out _), _running, CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task RunSessionAsync((IPEndPoint Source, IPEndPoint Destination) flow, UdpSession session, HostGuid guid, CancellationToken stopping)
    {
        await Task.Yield();
        Socket? socket = null;
        MobileConnection? connection = null;
        var relayed = false;
        try
        {
            var verdict = access.Check(UdpSocketTable.FindOwner(flow.Source, flow.Destination));
            if (!verdict.Admitted)
            {
                Log.Dropped(logger, flow.Source, flow.Destination, verdict.Reason);
                return;
            }

            socket = TransparentUdpSocket.Connect(flow.Destination, flow.Source);
            connection = await forwarder.OpenAsync(guid, (ushort)flow.Destination.Port, udp: true, stopping).ConfigureAwait(false);
            Log.Session(logger, flow.Source, flow.Destination, guid.ToString(), "opened");
            var replies = socket;
            using var relay = new UdpRelay(connection, async (datagram, ct) => await replies.SendAsync(datagram, SocketFlags.None, ct).ConfigureAwait(false),
                _options.Forwarding.UdpIdleTimeout, time);
            session.Attach(relay);
            relayed = true;
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(stopping, relay.Ended);
            var fromProgram = MobileForwarder.ReceiveLocalAsync(socket, relay, stop.Token);
            var end = await relay.RunAsync(_options.Forwarding.HandshakeTimeout, stopping).ConfigureAwait(false);
            await stop.CancelAsync().ConfigureAwait(false);
            await fromProgram.ConfigureAwait(false);
            Log.Session(logger, flow.Source, flow.Destination, guid.ToString(), $"ended: {end}");
        }
        catch (Exception e) when (e is OpenRefusedException or MobileConnectionException or Gns.Client.GnsException or SocketException or IOException
                                      or OperationCanceledException or ObjectDisposedException)
        {
            Log.Dropped(logger, flow.Source, flow.Destination, e.Message);
        }
        finally
        {
            if (relayed || stopping.IsCancellationRequested)
            {
                // Out of the table first: a datagram the listener takes meanwhile opens a new session instead of reaching this one.
                _sessions.TryRemove(KeyValuePair.Create(flow, session));
            }

            socket?.Dispose();
            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }

            if (!relayed && !stopping.IsCancellationRequested)
            {
                // The flow's datagrams reach the listener meanwhile, which finds this session and drops them past its few queued ones.
                await Task.Delay(RetryDelay, time, stopping).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                _sessions.TryRemove(KeyValuePair.Create(flow, session));
            }

            forwarder.ReleaseRelay();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(8700, LogLevel.Information, "UDP interception on {Listeners}.")]
        public static partial void Listening(ILogger logger, string listeners);

        [LoggerMessage(8702, LogLevel.Debug, "UDP {Source} -> {Destination}: session to {Guid} {What}.")]
        public static partial void Session(ILogger logger, IPEndPoint source, IPEndPoint destination, string guid, string what);

        [LoggerMessage(8703, LogLevel.Debug, "UDP {Source} -> {Destination} dropped: {Reason}.")]
        public static partial void Dropped(ILogger logger, IPEndPoint source, IPEndPoint destination, string reason);

        [LoggerMessage(8705, LogLevel.Warning, "UDP interception: receiving failed: {Error}.")]
        public static partial void ReceiveFailed(ILogger logger, string error);
    }
}
