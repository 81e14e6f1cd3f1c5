using System.Net;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Api;
using Mobility.Daemon.Internal;
using Mobility.Gns.Client;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;

namespace Mobility.Daemon.Service;

/// <summary>
/// The gRPC face of <see cref="DaemonApi"/>; JSON transcoding serves the same methods as HTTP/JSON,
/// on loopback TCP and on the Unix socket. SetAddresses is allowed only to the socket's owner or
/// root (SO_PEERCRED), and over TCP only when <see cref="MobilitydOptions.AllowStateChangesOverTcp"/>.
/// </summary>
public sealed partial class MobilitydGrpcService : Mobilityd.MobilitydBase
{
    private readonly DaemonApi _api;
    private readonly Transparent.TransparentMode _transparent;
    private readonly Access.LocalAccessPolicy _access;
    private readonly MobilitydOptions _options;
    private readonly ILogger<MobilitydGrpcService> _logger;
    private readonly uint _ownerUid = Native.EffectiveUserId();

    public MobilitydGrpcService(DaemonApi api, Transparent.TransparentMode transparent, Access.LocalAccessPolicy access, IOptions<MobilitydOptions> options,
        ILogger<MobilitydGrpcService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _api = api;
        _transparent = transparent;
        _access = access;
        _options = options.Value;
        _logger = logger;
    }

    public override Task<GetSelfGuidReply> GetSelfGuid(GetSelfGuidRequest request, ServerCallContext context)
        => Task.FromResult(new GetSelfGuidReply { Guid = _api.GetSelfGuid().ToString() });

    public override async Task<GetIpReply> GetIp(GetIpRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var record = await Guard(() => _api.GetIpAsync(request.Target, context.CancellationToken)).ConfigureAwait(false);
        return record is null
            ? throw new RpcException(new Grpc.Core.Status(StatusCode.NotFound, $"The GNS has no record for '{request.Target}'."))
            : ApiMapping.ToProto(record);
    }

    public override async Task<GetGuidFromIpReply> GetGuidFromIp(GetGuidFromIpRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        if (!IPAddress.TryParse(request.Address, out var address))
        {
            throw Invalid($"'{request.Address}' is not an IP address.");
        }

        var result = await Guard(() => _api.GetGuidFromIpAsync(address, context.CancellationToken)).ConfigureAwait(false);
        return ApiMapping.ToProto(result);
    }

    public override async Task<ChallengeReply> Challenge(Api.ChallengeRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        if (!HostGuid.TryParse(request.Guid, out var guid))
        {
            throw Invalid($"'{request.Guid}' is not a GUID (40 hexadecimal characters).");
        }

        var target = Guard(() => _api.ParseChallengeTarget(request.Address));
        var verdict = await _api.ChallengeAsync(target, guid, context.CancellationToken).ConfigureAwait(false);
        return ApiMapping.ToProto(verdict);
    }

    public override Task<Api.Status> GetStatus(GetStatusRequest request, ServerCallContext context)
    {
        var status = ApiMapping.ToProto(_api.GetStatus());
        status.Transparent = ApiMapping.ToProto(_transparent.Status);
        return Task.FromResult(status);
    }

    public override Task<Api.TransparentStatus> GetTransparent(GetTransparentRequest request, ServerCallContext context)
        => Task.FromResult(ApiMapping.ToProto(_transparent.Status));

