using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Net.EndPoints;
using Mobility.Net.RateLimiting;
using Mobility.Protocol.Gns;

namespace Mobility.Gns.Udp;

/// <summary>
/// The GNS datagram endpoint: one UDP socket, several receive loops. Lookups are answered from the
/// receive loop; updates and removals (signature check, durable write) run off it, at most
/// <see cref="GnsServerOptions.MaxInFlightUpdates"/> at once, and are acknowledged when stored.
/// Every source is rate limited. The socket is bound in <see cref="StartAsync"/>, so
/// <see cref="LocalEndPoint"/> is known (with the real port) once the host has started. With
/// <see cref="GnsServerOptions.UdpReflect"/>, a second socket answers Reflect datagrams only, and a reflect
/// that asks for it is answered from the other socket (docs/protocol.md, "Reflect").
/// </summary>
public sealed partial class GnsUdpServer : BackgroundService
{
    /// <summary>One byte more than the largest valid datagram, so an oversized one is seen as oversized rather than cut to a valid size.</summary>
    private const int ReceiveBufferSize = GnsDatagram.MaxDatagramSize + 1;

    /// <summary>Kernel receive buffer of the UDP socket: about 3,000 full-size datagrams.</summary>
    private const int SocketReceiveBufferBytes = 4 * 1024 * 1024;

    private readonly GnsRequestProcessor _processor;
    private readonly SourceRateLimiter _limiter;
    private readonly GnsServerOptions _options;
    private readonly ILogger<GnsUdpServer> _logger;
    private readonly SemaphoreSlim _inFlight;
    private Socket? _socket;
    private Socket? _reflectSocket;

    public GnsUdpServer(GnsRequestProcessor processor, SourceRateLimiter limiter, IOptions<GnsServerOptions> options, ILogger<GnsUdpServer> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _processor = processor;
        _limiter = limiter;
        _options = options.Value;
        _logger = logger;
        _inFlight = new SemaphoreSlim(_options.MaxInFlightUpdates, _options.MaxInFlightUpdates);
    }

    /// <summary>The bound endpoint (real port) once started; null when the datagram endpoint is off or not started.</summary>
    public IPEndPoint? LocalEndPoint { get; private set; }

    /// <summary>The bound reflect endpoint (real port) once started; null when it is off.</summary>
    public IPEndPoint? ReflectEndPoint { get; private set; }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        var endPoint = _options.UdpEndPoint;
        if (endPoint is null)
        {
            Log.Disabled(_logger);
            return Task.CompletedTask;
        }

        // [::] serves IPv4 too; sources then arrive IPv4-mapped and are normalized. Bursts of updates
        // wait in the receive buffer while signatures are checked; the kernel's default (about 208 KB)
        // drops them. The kernel clamps this to net.core.rmem_max. A failure names the endpoint and
        // the option, and the host reports it as its one start-up line.
        var socket = ListenSockets.BindUdp(endPoint, $"GNS datagram endpoint, {_options.UdpOptionName}",
            static s => s.ReceiveBufferSize = SocketReceiveBufferBytes);
        _socket = socket;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        Log.Listening(_logger, LocalEndPoint);
        if (_options.UdpReflectEndPoint is { } reflect)
        {
            _reflectSocket = ListenSockets.BindUdp(reflect, $"GNS reflect endpoint, {_options.UdpReflectOptionName}");
            // Named in the ready line of `gns serve` (reflect=IP:PORT).
            ReflectEndPoint = (IPEndPoint)_reflectSocket.LocalEndPoint!;
        }

