using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Mobility.Gns.Watch;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Records;
using ApiLocator = Mobility.Gns.Api.Locator;
using ApiRecord = Mobility.Gns.Api.Record;
using ApiWatchEvent = Mobility.Gns.Api.WatchEvent;

namespace Mobility.Gns.Rpc;

/// <summary>Conversions between protocol types and the messages of gns.proto, and GNS error codes as gRPC statuses.</summary>
public static class GnsProtoMapping
{
    /// <summary>The trailer that carries the <see cref="GnsErrorCode"/> name of a failed call.</summary>
    public const string ErrorTrailer = "gns-error";

    public static ApiRecord ToProto(GnsRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var message = new ApiRecord
        {
            Signed = ByteString.CopyFrom(record.Encoded.Span),
            Guid = record.Guid.ToString(),
            PublicKey = ByteString.CopyFrom(record.PublicKey.Span),
            Version = record.Version,
            IssuedAt = Timestamp.FromDateTimeOffset(record.IssuedAt),
            TtlSeconds = record.TtlSeconds,
            Name = record.Name ?? "",
        };
        foreach (var locator in record.Locators)
        {
            message.Locators.Add(new ApiLocator
            {
                Address = locator.Address.ToString(),
                Port = locator.Port,
                Kind = KindText(locator.Kind),
            });
        }

        return message;
    }

    public static ApiWatchEvent ToProto(RecordChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return new ApiWatchEvent
        {
            Guid = change.Guid.ToString(),
            Record = change.Record is null ? null : ToProto(change.Record),
            Removed = change.Removed,
            Version = change.Version,
        };
    }

    public static string KindText(LocatorKind kind) => kind switch
    {
        LocatorKind.Host => "host",
        LocatorKind.Observed => "observed",
        LocatorKind.Relay => "relay",
        _ => "unknown",
    };

    public static StatusCode ToStatusCode(GnsErrorCode code) => code switch
    {
        GnsErrorCode.NotFound => StatusCode.NotFound,
        GnsErrorCode.BadSignature => StatusCode.PermissionDenied,
        GnsErrorCode.StaleVersion => StatusCode.FailedPrecondition,
        GnsErrorCode.NameTaken => StatusCode.AlreadyExists,
        GnsErrorCode.RateLimited => StatusCode.ResourceExhausted,
        GnsErrorCode.Unavailable => StatusCode.Unavailable,
        GnsErrorCode.Internal => StatusCode.Internal,
        GnsErrorCode.Malformed or GnsErrorCode.InvalidRecord or GnsErrorCode.TooLarge or GnsErrorCode.UnsupportedVersion => StatusCode.InvalidArgument,
        _ => StatusCode.Unknown,
    };

    /// <summary>The exception a gRPC method throws for <paramref name="code"/>: the mapped status, and the code's name in <see cref="ErrorTrailer"/>.</summary>
    public static RpcException ToRpcException(GnsErrorCode code, string? message)
        => new(new Status(ToStatusCode(code), message ?? GnsDatagram.Describe(code)), new Metadata { { ErrorTrailer, code.ToString() } });
}
