using System.Net;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Gns.Api;
using Mobility.Gns.Service;
using Mobility.Gns.Watch;
using Mobility.Protocol;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using static Mobility.Gns.Rpc.GnsProtoMapping;

namespace Mobility.Gns.Rpc;

/// <summary>
/// The GNS over gRPC, and over HTTP/JSON through JSON transcoding of the same methods (routes in
/// gns.proto). Refusals are <see cref="RpcException"/>s with a mapped status and the GNS error code
/// in the <c>gns-error</c> trailer.
/// </summary>
public sealed partial class GnsGrpcService : Api.Gns.GnsBase
{
    /// <summary>Longest address text accepted by a reverse lookup (the longest IPv6 text form is 45 characters).</summary>
    private const int MaxAddressTextLength = 64;

    private readonly GnsService _service;
    private readonly WatchHub _hub;
    private readonly GnsServerOptions _options;
    private readonly ILogger<GnsGrpcService> _logger;

    public GnsGrpcService(GnsService service, WatchHub hub, IOptions<GnsServerOptions> options, ILogger<GnsGrpcService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _service = service;
        _hub = hub;
        _options = options.Value;
        _logger = logger;
    }

    public override Task<UpdateReply> Register(UpdateRequest request, ServerCallContext context)
        => PutAsync(request, requireExisting: false, context);

    public override Task<UpdateReply> Update(UpdateRequest request, ServerCallContext context)
        => PutAsync(request, requireExisting: true, context);

    public override async Task<Api.Record> Lookup(LookupRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        if (!HostGuid.TryParse(request.Guid, out var guid))
        {
            throw Refuse(GnsErrorCode.Malformed, $"A GUID is {HostGuid.TextLength} hexadecimal characters.");
        }

        var record = await _service.LookupAsync(guid, context.CancellationToken).ConfigureAwait(false)
            ?? throw Refuse(GnsErrorCode.NotFound, "No record for this GUID.");
        return ToProto(record);
    }

    public override async Task<Api.Record> LookupName(LookupNameRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        if (HostName.Normalize(request.Name, out var error) is null)
        {
            throw Refuse(GnsErrorCode.Malformed, error ?? "Bad name.");
        }

        var record = await _service.LookupNameAsync(request.Name, context.CancellationToken).ConfigureAwait(false)
            ?? throw Refuse(GnsErrorCode.NotFound, "No record with this name.");
        return ToProto(record);
    }

    public override async Task<ReverseReply> Reverse(ReverseRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        if (request.Address.Length > MaxAddressTextLength || !IPAddress.TryParse(request.Address, out var address))
        {
            throw Refuse(GnsErrorCode.Malformed, "Not an IPv4 or IPv6 address.");
        }

        var limit = (int)Math.Min(request.Limit, int.MaxValue);
        var result = await _service.ReverseAsync(address, limit, context.CancellationToken).ConfigureAwait(false);
        var reply = new ReverseReply { Truncated = result.Truncated };
        foreach (var guid in result.Guids)
        {
            reply.Guids.Add(guid.ToString());
        }

        return reply;
    }

    public override async Task<RemoveReply> Remove(RemoveRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        GnsRemoval removal;
        try
        {
            removal = request.Removal.Length == GnsRemoval.EncodedSize
                ? GnsRemoval.Decode(request.Removal.Span)
                : throw new MalformedMessageException($"A removal is {GnsRemoval.EncodedSize} bytes.");
        }
        catch (MalformedMessageException ex)
        {
            throw Refuse(GnsErrorCode.Malformed, ex.Message);
        }

        var result = await _service.RemoveAsync(removal, context.CancellationToken).ConfigureAwait(false);
        return result.IsSuccess ? new RemoveReply { Version = result.Value } : throw Refuse(result.Error!.Value, result.Message);
    }

    public override async Task Watch(WatchRequest request, IServerStreamWriter<WatchEvent> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(responseStream);
        ArgumentNullException.ThrowIfNull(context);
        if (request.Guids.Count > _options.MaxWatchGuids)
        {
            throw Refuse(GnsErrorCode.TooLarge, $"A watch names at most {_options.MaxWatchGuids} GUIDs.");
        }

        var guids = new List<HostGuid>(request.Guids.Count);
        foreach (var text in request.Guids)
        {
            if (!HostGuid.TryParse(text, out var guid))
            {
                throw Refuse(GnsErrorCode.Malformed, $"A GUID is {HostGuid.TextLength} hexadecimal characters.");
            }

            guids.Add(guid);
        }

        var cancellationToken = context.CancellationToken;
        var result = await _hub.SubscribeAsync(guids, cancellationToken).ConfigureAwait(false);
        if (!result.IsSuccess)
        {
            throw Refuse(result.Error!.Value, result.Message);
        }

        using var subscription = result.Value;
        try
        {
            await foreach (var change in subscription.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                await responseStream.WriteAsync(ToProto(change), cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The watcher went away: the normal end of a watch.
        }
    }

    private async Task<UpdateReply> PutAsync(UpdateRequest request, bool requireExisting, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        GnsRecord record;
        try
        {
            record = request.Record.Length <= GnsRecord.MaxEncodedSize
                ? GnsRecord.Decode(request.Record.Span)
                : throw new MalformedMessageException($"A record is at most {GnsRecord.MaxEncodedSize} bytes.");
        }
        catch (MalformedMessageException ex)
        {
            throw Refuse(GnsErrorCode.Malformed, ex.Message);
        }

        var connection = context.GetHttpContext().Connection;
        var observed = connection.RemoteIpAddress is { } remote ? Protocol.Records.Locator.Normalize(remote) : null;
        var result = await _service.PutAsync(record, requireExisting, observed, context.CancellationToken).ConfigureAwait(false);
        if (!result.IsSuccess)
        {
            throw Refuse(result.Error!.Value, result.Message);
        }

        return new UpdateReply
        {
            Version = result.Value,
            ObservedAddress = observed?.ToString() ?? "",
            ObservedPort = (uint)connection.RemotePort,
        };
    }

    private RpcException Refuse(GnsErrorCode code, string? message)
    {
        Log.Refused(_logger, code, message);
        return ToRpcException(code, message);
    }

    private static partial class Log
    {
        [LoggerMessage(1401, LogLevel.Debug, "GNS call refused: {Code} {Reason}")]
        public static partial void Refused(ILogger logger, GnsErrorCode code, string? reason);
    }
}
