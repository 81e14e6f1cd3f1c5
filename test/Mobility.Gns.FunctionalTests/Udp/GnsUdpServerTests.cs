using Microsoft.Extensions.Hosting;

namespace Mobility.Gns.FunctionalTests.Udp;

/// <summary>The UDP endpoint on a real loopback socket.</summary>
public sealed class GnsUdpServerTests : IAsyncLifetime
{
    private readonly HostKey _key = HostKey.Generate();
    private readonly UdpClient _client = new(new IPEndPoint(IPAddress.Loopback, 0));
    private readonly RecordingLoggerProvider _logs = new();
    private ServiceProvider? _services;
    private GnsUdpServer? _server;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.StopAsync(CancellationToken.None).WithTimeout();
        }

        if (_services is not null)
        {
            await _services.DisposeAsync();
        }

        _client.Dispose();
        _key.Dispose();
        // Nothing a peer sends may be logged above Debug; nothing here is a server fault.
        _logs.AssertNoWarningsOrErrors();
    }

    private async Task<IPEndPoint> StartAsync(Action<GnsServerOptions>? configure = null, IGnsStore? store = null)
    {
        var services = new ServiceCollection().AddLogging(b => b.AddProvider(_logs).SetMinimumLevel(LogLevel.Trace));
        if (store is not null)
        {
            services.AddSingleton(store);
        }

        services.AddGnsServer(o =>
        {
            o.Udp = "127.0.0.1:0";
            o.Store = GnsServerOptions.MemoryStore;
            o.UdpReceiveLoops = 2;
            configure?.Invoke(o);
        });
        _services = services.BuildServiceProvider();
        _server = _services.GetRequiredService<GnsUdpServer>();
        Assert.Contains(_services.GetServices<IHostedService>(), s => ReferenceEquals(s, _server));
        await _server.StartAsync(CancellationToken.None).WithTimeout();
        Assert.NotNull(_server.LocalEndPoint);
        Assert.NotEqual(0, _server.LocalEndPoint!.Port);
        return _server.LocalEndPoint;
    }

    private async Task<GnsResponse> ReceiveAsync()
    {
        var result = await _client.ReceiveAsync().WithTimeout();
        return GnsDatagram.ParseResponse(result.Buffer);
    }

    /// <summary>True when a datagram arrives within <paramref name="wait"/> (used to check that nothing arrives).</summary>
    private async Task<bool> AnythingArrivesWithin(TimeSpan wait)
    {
        using var cts = new CancellationTokenSource(wait);
        try
        {
            await _client.ReceiveAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [Fact]
    public async Task Reflect_asking_for_the_other_port_is_answered_from_the_reflect_socket()
    {
        var endPoint = await StartAsync(o => o.UdpReflect = "127.0.0.1:0");
        var reflect = _server!.ReflectEndPoint!;
        Assert.NotEqual(endPoint.Port, reflect.Port);

        await _client.SendAsync(GnsDatagram.Reflect(1), endPoint).WithTimeout();
        var plain = await _client.ReceiveAsync().WithTimeout();
        Assert.Equal(endPoint, plain.RemoteEndPoint);
        var answer = GnsDatagram.ParseResponse(plain.Buffer);
        Assert.Equal((IPEndPoint)_client.Client.LocalEndPoint!, answer.Observed);
        Assert.Equal(reflect.Port, answer.OtherPort);
        Assert.Equal(0, answer.ReflectFlags);

        await _client.SendAsync(GnsDatagram.Reflect(2, GnsDatagram.ReflectFromOtherPort), endPoint).WithTimeout();
        var changed = await _client.ReceiveAsync().WithTimeout();
        Assert.Equal(reflect, changed.RemoteEndPoint); // RFC 5780's change-port test
        var other = GnsDatagram.ParseResponse(changed.Buffer);
        Assert.Equal(GnsDatagram.ReflectFromOtherPort, other.ReflectFlags);
        Assert.Equal(reflect.Port, other.OtherPort); // the other port of the one the request reached
        Assert.Equal(2u, other.RequestId);

        // The reflect socket answers reflects, and asked for the other port, answers from the main one.
        await _client.SendAsync(GnsDatagram.Reflect(3, GnsDatagram.ReflectFromOtherPort), reflect).WithTimeout();
        Assert.Equal(endPoint, (await _client.ReceiveAsync().WithTimeout()).RemoteEndPoint);
    }

    [Fact]
    public async Task Reflect_socket_drops_everything_but_reflects()
    {
        await StartAsync(o => o.UdpReflect = "127.0.0.1:0");
        var reflect = _server!.ReflectEndPoint!;
        await _client.SendAsync(GnsDatagram.LookupGuid(1, _key.Guid), reflect).WithTimeout();
        await _client.SendAsync(GnsDatagram.Update(2, GnsRecord.Create(_key, 1, [], 60, null, DateTimeOffset.UtcNow)), reflect).WithTimeout();
        await _client.SendAsync(new byte[] { 0x4d, 0x47, 0x01, 0x06, 0, 0, 0, 3, 0xff }, reflect).WithTimeout(); // a malformed reflect gets its error
        var error = await ReceiveAsync();
        Assert.Equal(GnsMessageType.Error, error.Type);
        Assert.Equal(3u, error.RequestId);
        Assert.False(await AnythingArrivesWithin(TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Without_a_reflect_endpoint_a_reflect_names_no_other_port_and_comes_from_the_main_port()
    {
        var endPoint = await StartAsync();
        Assert.Null(_server!.ReflectEndPoint);
        await _client.SendAsync(GnsDatagram.Reflect(1, GnsDatagram.ReflectFromOtherPort), endPoint).WithTimeout();
        var result = await _client.ReceiveAsync().WithTimeout();
        Assert.Equal(endPoint, result.RemoteEndPoint);
        var answer = GnsDatagram.ParseResponse(result.Buffer);
        Assert.Equal(0, answer.OtherPort);
        Assert.Equal(0, answer.ReflectFlags);
    }

    [Fact]
    public async Task Update_and_lookup_round_trip_over_loopback_and_ack_reports_the_client_port()
    {
        var server = await StartAsync();
        var record = Records.Make(_key, 1, "udp-host");
        await _client.SendAsync(GnsDatagram.Update(11, record), server).WithTimeout();
        var ack = await ReceiveAsync();
        Assert.Equal(GnsMessageType.UpdateAck, ack.Type);
        Assert.Equal(11u, ack.RequestId);
        Assert.Equal((IPEndPoint)_client.Client.LocalEndPoint!, ack.Observed);

        await _client.SendAsync(GnsDatagram.LookupName(12, "udp-host"), server).WithTimeout();
        var reply = await ReceiveAsync();
        Assert.Equal(12u, reply.RequestId);
        Assert.Equal(record.Encoded.ToArray(), reply.Record!.Encoded.ToArray());
    }

    [Fact]
    public async Task Slow_update_does_not_hold_up_lookups_and_is_acknowledged_once_stored()
    {
        var store = new GatedStore();
        var server = await StartAsync(store: store);
        await _client.SendAsync(GnsDatagram.Update(1, Records.Make(_key, 1)), server).WithTimeout();
        await store.PutStarted.Task.WithTimeout();

        await _client.SendAsync(GnsDatagram.LookupGuid(2, _key.Guid), server).WithTimeout();
        var lookup = await ReceiveAsync();
        Assert.Equal(2u, lookup.RequestId);
        Assert.Equal(GnsErrorCode.NotFound, lookup.ErrorCode);

        store.Gate.SetResult();
        var ack = await ReceiveAsync();
        Assert.Equal(1u, ack.RequestId);
        Assert.Equal(GnsMessageType.UpdateAck, ack.Type);
    }

    [Fact]
    public async Task Updates_beyond_the_in_flight_limit_are_answered_unavailable()
    {
        var store = new GatedStore();
        using var other = HostKey.Generate();
        var server = await StartAsync(o => o.MaxInFlightUpdates = 1, store);
        await _client.SendAsync(GnsDatagram.Update(1, Records.Make(_key, 1)), server).WithTimeout();
        await store.PutStarted.Task.WithTimeout();
        await _client.SendAsync(GnsDatagram.Update(2, Records.Make(other, 1)), server).WithTimeout();
        var busy = await ReceiveAsync();
        Assert.Equal(2u, busy.RequestId);
        Assert.Equal(GnsErrorCode.Unavailable, busy.ErrorCode);
        store.Gate.SetResult();
        Assert.Equal(GnsMessageType.UpdateAck, (await ReceiveAsync()).Type);
    }

    [Fact]
    public async Task Source_over_its_rate_gets_one_rate_limited_reply_then_nothing()
    {
        var server = await StartAsync(o =>
        {
            o.RequestsPerSecond = 0.01;
            o.Burst = 2;
            o.RateLimitedReplyInterval = TimeSpan.FromHours(1);
        });
        for (uint i = 1; i <= 6; i++)
        {
            await _client.SendAsync(GnsDatagram.LookupGuid(i, _key.Guid), server).WithTimeout();
        }

        var replies = new[] { await ReceiveAsync(), await ReceiveAsync(), await ReceiveAsync() };
        Assert.Equal(2, replies.Count(r => r.ErrorCode == GnsErrorCode.NotFound));
        Assert.Single(replies, r => r.ErrorCode == GnsErrorCode.RateLimited);
        Assert.False(await AnythingArrivesWithin(TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Garbage_and_reply_datagrams_get_no_answer_and_the_server_keeps_serving()
    {
        var server = await StartAsync();
        await _client.SendAsync(new byte[] { 1, 2, 3 }, server).WithTimeout();
        var reply = GnsDatagram.LookupGuid(1, _key.Guid);
        reply[3] = (byte)GnsMessageType.Error;
        await _client.SendAsync(reply, server).WithTimeout();
        await _client.SendAsync(new byte[4000], server).WithTimeout();

        await _client.SendAsync(GnsDatagram.LookupGuid(9, _key.Guid), server).WithTimeout();
        var answer = await ReceiveAsync();
        Assert.Equal(9u, answer.RequestId);
    }

    [Fact]
    public async Task Stopping_waits_for_an_accepted_update_and_still_acknowledges_it()
    {
        var store = new GatedStore();
        var server = await StartAsync(store: store);
        await _client.SendAsync(GnsDatagram.Update(21, Records.Make(_key, 1)), server).WithTimeout();
        await store.PutStarted.Task.WithTimeout();

        var stopping = _server!.StopAsync(CancellationToken.None);
        Assert.False(stopping.IsCompleted);
        store.Gate.SetResult();
        var ack = await ReceiveAsync();
        Assert.Equal(21u, ack.RequestId);
        Assert.Equal(GnsMessageType.UpdateAck, ack.Type);
        await stopping.WithTimeout();
        _server = null;
    }

    [Fact]
    public async Task Ipv6_endpoint_serves_over_ipv6_loopback()
    {
        var server = await StartAsync(o => o.Udp = "[::1]:0");
        Assert.Equal(AddressFamily.InterNetworkV6, server.AddressFamily);
        using var client6 = new UdpClient(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        await client6.SendAsync(GnsDatagram.Update(3, Records.Make(_key, 1)), server).WithTimeout();
        var ack = GnsDatagram.ParseResponse((await client6.ReceiveAsync().WithTimeout()).Buffer);
        Assert.Equal((IPEndPoint)client6.Client.LocalEndPoint!, ack.Observed);
    }

    [Fact]
    public async Task Oversized_datagram_gets_a_malformed_reply()
    {
        var server = await StartAsync();
        var big = new byte[2000];
        GnsDatagram.LookupGuid(5, _key.Guid, 0).CopyTo(big, 0);
        await _client.SendAsync(big, server).WithTimeout();
        var reply = await ReceiveAsync();
        Assert.Equal(5u, reply.RequestId);
        Assert.Equal(GnsErrorCode.Malformed, reply.ErrorCode);
    }
}
