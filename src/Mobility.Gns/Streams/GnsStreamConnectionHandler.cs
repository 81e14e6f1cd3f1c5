using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Gns.Udp;
using Mobility.Net.RateLimiting;
using Mobility.Protocol;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Streams;

/// <summary>
/// The GNS datagram protocol over a stream (docs/protocol.md, "GNS over TLS"): a Kestrel connection handler that
/// <c>gns serve --tls-listen</c> puts behind TLS, for hosts on networks that let only HTTPS out. Each length-prefixed
/// message (<see cref="GnsStreamFrame"/>) is handled as a datagram from the TCP peer's address and port would be
/// (<see cref="GnsRequestProcessor"/>: the same replies, reply budget and per-source rate limits; Reflect and update
/// acks name the TCP peer), one at a time per connection, so a connection holds at most one message and one reply.
/// Per-source and total connection limits, and <see cref="GnsServerOptions.StreamIdleTimeout"/> for a connection that
/// is silent, drips a message byte by byte or does not read its replies. A bad length prefix closes the connection.
/// </summary>
public sealed partial class GnsStreamConnectionHandler : ConnectionHandler
{
    private readonly GnsRequestProcessor _processor;
    private readonly SourceRateLimiter _limiter;
    private readonly GnsServerOptions _options;
    private readonly ILogger<GnsStreamConnectionHandler> _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<IPAddress, int> _perSource = [];
    private int _open;

    public GnsStreamConnectionHandler(GnsRequestProcessor processor, SourceRateLimiter limiter, IOptions<GnsServerOptions> options,
        ILogger<GnsStreamConnectionHandler> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _processor = processor;
        _limiter = limiter;
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>Connections being served now.</summary>
    public int OpenConnections
    {
        get
        {
            lock (_gate)
            {
                return _open;
            }
        }
    }

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (connection.RemoteEndPoint is not IPEndPoint remote)
        {
            return;
        }

        var source = new IPEndPoint(Locator.Normalize(remote.Address), remote.Port);
        if (!TryAdmit(source.Address))
        {
            Log.TooManyConnections(_logger, source);
            return;
        }

        try
        {
            await ServeAsync(connection, source).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ConnectionResetException or ObjectDisposedException)
        {
            Log.ConnectionFailed(_logger, source, e.Message);
        }
        finally
        {
            Release(source.Address);
        }
    }

    private bool TryAdmit(IPAddress address)
    {
        lock (_gate)
        {
            var count = _perSource.GetValueOrDefault(address);
            if (_open >= _options.StreamMaxConnections || count >= _options.StreamMaxConnectionsPerSource)
            {
                return false;
            }

            _perSource[address] = count + 1;
            _open++;
            return true;
        }
    }

    private void Release(IPAddress address)
    {
        lock (_gate)
        {
            _open--;
            if (_perSource[address] == 1)
            {
                _perSource.Remove(address);
            }
            else
            {
                _perSource[address]--;
            }
        }
    }

    private async Task ServeAsync(ConnectionContext connection, IPEndPoint source)
    {
        var input = connection.Transport.Input;
        var output = connection.Transport.Output;
        var request = new byte[GnsDatagram.MaxDatagramSize];
        var reply = new byte[GnsStreamFrame.MaxFrameSize];
        Log.Connected(_logger, source);
        while (true)
        {
            // One deadline per message, not per read: a peer that drips a byte at a time is cut as a silent one is.
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
            deadline.CancelAfter(_options.StreamIdleTimeout);
            int length;
            try
            {
                length = await ReadMessageAsync(input, request, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                Log.Idle(_logger, source, _options.StreamIdleTimeout);
                return;
            }
            catch (MalformedMessageException e)
            {
                Log.BadFrame(_logger, source, e.Message);
                return;
            }

            if (length == 0)
            {
                Log.Closed(_logger, source);
                return;
            }

            var written = await HandleAsync(request.AsMemory(0, length), reply.AsMemory(GnsStreamFrame.PrefixSize), source, connection.ConnectionClosed)
                .ConfigureAwait(false);
            if (written == 0)
            {
                continue;
            }

            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(reply, (ushort)written);
            try
            {
                var flushed = await output.WriteAsync(reply.AsMemory(0, GnsStreamFrame.PrefixSize + written), deadline.Token).ConfigureAwait(false);
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    return;
                }
            }
            catch (OperationCanceledException)
            {
                Log.Idle(_logger, source, _options.StreamIdleTimeout);
                return;
            }
        }
    }

