using System.Collections.Concurrent;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Mobility.Gns.Api;
using Record = Mobility.Gns.Api.Record;

namespace Mobility.Gns.Client.FunctionalTests;

/// <summary>What the fake gRPC GNS answers; tests script it.</summary>
internal sealed class FakeGnsGrpcState
{
    public ConcurrentDictionary<HostGuid, GnsRecord> Records { get; } = new();

    public List<HostGuid> ReverseGuids { get; } = [];

    public int WatchCalls;

    /// <summary>The first watch call fails (Unavailable) right after sending the current state.</summary>
    public bool FailFirstWatch { get; set; }

    /// <summary>Events pushed to the live watch stream after the current state.</summary>
    public Channel<WatchEvent> Pushes { get; } = Channel.CreateUnbounded<WatchEvent>();

    public static WatchEvent Event(GnsRecord record) => new()
    {
        Guid = record.Guid.ToString(),
        Record = ToProto(record),
        Version = record.Version,
    };

    public static Record ToProto(GnsRecord record) => new()
    {
        Signed = ByteString.CopyFrom(record.Encoded.Span),
        Guid = record.Guid.ToString(),
        Version = record.Version,
        TtlSeconds = record.TtlSeconds,
    };

    public static RpcException Refuse(StatusCode status, string code)
        => new(new Status(status, code), new Metadata { { GnsClient.ErrorTrailer, code } });
}

internal sealed class FakeGnsGrpcService(FakeGnsGrpcState state) : Api.Gns.GnsBase
{
    public override Task<Record> Lookup(LookupRequest request, ServerCallContext context)
        => state.Records.TryGetValue(HostGuid.Parse(request.Guid), out var record)
            ? Task.FromResult(FakeGnsGrpcState.ToProto(record))
            : throw FakeGnsGrpcState.Refuse(StatusCode.NotFound, "NotFound");

    public override Task<UpdateReply> Update(UpdateRequest request, ServerCallContext context)
    {
        var record = GnsRecord.Decode(request.Record.Span);
        if (!state.Records.ContainsKey(record.Guid))
        {
            throw FakeGnsGrpcState.Refuse(StatusCode.NotFound, "NotFound");
        }

        state.Records[record.Guid] = record;
        return Task.FromResult(new UpdateReply { Version = record.Version, ObservedAddress = "127.0.0.1", ObservedPort = 9 });
    }

    public override Task<UpdateReply> Register(UpdateRequest request, ServerCallContext context)
        => throw FakeGnsGrpcState.Refuse(StatusCode.AlreadyExists, "NameTaken");

    public override Task<ReverseReply> Reverse(ReverseRequest request, ServerCallContext context)
    {
        var reply = new ReverseReply();
        reply.Guids.AddRange(state.ReverseGuids.Select(g => g.ToString()));
        reply.Guids.Add("not-a-guid");
        return Task.FromResult(reply);
    }

    public override async Task Watch(WatchRequest request, IServerStreamWriter<WatchEvent> responseStream, ServerCallContext context)
    {
        var call = Interlocked.Increment(ref state.WatchCalls);
        foreach (var text in request.Guids)
        {
            var guid = HostGuid.Parse(text);
            await responseStream.WriteAsync(state.Records.TryGetValue(guid, out var record)
                ? FakeGnsGrpcState.Event(record)
                : new WatchEvent { Guid = text, Removed = true });
        }

        if (call == 1 && state.FailFirstWatch)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "going away"));
        }

        await foreach (var push in state.Pushes.Reader.ReadAllAsync(context.CancellationToken))
        {
            await responseStream.WriteAsync(push);
        }
    }
}

/// <summary>An in-process gRPC GNS on 127.0.0.1 (HTTP/2 cleartext), answering from <see cref="State"/>.</summary>
internal sealed class FakeGnsGrpcServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FakeGnsGrpcServer(WebApplication app, FakeGnsGrpcState state, Uri address)
    {
        _app = app;
        State = state;
        Address = address;
    }

    public FakeGnsGrpcState State { get; }

    public Uri Address { get; }

    public static async Task<FakeGnsGrpcServer> StartAsync()
    {
        var state = new FakeGnsGrpcState();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(state);
        var app = builder.Build();
        app.MapGrpcService<FakeGnsGrpcService>();
        await app.StartAsync().WithTimeout();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new FakeGnsGrpcServer(app, state, new Uri(address));
    }

    public async ValueTask DisposeAsync()
    {
        State.Pushes.Writer.TryComplete();
        await _app.StopAsync().WithTimeout();
        await _app.DisposeAsync();
    }
}
