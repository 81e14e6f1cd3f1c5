using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Mobility.Gns.Api;
using Mobility.Protocol;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using Locator = Mobility.Protocol.Records.Locator;
using GrpcGns = Mobility.Gns.Api.Gns;

namespace Mobility.Gns.Client;

/// <summary>The gRPC side: the same operations as the datagrams, each bounded by <see cref="GnsClientOptions.GrpcTimeout"/>.</summary>
public sealed partial class GnsClient
{
    /// <summary>Trailer in which the GNS names its <see cref="GnsErrorCode"/>.</summary>
    public const string ErrorTrailer = "gns-error";

    private GrpcGns.GnsClient RequireGrpc() => CurrentGrpc().Grpc;

    private async Task<T> GrpcCallAsync<T>(Func<GrpcGns.GnsClient, CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        var grpc = RequireGrpc();
        using var deadline = new CancellationTokenSource(_options.GrpcTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            return await call(grpc, linked.Token).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (deadline.IsCancellationRequested)
            {
                StartGrpcRace(restart: false);
                throw new GnsException(GnsErrorCode.Unavailable, $"GNS at {GrpcAddress} gave no answer within {_options.GrpcTimeout.TotalSeconds:0.###} s", e);
            }

            var mapped = MapRpcException(e);
            if (mapped.Code == GnsErrorCode.Unavailable)
            {
                // Another address of the GNS may take TCP connections where this one does not.
                StartGrpcRace(restart: false);
            }

            throw mapped;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            StartGrpcRace(restart: false);
            throw new GnsException(GnsErrorCode.Unavailable, $"GNS at {GrpcAddress} gave no answer within {_options.GrpcTimeout.TotalSeconds:0.###} s");
        }
    }

    /// <summary>The GNS's error code from the <see cref="ErrorTrailer"/> trailer, else one implied by the gRPC status.</summary>
    internal GnsException MapRpcException(RpcException e)
    {
        var code = e.StatusCode switch
        {
            StatusCode.NotFound => GnsErrorCode.NotFound,
            StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled => GnsErrorCode.Unavailable,
            StatusCode.InvalidArgument => GnsErrorCode.Malformed,
            StatusCode.PermissionDenied or StatusCode.Unauthenticated => GnsErrorCode.BadSignature,
            StatusCode.FailedPrecondition or StatusCode.Aborted => GnsErrorCode.StaleVersion,
            StatusCode.AlreadyExists => GnsErrorCode.NameTaken,
            StatusCode.ResourceExhausted => GnsErrorCode.RateLimited,
            StatusCode.Unimplemented => GnsErrorCode.UnsupportedVersion,
            _ => GnsErrorCode.Internal,
        };
        if (e.Trailers.GetValue(ErrorTrailer) is { } name
            && Enum.TryParse<GnsErrorCode>(name, ignoreCase: true, out var named) && Enum.IsDefined(named))
        {
            code = named;
        }

        var detail = Printable(e.Status.Detail);
        return code == GnsErrorCode.Unavailable
            ? new GnsException(code, $"GNS at {GrpcAddress} unreachable: {detail}", e)
            : new GnsException(code, $"GNS at {GrpcAddress}: {GnsDatagram.Describe(code)}{(detail.Length > 0 ? $" ({detail})" : "")}", e);
    }

    private GnsRecord Verified(Record reply, HostGuid? guid, string? name)
    {
        GnsRecord record;
        try
        {
            record = GnsRecord.Decode(reply.Signed.Span);
        }
        catch (MalformedMessageException e)
        {
            GnsClientLog.MalformedReply(_logger, e.Message);
            throw new GnsException(GnsErrorCode.InvalidRecord, $"GNS at {GrpcAddress} returned a malformed record: {e.Message}");
        }

        if (Check(record, guid, name) is { } rejection)
        {
            GnsClientLog.RejectedReply(_logger, 0, rejection);
            throw new GnsException(GnsErrorCode.InvalidRecord, $"GNS at {GrpcAddress} returned an unacceptable record: {rejection}");
        }

        return record;
    }

    private async Task<GnsRecord?> GrpcLookupAsync(HostGuid guid, CancellationToken cancellationToken)
    {
        try
        {
            var reply = await GrpcCallAsync(
                async (grpc, ct) => await grpc.LookupAsync(new LookupRequest { Guid = guid.ToString() }, cancellationToken: ct).ConfigureAwait(false),
                cancellationToken).ConfigureAwait(false);
            return Verified(reply, guid, null);
        }
        catch (GnsException e) when (e.Code == GnsErrorCode.NotFound)
        {
            return null;
        }
    }

    private async Task<GnsRecord?> GrpcLookupNameAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            var reply = await GrpcCallAsync(
                async (grpc, ct) => await grpc.LookupNameAsync(new LookupNameRequest { Name = name }, cancellationToken: ct).ConfigureAwait(false),
                cancellationToken).ConfigureAwait(false);
            return Verified(reply, null, name);
        }
        catch (GnsException e) when (e.Code == GnsErrorCode.NotFound)
        {
            return null;
        }
    }

    private async Task<(IReadOnlyList<HostGuid> Guids, bool Truncated)> GrpcReverseAsync(IPAddress address, CancellationToken cancellationToken)
    {
        ReverseReply reply;
        try
        {
            reply = await GrpcCallAsync(
                async (grpc, ct) => await grpc.ReverseAsync(new ReverseRequest { Address = Locator.Normalize(address).ToString() }, cancellationToken: ct).ConfigureAwait(false),
                cancellationToken).ConfigureAwait(false);
        }
        catch (GnsException e) when (e.Code == GnsErrorCode.NotFound)
        {
            return ([], false);
        }

        var guids = new List<HostGuid>(reply.Guids.Count);
        foreach (var text in reply.Guids)
        {
            if (HostGuid.TryParse(text, out var guid))
            {
                guids.Add(guid);
            }
            else
            {
                GnsClientLog.MalformedReply(_logger, "a reverse reply holds something that is not a GUID");
            }
        }

        return (guids, reply.Truncated);
    }

    private async Task<GnsUpdateResult> GrpcUpdateAsync(GnsRecord record, bool requireExisting, CancellationToken cancellationToken)
    {
        var request = new UpdateRequest { Record = ByteString.CopyFrom(record.Encoded.Span) };
        var reply = await GrpcCallAsync(
            async (grpc, ct) => requireExisting
                ? await grpc.UpdateAsync(request, cancellationToken: ct).ConfigureAwait(false)
                : await grpc.RegisterAsync(request, cancellationToken: ct).ConfigureAwait(false),
            cancellationToken).ConfigureAwait(false);
        IPEndPoint? observed = null;
        if (IPAddress.TryParse(reply.ObservedAddress, out var address) && reply.ObservedPort <= ushort.MaxValue)
        {
            observed = new IPEndPoint(Locator.Normalize(address), (int)reply.ObservedPort);
        }

        return new GnsUpdateResult(reply.Version, observed);
    }

    private async Task<ulong> GrpcRemoveAsync(GnsRemoval removal, CancellationToken cancellationToken)
    {
        var request = new RemoveRequest { Removal = ByteString.CopyFrom(removal.Encoded.Span) };
        var reply = await GrpcCallAsync(
            async (grpc, ct) => await grpc.RemoveAsync(request, cancellationToken: ct).ConfigureAwait(false),
            cancellationToken).ConfigureAwait(false);
        return reply.Version;
    }
}
