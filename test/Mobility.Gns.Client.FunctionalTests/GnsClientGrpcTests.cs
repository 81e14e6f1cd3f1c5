namespace Mobility.Gns.Client.FunctionalTests;

public sealed class GnsClientGrpcTests : IAsyncLifetime
{
    private readonly FakeGnsUdpServer _udp = new();
    private FakeGnsGrpcServer _grpc = null!;

    public async Task InitializeAsync() => _grpc = await FakeGnsGrpcServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _grpc.DisposeAsync();
        await _udp.DisposeAsync();
    }

    private GnsClient Client(Action<GnsClientOptions>? configure = null)
    {
        var options = new GnsClientOptions
        {
            Server = _udp.EndPoint,
            GrpcAddress = _grpc.Address,
            RequestTimeout = TimeSpan.FromMilliseconds(50),
            MaxAttemptTimeout = TimeSpan.FromMilliseconds(100),
            Attempts = 2,
            WatchReconnectDelay = TimeSpan.FromMilliseconds(10),
            WatchMaxReconnectDelay = TimeSpan.FromMilliseconds(50),
        };
        configure?.Invoke(options);
        return new GnsClient(options);
    }

    private static async Task<List<GnsWatchEvent>> TakeAsync(IAsyncEnumerable<GnsWatchEvent> events, int count)
    {
        var taken = new List<GnsWatchEvent>();
        await foreach (var e in events)
        {
            taken.Add(e);
            if (taken.Count == count)
            {
                break;
            }
        }

        return taken;
    }

    [Fact]
    public async Task Watch_yields_the_current_state_then_each_change()
    {
        using var key = HostKey.Generate();
        using var absent = HostKey.Generate();
        _grpc.State.Records[key.Guid] = TestRecords.Create(key, version: 1);
        await using var client = Client();
        using var cts = new CancellationTokenSource(TestTimeout.Default);

        var watching = TakeAsync(client.WatchAsync([key.Guid, absent.Guid], cts.Token), 3);
        await _grpc.State.Pushes.Writer.WriteAsync(FakeGnsGrpcState.Event(TestRecords.Create(key, version: 2)));
        var events = await watching.WithTimeout();

        Assert.Equal(1UL, events.Single(e => e.Guid == key.Guid && e.Version == 1).Record!.Version);
        Assert.True(events.Single(e => e.Guid == absent.Guid).Removed);
        Assert.Equal(2UL, events[2].Record!.Version);
    }

    [Fact]
    public async Task Watch_reconnects_after_the_stream_fails_and_gets_the_current_state_again()
    {
        using var key = HostKey.Generate();
        _grpc.State.Records[key.Guid] = TestRecords.Create(key, version: 5);
        _grpc.State.FailFirstWatch = true;
        await using var client = Client();
        using var cts = new CancellationTokenSource(TestTimeout.Default);

        var events = await TakeAsync(client.WatchAsync([key.Guid], cts.Token), 2).WithTimeout();

        Assert.All(events, e => Assert.Equal(5UL, e.Version));
        Assert.Equal(2, _grpc.State.WatchCalls);
    }

    [Fact]
    public async Task Watch_drops_forged_records_and_events_for_guids_not_watched()
    {
        using var key = HostKey.Generate();
        using var other = HostKey.Generate();
        _grpc.State.Records[key.Guid] = TestRecords.Create(key, version: 1);
        await using var client = Client();
        using var cts = new CancellationTokenSource(TestTimeout.Default);

        var watching = TakeAsync(client.WatchAsync([key.Guid], cts.Token), 2);
        await _grpc.State.Pushes.Writer.WriteAsync(FakeGnsGrpcState.Event(TestRecords.WithForgedSignature(TestRecords.Create(key, version: 9))));
        await _grpc.State.Pushes.Writer.WriteAsync(FakeGnsGrpcState.Event(TestRecords.ClaimingGuid(other, key.Guid)));
        await _grpc.State.Pushes.Writer.WriteAsync(FakeGnsGrpcState.Event(TestRecords.Create(other, version: 9)));
        await _grpc.State.Pushes.Writer.WriteAsync(FakeGnsGrpcState.Event(TestRecords.Create(key, version: 2)));
        var events = await watching.WithTimeout();

        Assert.Equal(new ulong[] { 1, 2 }, events.Select(e => e.Version));
        Assert.All(events, e => Assert.Equal(key.Guid, e.Guid));
    }

    [Fact]
    public async Task Watch_event_refreshes_the_cache_and_a_removal_drops_it()
    {
        using var key = HostKey.Generate();
        _grpc.State.Records[key.Guid] = TestRecords.Create(key, version: 1, ttl: 600);
        await using var client = Client();
        using var cts = new CancellationTokenSource(TestTimeout.Default);
        await using var events = client.WatchAsync([key.Guid], cts.Token).GetAsyncEnumerator();

        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        var cached = await client.LookupAsync(key.Guid).WithTimeout();
        Assert.Equal(1UL, cached!.Version);
        Assert.Equal(0, _udp.RequestCount);

        await _grpc.State.Pushes.Writer.WriteAsync(new Api.WatchEvent { Guid = key.Guid.ToString(), Removed = true, Version = 2 });
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.True(events.Current.Removed);
        Assert.Null(await client.LookupAsync(key.Guid).WithTimeout());
        Assert.True(_udp.RequestCount >= 1);
    }

    [Fact]
    public async Task Truncated_reverse_reply_is_completed_over_grpc()
    {
        var guids = Enumerable.Range(0, 3).Select(_ => { using var k = HostKey.Generate(); return k.Guid; }).Order().ToList();
        _grpc.State.ReverseGuids.AddRange(guids);
        _udp.Responder = (request, _) =>
        {
            var buffer = new byte[GnsDatagram.MaxDatagramSize];
            return buffer[..GnsDatagram.WriteGuidList(buffer, request.RequestId, [guids[0]], moreExist: true)];
        };
        await using var client = Client();

        var result = await client.ReverseAsync(IPAddress.Parse("203.0.113.5")).WithTimeout();

        Assert.Equal(guids, result);
    }

    [Fact]
    public async Task Truncated_reverse_reply_without_grpc_returns_what_fitted()
    {
        using var key = HostKey.Generate();
        _udp.Responder = (request, _) =>
        {
            var buffer = new byte[GnsDatagram.MaxDatagramSize];
            return buffer[..GnsDatagram.WriteGuidList(buffer, request.RequestId, [key.Guid], moreExist: true)];
        };
        await using var client = Client(o => o.GrpcAddress = null);

        Assert.Equal([key.Guid], await client.ReverseAsync(IPAddress.Parse("203.0.113.5")).WithTimeout());
    }

    [Fact]
    public async Task Lookup_falls_back_to_grpc_when_udp_gets_no_answer()
    {
        using var key = HostKey.Generate();
        _grpc.State.Records[key.Guid] = TestRecords.Create(key, version: 3);
        _udp.Responder = (_, _) => null;
        await using var client = Client();

        var record = await client.LookupAsync(key.Guid).WithTimeout();

        Assert.Equal(3UL, record!.Version);
        Assert.Equal(2, _udp.RequestCount); // both datagram attempts went unanswered first
    }

    [Fact]
    public async Task Lookup_falls_back_to_grpc_when_the_record_is_too_large_for_a_datagram()
    {
        using var key = HostKey.Generate();
        _grpc.State.Records[key.Guid] = TestRecords.Create(key, version: 3);
        _udp.Responder = (request, _) => FakeGnsUdpServer.Error(request.RequestId, GnsErrorCode.TooLarge, "use HTTP");
        await using var client = Client();

        Assert.Equal(3UL, (await client.LookupAsync(key.Guid).WithTimeout())!.Version);
    }

    [Fact]
    public async Task Forged_record_over_grpc_is_rejected()
    {
        using var key = HostKey.Generate();
        _grpc.State.Records[key.Guid] = TestRecords.WithForgedSignature(TestRecords.Create(key));
        _udp.Responder = (_, _) => null;
        await using var client = Client();

        var e = await Assert.ThrowsAsync<GnsException>(() => client.LookupAsync(key.Guid).WithTimeout());

        Assert.Equal(GnsErrorCode.InvalidRecord, e.Code);
    }

    [Fact]
    public async Task Update_over_grpc_reports_the_gns_error_code_from_the_trailer()
    {
        using var key = HostKey.Generate();
        await using var client = Client();

        var e = await Assert.ThrowsAsync<GnsException>(() => client.UpdateAsync(TestRecords.Create(key)).WithTimeout());

        Assert.Equal(GnsErrorCode.NotFound, e.Code);
        Assert.Equal(0, _udp.RequestCount);
    }

    [Fact]
    public async Task Update_over_grpc_replaces_an_existing_record()
    {
        using var key = HostKey.Generate();
        _grpc.State.Records[key.Guid] = TestRecords.Create(key, version: 1);
        await using var client = Client();

        var result = await client.UpdateAsync(TestRecords.Create(key, version: 2)).WithTimeout();

        Assert.Equal(2UL, result.Version);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 9), result.Observed);
    }

    [Fact]
    public async Task Unreachable_over_both_udp_and_grpc_is_unavailable_and_names_both()
    {
        await _grpc.DisposeAsync();
        _udp.Responder = (_, _) => null;
        await using var client = Client();
        using var key = HostKey.Generate();

        var e = await Assert.ThrowsAsync<GnsException>(() => client.LookupAsync(key.Guid).WithTimeout());

        Assert.Equal(GnsErrorCode.Unavailable, e.Code);
        Assert.StartsWith($"GNS at {_udp.EndPoint} unreachable after 2 attempts; GNS at {_grpc.Address}", e.Message, StringComparison.Ordinal);
        _grpc = await FakeGnsGrpcServer.StartAsync();
    }

    [Fact]
    public async Task Watch_reconnect_delay_doubles_with_jitter_up_to_the_cap()
    {
        await using var client = Client(o =>
        {
            o.WatchReconnectDelay = TimeSpan.FromMilliseconds(100);
            o.WatchMaxReconnectDelay = TimeSpan.FromMilliseconds(1000);
        });

        for (var i = 0; i < 50; i++)
        {
            Assert.InRange(client.WatchReconnectDelay(1).TotalMilliseconds, 50, 100);
            Assert.InRange(client.WatchReconnectDelay(3).TotalMilliseconds, 200, 400);
            Assert.InRange(client.WatchReconnectDelay(30).TotalMilliseconds, 500, 1000);
        }
    }

    [Fact]
    public async Task Watch_without_a_grpc_address_is_refused()
    {
        await using var client = Client(o => o.GrpcAddress = null);
        using var key = HostKey.Generate();

        await Assert.ThrowsAsync<InvalidOperationException>(() => TakeAsync(client.WatchAsync([key.Guid]), 1).WithTimeout());
    }
}
