using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Gns.Service;
using Mobility.Protocol;
using Mobility.Protocol.Gns;

namespace Mobility.Gns.Udp;

/// <summary>How a datagram is handled, judged from its header alone.</summary>
public enum GnsDatagramKind
{
    /// <summary>Not a GNS request (too short, wrong magic, or a reply): dropped without an answer.</summary>
    Drop,

    /// <summary>A lookup, or anything answered with an error: cheap, answered from the receive loop.</summary>
    Query,

    /// <summary>An update or a removal: signature check and a durable write, handed off the receive loop.</summary>
    Mutation,
}

/// <summary>
/// Turns one request datagram into one reply datagram (docs/protocol.md, "GNS datagrams"). Knows no
/// sockets: bytes in, bytes out. A reply never exceeds <see cref="GnsDatagram.ReplyBudget"/> of its
/// request; hostile input gives an error reply or nothing, never an exception.
/// </summary>
public sealed partial class GnsRequestProcessor
{
    private readonly GnsService _service;
    private readonly ILogger<GnsRequestProcessor> _logger;

    public GnsRequestProcessor(GnsService service, ILogger<GnsRequestProcessor> logger)
    {
        _service = service;
        _logger = logger;
    }

    public static GnsDatagramKind Classify(ReadOnlySpan<byte> datagram)
    {
        if (!GnsDatagram.TryReadHeader(datagram, out var header) || IsReply(header.Type))
        {
            return GnsDatagramKind.Drop;
        }

        return header.Version == GnsDatagram.ProtocolVersion && header.Type is GnsMessageType.Update or GnsMessageType.Remove
            ? GnsDatagramKind.Mutation
            : GnsDatagramKind.Query;
    }

