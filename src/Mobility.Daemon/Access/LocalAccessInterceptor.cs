using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Logging;

namespace Mobility.Daemon.Access;

/// <summary>
/// Applies <see cref="LocalAccessPolicy"/> to every call of the daemon's API, over gRPC and its
/// HTTP/JSON transcoding alike, on loopback TCP and on the Unix sockets: a refused caller gets
/// PermissionDenied (HTTP 403 with <c>{"code":7,"message":...}</c> on HTTP/JSON) and a Debug log line.
/// The verdict is taken once per connection (the kernel's answer cannot change on an open socket).
/// </summary>
public sealed partial class LocalAccessInterceptor : Interceptor
{
    private readonly LocalAccessPolicy _policy;
    private readonly ILogger<LocalAccessInterceptor> _logger;

    public LocalAccessInterceptor(LocalAccessPolicy policy, ILogger<LocalAccessInterceptor> logger)
    {
        _policy = policy;
        _logger = logger;
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Admit(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Admit(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Admit(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Admit(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Admit(ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var http = context.GetHttpContext();
        var items = http.Features.Get<IConnectionItemsFeature>()?.Items;
        if (items?.TryGetValue(typeof(LocalAccessVerdict), out var cached) != true || cached is not LocalAccessVerdict verdict)
        {
            var socket = http.Features.Get<IConnectionSocketFeature>()?.Socket;
            verdict = socket is null ? _policy.Check((uint?)null) : _policy.Check(socket);
            if (items is not null)
            {
                items[typeof(LocalAccessVerdict)] = verdict;
            }
        }

        if (verdict.Admitted)
        {
            return;
        }

        Log.Refused(_logger, http.Connection.RemoteIpAddress?.ToString() ?? "unix socket", context.Method, verdict.Reason);
        throw new RpcException(new Status(StatusCode.PermissionDenied, $"Local access refused: {verdict.Reason}."));
    }

    private static partial class Log
    {
        [LoggerMessage(5101, LogLevel.Debug, "Refused an API call from {Client} ({Method}): {Reason}.")]
        public static partial void Refused(ILogger logger, string client, string method, string reason);
    }
}
