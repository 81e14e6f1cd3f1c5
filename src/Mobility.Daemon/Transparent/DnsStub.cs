using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Net.EndPoints;
using Mobility.Protocol.Dns;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// The DNS stub on <see cref="TransparentOptions.Dns"/> (UDP and TCP), answered by <see cref="DnsStubResponder"/>.
/// Every local program can reach it, so: queries over the per-source rate are dropped; at most
/// <see cref="MaxInFlight"/> UDP queries are being answered at once (more are dropped: a resolver
/// retries); at most <see cref="TransparentOptions.MaxTcpClients"/> TCP clients, each closed after
/// <see cref="TcpIdleTimeout"/> without a whole query. Runs without the stub (logged) when the endpoint
/// is taken or not permitted (port 53 needs root or CAP_NET_BIND_SERVICE).
/// </summary>
public sealed partial class DnsStub : IHostedService
{
    /// <summary>UDP queries being answered at once. Forwarded ones wait for the upstream up to its timeout, so 256 is a burst of many hosts' worth.</summary>
    public const int MaxInFlight = 256;

    /// <summary>A TCP client that sends no whole query in this time is closed (RFC 7766 suggests seconds).</summary>
    public static readonly TimeSpan TcpIdleTimeout = TimeSpan.FromSeconds(10);

    private readonly DnsStubResponder _responder;
    private readonly TransparentOptions _options;
    private readonly SourceRateLimiter _limiter;
    private readonly ILogger<DnsStub> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _loops = [];
    private readonly SemaphoreSlim _inFlight = new(MaxInFlight);
    private readonly SemaphoreSlim _tcpClients;
    private Socket? _udp;
    private Socket? _tcp;

    public DnsStub(DnsStubResponder responder, IOptions<MobilitydOptions> options, TimeProvider time, ILogger<DnsStub> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _responder = responder;
        _options = options.Value.Transparent;
        _limiter = new SourceRateLimiter(new SourceRateLimits(_options.QueriesPerSecond, _options.QueryBurst, maxSources: 4096, replyInterval: null), time);
        _tcpClients = new SemaphoreSlim(_options.MaxTcpClients);
        _logger = logger;
    }

