using System.Net.Http.Json;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Mobility.Gns.Api;
using ApiGns = Mobility.Gns.Api.Gns;

namespace Mobility.Gns.FunctionalTests.Rpc;

/// <summary>gRPC (HTTP/2 cleartext) and HTTP/JSON against a real Kestrel on loopback.</summary>
public sealed class GnsGrpcServiceTests : IAsyncLifetime
{
    private readonly HostKey _key = HostKey.Generate();
    private readonly HostKey _other = HostKey.Generate();
    private WebApplication? _app;
    private GrpcChannel? _channel;
    private ApiGns.GnsClient _grpc = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        ListenOptions? http = null;
        ListenOptions? grpc = null;
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0, o =>
            {
                o.Protocols = HttpProtocols.Http1;
                http = o;
            });
            k.Listen(IPAddress.Loopback, 0, o =>
            {
                o.Protocols = HttpProtocols.Http2;
                grpc = o;
            });
        });
        builder.Services.AddGnsServer(o =>
        {
            o.Udp = "";
            o.Store = GnsServerOptions.MemoryStore;
            o.MaxWatchGuids = 8;
        });
        _app = builder.Build();
        _app.MapGnsService();
        await _app.StartAsync().WithTimeout();

        _channel = GrpcChannel.ForAddress($"http://{grpc!.IPEndPoint}");
        _grpc = new ApiGns.GnsClient(_channel);
        _http = new HttpClient { BaseAddress = new Uri($"http://{http!.IPEndPoint}"), Timeout = TestTimeout.Default };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        _channel?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync().WithTimeout();
            await _app.DisposeAsync();
        }

        _key.Dispose();
        _other.Dispose();
    }

    private static UpdateRequest Request(GnsRecord record) => new() { Record = ByteString.CopyFrom(record.Encoded.Span) };

    private static CallOptions Deadline => new(deadline: DateTime.UtcNow + TestTimeout.Default);

    private static async Task<RpcException> Refused(Func<Task> call, StatusCode status, string gnsError)
    {
        var ex = await Assert.ThrowsAsync<RpcException>(call).WithTimeout();
        Assert.Equal(status, ex.StatusCode);
        Assert.Equal(gnsError, ex.Trailers.GetValue("gns-error"));
        return ex;
    }

    [Fact]
    public async Task Grpc_register_reports_the_connection_address_and_json_lookup_returns_the_record()
    {
        var record = Records.Make(_key, 1, "json-host", addresses: ["192.0.2.8", "2001:db8::8"]);
        var reply = await _grpc.RegisterAsync(Request(record), Deadline);
        Assert.Equal(1ul, reply.Version);
        Assert.Equal("127.0.0.1", reply.ObservedAddress);
        Assert.NotEqual(0u, reply.ObservedPort);

        using var response = await _http.GetAsync($"/v1/records/{_key.Guid}").WithTimeout();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync().WithTimeout());
        var root = json.RootElement;
        Assert.Equal(_key.Guid.ToString(), root.GetProperty("guid").GetString());
        Assert.Equal("json-host", root.GetProperty("name").GetString());
        Assert.Equal(record.Encoded.ToArray(), Convert.FromBase64String(root.GetProperty("signed").GetString()!));
        Assert.Equal("2001:db8::8", root.GetProperty("locators")[1].GetProperty("address").GetString());

        var byName = await _grpc.LookupNameAsync(new LookupNameRequest { Name = "JSON-HOST" }, Deadline);
        Assert.Equal(record.Encoded.ToArray(), byName.Signed.ToByteArray());
    }

    [Fact]
    public async Task Json_register_reverse_and_remove_work_over_http1()
    {
        var record = Records.Make(_key, 1, addresses: "192.0.2.200");
        using (var put = await _http.PostAsJsonAsync("/v1/records", new { record = Convert.ToBase64String(record.Encoded.Span) }).WithTimeout())
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        using (var reverse = await _http.GetAsync("/v1/reverse/192.0.2.200").WithTimeout())
        {
            var text = await reverse.Content.ReadAsStringAsync().WithTimeout();
            Assert.Contains(_key.Guid.ToString(), text, StringComparison.Ordinal);
        }

        var removal = GnsRemoval.Create(_key, 2);
        using (var remove = await _http.PostAsJsonAsync("/v1/remove", new { removal = Convert.ToBase64String(removal.Encoded.Span) }).WithTimeout())
        {
            Assert.Equal(HttpStatusCode.OK, remove.StatusCode);
        }

        using var gone = await _http.GetAsync($"/v1/records/{_key.Guid}").WithTimeout();
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task Json_lookup_of_a_bad_guid_is_400_and_of_an_unknown_guid_404()
    {
        using var bad = await _http.GetAsync("/v1/records/not-a-guid").WithTimeout();
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        using var unknown = await _http.GetAsync($"/v1/records/{_other.Guid}").WithTimeout();
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task Refusals_carry_the_mapped_status_and_the_gns_error_trailer()
    {
        await _grpc.RegisterAsync(Request(Records.Make(_key, 2, "taken")), Deadline);

        await Refused(async () => await _grpc.RegisterAsync(Request(Records.Make(_key, 2)), Deadline),
            StatusCode.FailedPrecondition, "StaleVersion");
        await Refused(async () => await _grpc.RegisterAsync(Request(Records.Make(_other, 1, "taken")), Deadline),
            StatusCode.AlreadyExists, "NameTaken");
        await Refused(async () => await _grpc.UpdateAsync(Request(Records.Make(_other, 1)), Deadline),
            StatusCode.NotFound, "NotFound");
        await Refused(async () => await _grpc.LookupAsync(new LookupRequest { Guid = _other.Guid.ToString() }, Deadline),
            StatusCode.NotFound, "NotFound");
        await Refused(async () => await _grpc.LookupAsync(new LookupRequest { Guid = "zz" }, Deadline),
            StatusCode.InvalidArgument, "Malformed");
        await Refused(async () => await _grpc.RegisterAsync(new UpdateRequest { Record = ByteString.CopyFrom(1, 2, 3) }, Deadline),
            StatusCode.InvalidArgument, "Malformed");

        var forged = Records.Make(_other, 3).Encoded.ToArray();
        _key.Guid.WriteTo(forged.AsSpan(1));
        _key.PublicKey.CopyTo(forged.AsSpan(1 + HostGuid.Size));
        await Refused(async () => await _grpc.RegisterAsync(new UpdateRequest { Record = ByteString.CopyFrom(forged) }, Deadline),
            StatusCode.PermissionDenied, "BadSignature");
        await Refused(async () => await _grpc.RemoveAsync(new RemoveRequest { Removal = ByteString.CopyFrom(GnsRemoval.Create(_other, 9).Encoded.Span) }, Deadline),
            StatusCode.NotFound, "NotFound");
    }

    [Fact]
    public async Task Grpc_watch_streams_the_current_state_then_changes()
    {
        using var cts = new CancellationTokenSource(TestTimeout.Default);
        using var call = _grpc.Watch(new WatchRequest { Guids = { _key.Guid.ToString() } }, cancellationToken: cts.Token);
        var events = call.ResponseStream;

        Assert.True(await events.MoveNext(cts.Token).WithTimeout());
        Assert.True(events.Current.Removed);
        Assert.Equal(0ul, events.Current.Version);

        await _grpc.RegisterAsync(Request(Records.Make(_key, 4)), Deadline);
        Assert.True(await events.MoveNext(cts.Token).WithTimeout());
        Assert.False(events.Current.Removed);
        Assert.Equal(4ul, events.Current.Record.Version);
        Assert.Equal(_key.Guid.ToString(), events.Current.Guid);
        await cts.CancelAsync();
    }

    [Fact]
    public async Task Stopping_the_server_ends_open_watch_streams_cleanly()
    {
        using var call = _grpc.Watch(new WatchRequest { Guids = { _key.Guid.ToString() } }, Deadline);
        var events = call.ResponseStream;
        Assert.True(await events.MoveNext(CancellationToken.None).WithTimeout());
        using var json = await _http.GetAsync($"/v1/watch?guids={_key.Guid}", HttpCompletionOption.ResponseHeadersRead).WithTimeout();
        using var reader = new StreamReader(await json.Content.ReadAsStreamAsync().WithTimeout());
        Assert.NotNull(await reader.ReadLineAsync().WithTimeout());

        // Without the hub ending the watches, the host would wait for its shutdown timeout and then abort them.
        var app = _app!;
        _app = null;
        var stopping = app.StopAsync();
        Assert.False(await events.MoveNext(CancellationToken.None).WithTimeout());
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Null(await reader.ReadLineAsync().WithTimeout());
        await stopping.WithTimeout();
        await app.DisposeAsync();
    }

    [Fact]
    public async Task Json_watch_over_http1_streams_one_json_object_per_event()
    {
        using var response = await _http.GetAsync($"/v1/watch?guids={_key.Guid}", HttpCompletionOption.ResponseHeadersRead).WithTimeout();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync().WithTimeout());
        using var first = JsonDocument.Parse((await reader.ReadLineAsync().WithTimeout())!);
        Assert.True(first.RootElement.GetProperty("removed").GetBoolean());

        await _grpc.RegisterAsync(Request(Records.Make(_key, 2)), Deadline);
        using var second = JsonDocument.Parse((await reader.ReadLineAsync().WithTimeout())!);
        Assert.Equal(_key.Guid.ToString(), second.RootElement.GetProperty("record").GetProperty("guid").GetString());
    }

    [Fact]
    public async Task Grpc_watch_of_too_many_guids_is_refused()
    {
        var request = new WatchRequest();
        for (var i = 0; i < 9; i++)
        {
            request.Guids.Add(HostGuid.FromPublicKey(Enumerable.Repeat((byte)i, 32).ToArray()).ToString());
        }

        using var call = _grpc.Watch(request, Deadline);
        var ex = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None)).WithTimeout();
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Equal("TooLarge", ex.Trailers.GetValue("gns-error"));
    }
}