        return base.StartAsync(cancellationToken);
    }

    public override void Dispose()
    {
        // _inFlight is not disposed: an update still running after a timed-out stop releases it later.
        _socket?.Dispose();
        _reflectSocket?.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var socket = _socket!;
        var reflect = _reflectSocket;
        var loops = _options.UdpReceiveLoops > 0 ? _options.UdpReceiveLoops : Environment.ProcessorCount;
        var tasks = new Task[loops + (reflect is null ? 0 : 1)];
        for (var i = 0; i < loops; i++)
        {
            tasks[i] = Task.Run(() => ReceiveLoopAsync(socket, reflect, reflectOnly: false, stoppingToken), CancellationToken.None);
        }

        if (reflect is not null)
        {
            // One loop: the reflect socket answers only tiny Reflect datagrams.
            tasks[loops] = Task.Run(() => ReceiveLoopAsync(reflect, socket, reflectOnly: true, stoppingToken), CancellationToken.None);
        }

        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        finally
        {
            // Let updates that were accepted finish and be acknowledged before the socket closes.
            for (var i = 0; i < _options.MaxInFlightUpdates; i++)
            {
                await _inFlight.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            }

            socket.Dispose();
            reflect?.Dispose();
        }
    }

    /// <param name="other">The server's other datagram socket (reflect replies that ask for it leave from there), or null.</param>
    /// <param name="reflectOnly">The reflect socket: every datagram but a Reflect request is dropped.</param>
    private async Task ReceiveLoopAsync(Socket socket, Socket? other, bool reflectOnly, CancellationToken stoppingToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ReceiveBufferSize);
        var reply = ArrayPool<byte>.Shared.Rent(GnsDatagram.MaxDatagramSize);
        var address = new SocketAddress(socket.AddressFamily);
        var template = socket.AddressFamily == AddressFamily.InterNetworkV6 ? new IPEndPoint(IPAddress.IPv6Any, 0) : new IPEndPoint(IPAddress.Any, 0);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                int length;
                try
                {
                    length = await socket.ReceiveFromAsync(buffer.AsMemory(0, ReceiveBufferSize), SocketFlags.None, address, stoppingToken)
                        .ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    return;
                }
                catch (SocketException ex) when (IsTransient(ex.SocketErrorCode))
                {
                    // ICMP errors from earlier sends, or a datagram larger than the buffer: only that datagram is lost.
                    Log.ReceiveError(_logger, ex.SocketErrorCode);
                    continue;
                }

                try
                {
                    await HandleAsync(socket, other, reflectOnly, buffer, length, reply, address, template, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    return;
                }
                catch (SocketException ex)
                {
                    Log.SendError(_logger, ex.SocketErrorCode);
                }
            }
        }
        catch (ObjectDisposedException) when (stoppingToken.IsCancellationRequested)
        {
            // The socket was closed by shutdown.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<byte>.Shared.Return(reply);
        }
    }

    private async ValueTask HandleAsync(Socket socket, Socket? other, bool reflectOnly, byte[] buffer, int length, byte[] reply, SocketAddress address,
        IPEndPoint template, CancellationToken stoppingToken)
    {
        var datagram = buffer.AsMemory(0, length);
        var kind = GnsRequestProcessor.Classify(datagram.Span);
        var source = (IPEndPoint)template.Create(address);
        if (reflectOnly && !IsReflect(datagram.Span))
        {
            kind = GnsDatagramKind.Drop;
        }

        if (kind == GnsDatagramKind.Drop)
        {
            Log.Dropped(_logger, source, length);
            return;
        }

        switch (_limiter.Check(source.Address))
        {
            case RateLimitDecision.Drop:
                Log.RateLimited(_logger, source);
                return;
            case RateLimitDecision.ReplyRateLimited:
                Log.RateLimited(_logger, source);
                await SendAsync(socket, reply, GnsRequestProcessor.WriteRateLimited(datagram.Span, reply), address, stoppingToken).ConfigureAwait(false);
                return;
        }

        if (kind == GnsDatagramKind.Query)
        {
            var otherPort = other is null ? 0 : ((IPEndPoint)other.LocalEndPoint!).Port;
            var written = await _processor.ProcessAsync(datagram, reply, source, stoppingToken, otherPort).ConfigureAwait(false);
            var from = other is not null && GnsDatagram.IsReflectFromOtherPort(reply.AsSpan(0, written)) ? other : socket;
            await SendAsync(from, reply, written, address, stoppingToken).ConfigureAwait(false);
            return;
        }

        if (!_inFlight.Wait(0))
        {
            Log.Busy(_logger, source);
            await SendAsync(socket, reply, GnsRequestProcessor.WriteBusy(datagram.Span, reply), address, stoppingToken).ConfigureAwait(false);
            return;
        }

        // The receive buffer is reused by the next receive: the mutation gets its own copy.
        var copy = ArrayPool<byte>.Shared.Rent(length);
        datagram.Span.CopyTo(copy);
        _ = Task.Run(() => ProcessMutationAsync(socket, copy, length, source), CancellationToken.None);
    }

    private async Task ProcessMutationAsync(Socket socket, byte[] datagram, int length, IPEndPoint source)
    {
        var reply = ArrayPool<byte>.Shared.Rent(GnsDatagram.MaxDatagramSize);
        try
        {
            // Not cancelled by shutdown: an accepted update completes and is acknowledged (shutdown waits for it).
            var written = await _processor.ProcessAsync(datagram.AsMemory(0, length), reply, source, CancellationToken.None).ConfigureAwait(false);
            if (written > 0)
            {
                await socket.SendToAsync(reply.AsMemory(0, written), SocketFlags.None, source, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            Log.SendError(_logger, ex is SocketException se ? se.SocketErrorCode : SocketError.Shutdown);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Log.MutationFailed(_logger, ex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(datagram);
            ArrayPool<byte>.Shared.Return(reply);
            _inFlight.Release();
        }
    }

    private static bool IsReflect(ReadOnlySpan<byte> datagram)
        => GnsDatagram.TryReadHeader(datagram, out var header) && header.Type == GnsMessageType.Reflect;

    private static ValueTask<int> SendAsync(Socket socket, byte[] reply, int length, SocketAddress address, CancellationToken cancellationToken)
        => length > 0
            ? socket.SendToAsync(reply.AsMemory(0, length), SocketFlags.None, address, cancellationToken)
            : ValueTask.FromResult(0);

    private static bool IsTransient(SocketError error)
        => error is SocketError.ConnectionReset or SocketError.MessageSize or SocketError.HostUnreachable or SocketError.NetworkUnreachable
            or SocketError.ConnectionRefused or SocketError.NoBufferSpaceAvailable;

    private static partial class Log
    {
        [LoggerMessage(1301, LogLevel.Information, "GNS datagrams on udp {EndPoint}")]
        public static partial void Listening(ILogger logger, IPEndPoint endPoint);

        [LoggerMessage(1302, LogLevel.Information, "GNS datagram endpoint is off (Gns:Udp is empty)")]
        public static partial void Disabled(ILogger logger);

        [LoggerMessage(1303, LogLevel.Debug, "Dropped {Length}-byte datagram from {Source}")]
        public static partial void Dropped(ILogger logger, IPEndPoint source, int length);

        [LoggerMessage(1304, LogLevel.Debug, "Rate limited {Source}")]
        public static partial void RateLimited(ILogger logger, IPEndPoint source);

        [LoggerMessage(1305, LogLevel.Debug, "Update from {Source} refused: too many updates in flight")]
        public static partial void Busy(ILogger logger, IPEndPoint source);

        [LoggerMessage(1306, LogLevel.Debug, "UDP receive error {Error}")]
        public static partial void ReceiveError(ILogger logger, SocketError error);

        [LoggerMessage(1307, LogLevel.Debug, "UDP send error {Error}")]
        public static partial void SendError(ILogger logger, SocketError error);

        [LoggerMessage(1308, LogLevel.Warning, "Processing an update datagram failed")]
        public static partial void MutationFailed(ILogger logger, Exception exception);
    }
}