    /// <summary>
    /// Processes <paramref name="datagram"/> from <paramref name="source"/> and writes the reply into
    /// <paramref name="reply"/>. Returns the reply's length, or 0 when nothing must be sent.
    /// <paramref name="otherPort"/> is the port of the server's other datagram socket (0: none), named in
    /// reflect replies; a reflect reply for which <see cref="GnsDatagram.IsReflectFromOtherPort"/> holds must
    /// be sent from that socket.
    /// </summary>
    /// <exception cref="OperationCanceledException">Only when <paramref name="cancellationToken"/> is cancelled.</exception>
    public async ValueTask<int> ProcessAsync(ReadOnlyMemory<byte> datagram, Memory<byte> reply, IPEndPoint source, CancellationToken cancellationToken = default,
        int otherPort = 0)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!GnsDatagram.TryReadHeader(datagram.Span, out var header))
        {
            Log.NotGns(_logger, source, datagram.Length);
            return 0;
        }

        if (IsReply(header.Type))
        {
            // Answering replies would let a forged source make two servers answer each other forever.
            Log.ReplyDropped(_logger, source, (byte)header.Type);
            return 0;
        }

        var budget = Math.Min(reply.Length, GnsDatagram.ReplyBudget(datagram.Length));
        var output = reply[..budget];
        if (header.Version != GnsDatagram.ProtocolVersion)
        {
            Log.UnsupportedVersion(_logger, source, header.Version);
            return GnsDatagram.WriteError(output.Span, header.RequestId, GnsErrorCode.UnsupportedVersion,
                $"This GNS speaks protocol version {GnsDatagram.ProtocolVersion}.");
        }

        GnsRequest request;
        try
        {
            request = GnsDatagram.ParseRequest(datagram.Span);
        }
        catch (MalformedMessageException ex)
        {
            Log.Malformed(_logger, source, ex.Message);
            return GnsDatagram.WriteError(output.Span, header.RequestId, GnsErrorCode.Malformed, ex.Message);
        }

        if (request.Type == GnsMessageType.Reflect)
        {
            return WriteReflect(request, output.Span, source, otherPort);
        }

        try
        {
            return await ProcessAsync(request, output, source, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Log.Failed(_logger, request.Type, ex);
            return GnsDatagram.WriteError(output.Span, header.RequestId, GnsErrorCode.Internal, "Internal error.");
        }
    }

    /// <summary>Writes the RateLimited reply to <paramref name="datagram"/> (within its budget), or 0 if it is not a request.</summary>
    public static int WriteRateLimited(ReadOnlySpan<byte> datagram, Span<byte> reply)
        => WriteRefusal(datagram, reply, GnsErrorCode.RateLimited, "Too many requests from this address; slow down.");

    /// <summary>Writes an Unavailable reply (too many updates in flight) to <paramref name="datagram"/>, or 0 if it is not a request.</summary>
    public static int WriteBusy(ReadOnlySpan<byte> datagram, Span<byte> reply)
        => WriteRefusal(datagram, reply, GnsErrorCode.Unavailable, "Busy; retry shortly.");

    private static int WriteRefusal(ReadOnlySpan<byte> datagram, Span<byte> reply, GnsErrorCode code, string message)
    {
        if (!GnsDatagram.TryReadHeader(datagram, out var header) || IsReply(header.Type))
        {
            return 0;
        }

        var budget = Math.Min(reply.Length, GnsDatagram.ReplyBudget(datagram.Length));
        return GnsDatagram.WriteError(reply[..budget], header.RequestId, code, message);
    }

    private async ValueTask<int> ProcessAsync(GnsRequest request, Memory<byte> output, IPEndPoint source, CancellationToken cancellationToken)
    {
        var id = request.RequestId;
        switch (request.Type)
        {
            case GnsMessageType.LookupGuid:
            {
                var record = await _service.LookupAsync(request.Guid, cancellationToken).ConfigureAwait(false);
                return WriteRecordOrError(output.Span, id, record);
            }

            case GnsMessageType.LookupName:
            {
                var record = await _service.LookupNameAsync(request.Name!, cancellationToken).ConfigureAwait(false);
                return WriteRecordOrError(output.Span, id, record);
            }

            case GnsMessageType.Reverse:
            {
                // As many GUIDs as the budget holds (a count byte caps a list at 255), never more than the server's default.
                var fit = Math.Min(byte.MaxValue, (output.Length - GnsDatagram.HeaderSize - 2) / Protocol.Identity.HostGuid.Size);
                if (fit < 1)
                {
                    return GnsDatagram.WriteError(output.Span, id, GnsErrorCode.TooLarge, "Pad the request or use HTTP.");
                }

                var result = await _service.ReverseAsync(request.Address!, Math.Min(fit, _service.EffectiveReverseLimit(0)), cancellationToken)
                    .ConfigureAwait(false);
                return GnsDatagram.WriteGuidList(output.Span, id, result.Guids, result.Truncated);
            }

            case GnsMessageType.Update:
            {
                // Datagram updates are upserts: the datagram protocol has no separate register.
                // The source is where the ack goes: a locator equal to it is attested (docs/protocol.md, "Address claims").
                var result = await _service.PutAsync(request.Record!, requireExisting: false, source.Address, cancellationToken).ConfigureAwait(false);
                return result.IsSuccess
                    ? GnsDatagram.WriteUpdateAck(output.Span, id, result.Value, source)
                    : GnsDatagram.WriteError(output.Span, id, result.Error!.Value, result.Message);
            }

            case GnsMessageType.Remove:
            {
                var result = await _service.RemoveAsync(request.Removal!, cancellationToken).ConfigureAwait(false);
                return result.IsSuccess
                    ? GnsDatagram.WriteRemoveAck(output.Span, id, result.Value)
                    : GnsDatagram.WriteError(output.Span, id, result.Error!.Value, result.Message);
            }

            default:
                return GnsDatagram.WriteError(output.Span, id, GnsErrorCode.Malformed, "Unknown request type.");
        }
    }

    /// <summary>
    /// The reflexive address and the other port; from the other port when asked and there is one. Never larger than the
    /// request's budget: a request too short for an IPv6 answer gets TooLarge ("pad the request").
    /// </summary>
    private static int WriteReflect(GnsRequest request, Span<byte> output, IPEndPoint source, int otherPort)
    {
        if (GnsDatagram.ReflectReplySize(source.Address) > output.Length)
        {
            return GnsDatagram.WriteError(output, request.RequestId, GnsErrorCode.TooLarge, "Pad the reflect request.");
        }

        var flags = otherPort != 0 ? (byte)(request.ReflectFlags & GnsDatagram.ReflectFromOtherPort) : (byte)0;
        return GnsDatagram.WriteReflectReply(output, request.RequestId, flags, source, otherPort);
    }

    private static int WriteRecordOrError(Span<byte> output, uint id, Protocol.Records.GnsRecord? record)
    {
        if (record is null)
        {
            return GnsDatagram.WriteError(output, id, GnsErrorCode.NotFound, "No record.");
        }

        return GnsDatagram.TryWriteRecord(output, id, record, out var written)
            ? written
            : GnsDatagram.WriteError(output, id, GnsErrorCode.TooLarge, "The record does not fit a reply to this request; pad the request or use HTTP.");
    }

    private static bool IsReply(GnsMessageType type) => ((byte)type & 0x80) != 0;

    private static partial class Log
    {
        [LoggerMessage(1201, LogLevel.Debug, "Dropped {Length}-byte datagram from {Source}: not a GNS request")]
        public static partial void NotGns(ILogger logger, IPEndPoint source, int length);

        [LoggerMessage(1202, LogLevel.Debug, "Dropped reply-type datagram 0x{Type:x2} from {Source}")]
        public static partial void ReplyDropped(ILogger logger, IPEndPoint source, byte type);

        [LoggerMessage(1203, LogLevel.Debug, "Datagram from {Source} has unsupported protocol version {Version}")]
        public static partial void UnsupportedVersion(ILogger logger, IPEndPoint source, byte version);

        [LoggerMessage(1204, LogLevel.Debug, "Malformed datagram from {Source}: {Reason}")]
        public static partial void Malformed(ILogger logger, IPEndPoint source, string reason);

        [LoggerMessage(1205, LogLevel.Warning, "Processing a {Type} datagram failed")]
        public static partial void Failed(ILogger logger, GnsMessageType type, Exception exception);
    }
}