    /// <summary>The bound endpoint, or null when the stub is off or could not bind.</summary>
    public IPEndPoint? LocalEndPoint => _udp?.LocalEndPoint as IPEndPoint;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_options.DnsEndPoint is not { } endpoint)
        {
            return Task.CompletedTask;
        }

        try
        {
            _udp = ListenSockets.BindUdp(endpoint, $"DNS stub, {TransparentOptions.DnsOption}");
            // TCP on the port UDP got (port 0 picks one for both).
            _tcp = ListenSockets.ListenTcp((IPEndPoint)_udp.LocalEndPoint!, $"DNS stub, {TransparentOptions.DnsOption}", backlog: 64);
        }
        catch (ListenerBindException e)
        {
            _udp?.Dispose();
            _udp = null;
            Log.Unavailable(_logger, endpoint, e.Message);
            return Task.CompletedTask;
        }

        Log.Listening(_logger, LocalEndPoint!);
        _loops.Add(ReceiveLoopAsync(_udp, _stopping.Token));
        _loops.Add(AcceptLoopAsync(_tcp, _stopping.Token));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _udp?.Dispose();
        _tcp?.Dispose();
        await Task.WhenAll(_loops).ConfigureAwait(false);
    }

    private async Task ReceiveLoopAsync(Socket socket, CancellationToken stopping)
    {
        var pending = new List<Task>();
        EndPoint any = new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (!stopping.IsCancellationRequested)
        {
            // Rented per query: the answer may wait for the upstream while the next datagram is read.
            var query = ArrayPool<byte>.Shared.Rent(DnsLimits.MaxMessageSize);
            SocketReceiveFromResult received;
            try
            {
                received = await socket.ReceiveFromAsync(query, SocketFlags.None, any, stopping).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException && !stopping.IsCancellationRequested)
            {
                ArrayPool<byte>.Shared.Return(query);
                continue;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                ArrayPool<byte>.Shared.Return(query);
                break;
            }

            var source = (IPEndPoint)received.RemoteEndPoint;
            if (!_limiter.TryAcquire(source.Address) || !_inFlight.Wait(0))
            {
                Log.Dropped(_logger, source);
                ArrayPool<byte>.Shared.Return(query);
                continue;
            }

            pending.RemoveAll(t => t.IsCompleted);
            pending.Add(AnswerDatagramAsync(socket, query, received.ReceivedBytes, source, stopping));
        }

        await Task.WhenAll(pending).ConfigureAwait(false);
    }

    private async Task AnswerDatagramAsync(Socket socket, byte[] query, int length, IPEndPoint source, CancellationToken stopping)
    {
        var response = ArrayPool<byte>.Shared.Rent(DnsLimits.MaxMessageSize);
        try
        {
            var written = await _responder.RespondAsync(query.AsMemory(0, length), response.AsMemory(0, DnsLimits.MaxMessageSize), overTcp: false, stopping)
                .ConfigureAwait(false);
            if (written > 0)
            {
                await socket.SendToAsync(response.AsMemory(0, written), SocketFlags.None, source, stopping).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            Log.Dropped(_logger, source);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(query);
            ArrayPool<byte>.Shared.Return(response);
            _inFlight.Release();
        }
    }

    private async Task AcceptLoopAsync(Socket listener, CancellationToken stopping)
    {
        var clients = new List<Task>();
        while (await AcceptLoop.NextAsync(listener, stopping).ConfigureAwait(false) is { } client)
        {
            if (!_tcpClients.Wait(0))
            {
                Log.Dropped(_logger, client.RemoteEndPoint as IPEndPoint);
                client.Dispose();
                continue;
            }

            clients.RemoveAll(t => t.IsCompleted);
            clients.Add(ServeStreamAsync(client, stopping));
        }

        await Task.WhenAll(clients).ConfigureAwait(false);
    }

    /// <summary>Length-prefixed queries (RFC 1035 4.2.2) answered in turn until the client closes, idles, or sends a frame shorter than a header.</summary>
    private async Task ServeStreamAsync(Socket client, CancellationToken stopping)
    {
        var source = client.RemoteEndPoint as IPEndPoint;
        var buffer = ArrayPool<byte>.Shared.Rent(2 + DnsLimits.MaxMessageSize);
        try
        {
            using var stream = new NetworkStream(client, ownsSocket: true);
            while (true)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                idle.CancelAfter(TcpIdleTimeout);
                await stream.ReadExactlyAsync(buffer.AsMemory(0, 2), idle.Token).ConfigureAwait(false);
                var length = BinaryPrimitives.ReadUInt16BigEndian(buffer);
                if (length < DnsLimits.HeaderSize)
                {
                    break;
                }

                var query = buffer.AsMemory(2, length);
                await stream.ReadExactlyAsync(query, idle.Token).ConfigureAwait(false);
                if (source is not null && !_limiter.TryAcquire(source.Address))
                {
                    break;
                }

                // The answer is written over the query, which the responder has parsed (or copied to the upstream) by then.
                var answer = ArrayPool<byte>.Shared.Rent(DnsLimits.MaxMessageSize);
                try
                {
                    var written = await _responder.RespondAsync(query, answer.AsMemory(0, DnsLimits.MaxMessageSize), overTcp: true, stopping).ConfigureAwait(false);
                    if (written == 0)
                    {
                        break;
                    }

                    BinaryPrimitives.WriteUInt16BigEndian(buffer, (ushort)written);
                    answer.AsSpan(0, written).CopyTo(buffer.AsSpan(2));
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(answer);
                }

                await stream.WriteAsync(buffer.AsMemory(0, 2 + BinaryPrimitives.ReadUInt16BigEndian(buffer)), idle.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or EndOfStreamException or ObjectDisposedException)
        {
            Log.Dropped(_logger, source);
        }
        finally
        {
            client.Dispose();
            ArrayPool<byte>.Shared.Return(buffer);
            _tcpClients.Release();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(8410, LogLevel.Information, "DNS stub listening on {EndPoint} (UDP and TCP) for .mob and .guid.")]
        public static partial void Listening(ILogger logger, IPEndPoint endPoint);

        [LoggerMessage(8411, LogLevel.Information, "DNS stub {EndPoint} not available, running without it: {Error}.")]
        public static partial void Unavailable(ILogger logger, IPEndPoint endPoint, string error);

        [LoggerMessage(8412, LogLevel.Debug, "DNS stub: dropped a query or connection from {Source} (rate, load, or a broken client).")]
        public static partial void Dropped(ILogger logger, IPEndPoint? source);
    }
}