    /// <summary>
    /// Reads the next whole message into <paramref name="destination"/>; 0 when the peer closed between messages.
    /// Never holds more than one frame: the pipe is only examined up to the frame's end.
    /// </summary>
    private static async Task<int> ReadMessageAsync(PipeReader input, byte[] destination, CancellationToken cancellationToken)
    {
        while (true)
        {
            var read = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = read.Buffer;
            bool whole;
            ReadOnlySequence<byte> message;
            SequencePosition consumed;
            try
            {
                whole = GnsStreamFrame.TryRead(buffer, out message, out consumed);
            }
            catch (MalformedMessageException)
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                throw;
            }

            if (whole)
            {
                message.CopyTo(destination);
                input.AdvanceTo(consumed);
                return (int)message.Length;
            }

            if (read.IsCompleted || read.IsCanceled)
            {
                if (!buffer.IsEmpty)
                {
                    input.AdvanceTo(buffer.End);
                    throw new MalformedMessageException($"GNS stream closed inside a frame ({buffer.Length} bytes of it received).");
                }

                return 0;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>One message as <see cref="GnsUdpServer"/> handles one datagram; the reply's length (0: none) is returned.</summary>
    private async ValueTask<int> HandleAsync(ReadOnlyMemory<byte> message, Memory<byte> reply, IPEndPoint source, CancellationToken closed)
    {
        var kind = GnsRequestProcessor.Classify(message.Span);
        if (kind == GnsDatagramKind.Drop)
        {
            Log.Dropped(_logger, source, message.Length);
            return 0;
        }

        switch (_limiter.Check(source.Address))
        {
            case RateLimitDecision.Drop:
                Log.RateLimited(_logger, source);
                return 0;
            case RateLimitDecision.ReplyRateLimited:
                Log.RateLimited(_logger, source);
                return GnsRequestProcessor.WriteRateLimited(message.Span, reply.Span);
        }

        try
        {
            // An update is not cancelled by the peer's going away: once accepted it completes, as over UDP.
            return await _processor.ProcessAsync(message, reply, source, kind == GnsDatagramKind.Mutation ? CancellationToken.None : closed)
                .ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (closed.IsCancellationRequested)
        {
            return 0;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1350, LogLevel.Debug, "GNS stream connection from {Source}")]
        public static partial void Connected(ILogger logger, IPEndPoint source);

        [LoggerMessage(1351, LogLevel.Debug, "GNS stream connection from {Source} refused: too many connections (from it or in all)")]
        public static partial void TooManyConnections(ILogger logger, IPEndPoint source);

        [LoggerMessage(1352, LogLevel.Debug, "GNS stream connection from {Source} closed: no whole message or reply taken within {Timeout}")]
        public static partial void Idle(ILogger logger, IPEndPoint source, TimeSpan timeout);

        [LoggerMessage(1353, LogLevel.Debug, "GNS stream connection from {Source} closed: {Reason}")]
        public static partial void BadFrame(ILogger logger, IPEndPoint source, string reason);

        [LoggerMessage(1354, LogLevel.Debug, "GNS stream connection from {Source} closed by the peer")]
        public static partial void Closed(ILogger logger, IPEndPoint source);

        [LoggerMessage(1355, LogLevel.Debug, "GNS stream connection from {Source} failed: {Reason}")]
        public static partial void ConnectionFailed(ILogger logger, IPEndPoint source, string reason);

        [LoggerMessage(1356, LogLevel.Debug, "Dropped {Length}-byte stream message from {Source}: not a GNS request")]
        public static partial void Dropped(ILogger logger, IPEndPoint source, int length);

        [LoggerMessage(1357, LogLevel.Debug, "Rate limited stream messages of {Source}")]
        public static partial void RateLimited(ILogger logger, IPEndPoint source);
    }
}