    public override async Task<Api.TransparentStatus> SetTransparent(SetTransparentRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        // The local access rule (root, the daemon's user and group, LocalAccess), asked of the caller's uid from SO_PEERCRED.
        if (!PeerCredentials.TryGet(context.GetHttpContext(), out var peer))
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.PermissionDenied,
                "Transparent mode is switched only over the Unix socket, where the caller's user is known."));
        }

        var verdict = _access.Check(peer.UserId);
        if (!verdict.Admitted)
        {
            Log.Refused(_logger, peer.UserId, peer.ProcessId);
            throw new RpcException(new Grpc.Core.Status(StatusCode.PermissionDenied, $"Only root or the daemon's admitted users may switch transparent mode: {verdict.Reason}."));
        }

        try
        {
            return ApiMapping.ToProto(await _transparent.SwitchAsync(request.Enabled, request.HasOpportunistic ? request.Opportunistic : null, context.CancellationToken).ConfigureAwait(false));
        }
        catch (Transparent.TransparentModeException e)
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.FailedPrecondition, e.Message));
        }
    }

    public override async Task<Api.NatStatus> Netcheck(NetcheckRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return ApiMapping.ToProto(await _api.NetcheckAsync(context.CancellationToken).ConfigureAwait(false), _api.PortMapping);
    }

    public override Task<Api.Addresses> GetAddresses(GetAddressesRequest request, ServerCallContext context)
        => Task.FromResult(ApiMapping.ToProto(_api.GetAddresses()));

    public override async Task<Api.Addresses> SetAddresses(SetAddressesRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        Authorize(context);
        var addresses = Guard(() => DaemonApi.ParseAddresses(request.Addresses));
        var view = await Guard(() => _api.SetAddressesAsync(addresses, context.CancellationToken)).ConfigureAwait(false);
        return ApiMapping.ToProto(view);
    }

    public override async Task<Api.ExposedPorts> Expose(ExposeRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        Authorize(context);
        var port = checked((int)Math.Min(request.Port, int.MaxValue));
        var source = Guard(() => Inbound.InboundSources.Parse(request.Source));
        var view = await Guard(() => _api.ExposeAsync(port, [.. request.Allow], request.Udp, source, context.CancellationToken)).ConfigureAwait(false);
        return ApiMapping.ToProto(view);
    }

    public override Task<Api.ExposedPorts> Unexpose(UnexposeRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        Authorize(context);
        return Task.FromResult(ApiMapping.ToProto(Guard(() => _api.Unexpose(checked((int)Math.Min(request.Port, int.MaxValue)), request.Udp))));
    }

    public override async Task<UdpForwardList> StartUdpForward(StartUdpForwardRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        Authorize(context);
        var (started, all) = await Guard(() => _api.StartUdpForwardAsync((int)Math.Min(request.LocalPort, int.MaxValue), request.Host,
            (int)Math.Min(request.Port, int.MaxValue), context.CancellationToken)).ConfigureAwait(false);
        var reply = ApiMapping.ToProto(all);
        reply.Started = ApiMapping.ToProto(started);
        return reply;
    }

    public override Task<UdpForwardList> StopUdpForward(StopUdpForwardRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        Authorize(context);
        return Task.FromResult(ApiMapping.ToProto(Guard(() => _api.StopUdpForward((int)Math.Min(request.LocalPort, int.MaxValue)))));
    }

    public override Task<UdpForwardList> ListUdpForwards(ListUdpForwardsRequest request, ServerCallContext context)
        => Task.FromResult(ApiMapping.ToProto(_api.ListUdpForwards()));

    public override Task<Api.ExposedPorts> ListExposed(ListExposedRequest request, ServerCallContext context)
        => Task.FromResult(ApiMapping.ToProto(_api.ListExposed()));

    /// <summary>Refuses a state change unless the caller is the socket's owner or root, or TCP changes are allowed.</summary>
    private void Authorize(ServerCallContext context)
    {
        var http = context.GetHttpContext();
        if (PeerCredentials.TryGet(http, out var peer))
        {
            if (peer.UserId == 0 || peer.UserId == _ownerUid)
            {
                return;
            }

            Log.Refused(_logger, peer.UserId, peer.ProcessId);
            throw new RpcException(new Grpc.Core.Status(StatusCode.PermissionDenied,
                $"Only the daemon's user ({_ownerUid}) or root may change the daemon's state; the caller is uid {peer.UserId}."));
        }

        if (_options.AllowStateChangesOverTcp)
        {
            return;
        }

        throw new RpcException(new Grpc.Core.Status(StatusCode.PermissionDenied,
            "State changes are accepted only on the Unix socket (where the caller's user is known); AllowStateChangesOverTcp is off."));
    }

    private static RpcException Invalid(string message) => new(new Grpc.Core.Status(StatusCode.InvalidArgument, message));

    private static T Guard<T>(Func<T> action)
    {
        try
        {
            return action();
        }
        catch (ArgumentException e)
        {
            throw Invalid(e.Message);
        }
    }

    private static async Task<T> Guard<T>(Func<Task<T>> action)
    {
        try
        {
            return await action().ConfigureAwait(false);
        }
        catch (ArgumentException e)
        {
            throw Invalid(e.Message);
        }
        catch (GnsException e)
        {
            var code = e.Code switch
            {
                GnsErrorCode.NotFound => StatusCode.NotFound,
                GnsErrorCode.Unavailable => StatusCode.Unavailable,
                GnsErrorCode.RateLimited => StatusCode.ResourceExhausted,
                _ => StatusCode.FailedPrecondition,
            };
            throw new RpcException(new Grpc.Core.Status(code, $"GNS: {e.Message}"));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(5001, LogLevel.Debug, "Refused a state change from uid {Uid} (pid {Pid}).")]
        public static partial void Refused(ILogger logger, uint uid, int pid);
    }
}
