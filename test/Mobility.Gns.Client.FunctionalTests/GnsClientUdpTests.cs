using Microsoft.Extensions.Time.Testing;

namespace Mobility.Gns.Client.FunctionalTests;

public sealed class GnsClientUdpTests : IAsyncLifetime
{
    private readonly FakeGnsUdpServer _server = new();

    /// <summary>
    /// Virtual time of the default client: never advanced unless a test does, so no retransmission
    /// happens by accident on a loaded machine, and tests of retransmission advance it step by step.
    /// </summary>
    private readonly FakeTimeProvider _time = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private GnsClient Client(Action<GnsClientOptions>? configure = null)
    {
        var options = new GnsClientOptions
        {
            Server = _server.EndPoint,
            RequestTimeout = TimeSpan.FromMilliseconds(500),
            MaxAttemptTimeout = TimeSpan.FromSeconds(2),
            Attempts = 3,
            TimeProvider = _time,
        };
        configure?.Invoke(options);
        return new GnsClient(options);
    }

    /// <summary>A new key whose record (<see cref="TestRecords.Create"/>) the fake GNS serves.</summary>
    private HostKey Served(ulong version = 1, uint ttl = 30, string? name = null)
    {
        var key = HostKey.Generate();
        _server.Records[key.Guid] = TestRecords.Create(key, version, ttl, name);
        return key;
    }

    /// <summary>Real time with short timeouts, for tests where every attempt must time out.</summary>
    private static void ShortRealTimeouts(GnsClientOptions options)
    {
        options.TimeProvider = TimeProvider.System;
        options.RequestTimeout = TimeSpan.FromMilliseconds(100);
        options.MaxAttemptTimeout = TimeSpan.FromMilliseconds(200);
    }

    /// <summary>Lets the first <paramref name="attempts"/> attempts of the pending request time out, in virtual time.</summary>
    private async Task TimeOutAttempts(int attempts)
    {
        var options = new GnsClientOptions { RequestTimeout = TimeSpan.FromMilliseconds(500), MaxAttemptTimeout = TimeSpan.FromSeconds(2) };
        for (var attempt = 0; attempt < attempts; attempt++)
        {
            await TestTimeout.Eventually(() => _server.RequestCount > attempt, $"attempt {attempt + 1}");
            _time.Advance(options.AttemptTimeout(attempt) * (1 + GnsClientOptions.RetransmitJitter));
        }
    }

    [Fact]
    public async Task Lookup_returns_the_verified_record()
    {
        using var key = HostKey.Generate();
        var record = TestRecords.Create(key, version: 7, name: "alpha");
        _server.Records[key.Guid] = record;
        await using var client = Client();

        var found = await client.LookupAsync(key.Guid).WithTimeout();

        Assert.NotNull(found);
        Assert.Equal(key.Guid, found.Guid);
        Assert.Equal(7UL, found.Version);
        Assert.True(found.Verify());
        Assert.Equal(record.Encoded.ToArray(), found.Encoded.ToArray());
    }

    [Fact]
    public async Task Lookup_by_name_returns_the_record_bound_to_that_name()
    {
        using var key = Served(name: "bravo");
        await using var client = Client();

        var found = await client.LookupNameAsync("BRAVO").WithTimeout();

        Assert.NotNull(found);
        Assert.Equal(key.Guid, found.Guid);
    }

    [Fact]
    public async Task Lookup_of_an_unknown_guid_returns_null()
    {
        using var key = HostKey.Generate();
        await using var client = Client();

        Assert.Null(await client.LookupAsync(key.Guid).WithTimeout());
        Assert.Null(await client.LookupNameAsync("nobody").WithTimeout());
    }

    /// <summary>The ways a reply's record can be unacceptable to a lookup (one test case each).</summary>
    public enum UnacceptableRecord
    {
        OfAnotherGuid,
        WithAForgedSignature,
        WhoseKeyDoesNotHashToTheGuid,
        WithAnotherName,
    }

    /// <summary>
    /// A GNS (or an attacker racing it) that answers every attempt with an unacceptable record: the
    /// lookup fails with InvalidRecord saying why, within the configured attempts, and caches nothing.
    /// </summary>
    [Theory]
    [InlineData(UnacceptableRecord.OfAnotherGuid)]
    [InlineData(UnacceptableRecord.WithAForgedSignature)]
    [InlineData(UnacceptableRecord.WhoseKeyDoesNotHashToTheGuid)]
    [InlineData(UnacceptableRecord.WithAnotherName)]
    public async Task Reply_with_an_unacceptable_record_is_rejected(UnacceptableRecord unacceptable)
    {
        using var asked = HostKey.Generate();
        using var other = HostKey.Generate();
        Func<GnsClient, Task<GnsRecord?>> byGuid = c => c.LookupAsync(asked.Guid);
        var (reply, lookup, why) = unacceptable switch
        {
            UnacceptableRecord.OfAnotherGuid => (TestRecords.Create(other), byGuid, $"the record is for {other.Guid}, not {asked.Guid}"),
            UnacceptableRecord.WithAForgedSignature => (TestRecords.WithForgedSignature(TestRecords.Create(asked)), byGuid, $"the record claiming {asked.Guid} fails verification"),
            UnacceptableRecord.WhoseKeyDoesNotHashToTheGuid => (TestRecords.ClaimingGuid(other, asked.Guid), byGuid, $"the record claiming {asked.Guid} fails verification"),
            UnacceptableRecord.WithAnotherName => (TestRecords.Create(asked, name: "charlie"), c => c.LookupNameAsync("delta"), $"the record of {asked.Guid} is named 'charlie', not 'delta'"),
            _ => throw new ArgumentOutOfRangeException(nameof(unacceptable)),
        };
        _server.Responder = (request, _) => FakeGnsUdpServer.RecordReply(request.RequestId, reply);
        await using var client = Client(ShortRealTimeouts);

        var e = await Assert.ThrowsAsync<GnsException>(() => lookup(client).WithTimeout());

        Assert.Equal(GnsErrorCode.InvalidRecord, e.Code);
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
        Assert.InRange(_server.RequestCount, 1, 3);
        Assert.Equal(0, client.CachedCount);
    }

    [Fact]
    public async Task Genuine_reply_after_a_forged_one_is_accepted()
    {
        using var key = HostKey.Generate();
        var record = TestRecords.Create(key);
        var forged = TestRecords.WithForgedSignature(record);
        _server.Records[key.Guid] = record;
        _server.Noise = request => [FakeGnsUdpServer.RecordReply(request.RequestId, forged)];
        await using var client = Client();

        var found = await client.LookupAsync(key.Guid).WithTimeout();

        Assert.NotNull(found);
        Assert.Equal(1, _server.RequestCount);
    }

    [Fact]
    public async Task Lookup_retries_after_dropped_datagrams_with_the_same_request_id()
    {
        using var key = Served();
        _server.DropFirst = 2;
        await using var client = Client();

        var lookup = client.LookupAsync(key.Guid);
        await TimeOutAttempts(2);
        var found = await lookup.WithTimeout();

        Assert.NotNull(found);
        Assert.Equal(3, _server.RequestCount);
        Assert.Single(_server.Requests.Select(r => r.RequestId).Distinct());
    }

    [Fact]
    public async Task Unreachable_gns_gives_unavailable_after_all_attempts_within_the_documented_bound()
    {
        var time = new FakeTimeProvider();
        _server.Responder = (_, _) => null;
        await using var client = Client(o =>
        {
            o.TimeProvider = time;
            o.RequestTimeout = TimeSpan.FromMilliseconds(500);
            o.MaxAttemptTimeout = TimeSpan.FromSeconds(2);
            o.Attempts = 4;
        });
        var options = new GnsClientOptions { RequestTimeout = TimeSpan.FromMilliseconds(500), MaxAttemptTimeout = TimeSpan.FromSeconds(2), Attempts = 4 };
        using var key = HostKey.Generate();

        var lookup = client.LookupAsync(key.Guid);
        var advanced = TimeSpan.Zero;
        for (var attempt = 0; attempt < 4; attempt++)
        {
            await TestTimeout.Eventually(() => _server.RequestCount == attempt + 1, $"attempt {attempt + 1}");
            Assert.False(lookup.IsCompleted);
            var step = options.AttemptTimeout(attempt) * (1 + GnsClientOptions.RetransmitJitter);
            time.Advance(step);
            advanced += step;
        }

        var e = await Assert.ThrowsAsync<GnsException>(() => lookup.WithTimeout());
        Assert.Equal(GnsErrorCode.Unavailable, e.Code);
        Assert.Equal($"GNS at {_server.EndPoint} unreachable after 4 attempts", e.Message);
        Assert.Equal(4, _server.RequestCount);
        Assert.Equal(options.MaxUdpWait, advanced);
    }

    [Fact]
    public async Task Replies_from_a_different_source_port_are_ignored()
    {
        using var key = Served();
        _server.ReplyFromOtherPort = true;
        await using var client = Client(ShortRealTimeouts);

        var e = await Assert.ThrowsAsync<GnsException>(() => client.LookupAsync(key.Guid).WithTimeout());

        Assert.Equal(GnsErrorCode.Unavailable, e.Code);
        Assert.Equal(3, _server.RequestCount);
    }

    [Fact]
    public async Task Garbage_replies_are_dropped_and_the_genuine_reply_still_arrives()
    {
        using var key = HostKey.Generate();
        var record = TestRecords.Create(key);
        _server.Records[key.Guid] = record;
        var random = new Random(1234);
        _server.Noise = request =>
        {
            var genuine = FakeGnsUdpServer.RecordReply(request.RequestId, record);
            var oversized = new byte[GnsDatagram.MaxDatagramSize + 100];
            genuine.CopyTo(oversized, 0);
            var randomBytes = new byte[300];
            random.NextBytes(randomBytes);
            var randomWithHeader = (byte[])randomBytes.Clone();
            genuine.AsSpan(0, GnsDatagram.HeaderSize).CopyTo(randomWithHeader);
            return
            [
                [],
                [(byte)'M'],
                genuine[..GnsDatagram.HeaderSize],
                genuine[..(genuine.Length - 1)],
                [.. genuine, 0x00],
                oversized,
                randomBytes,
                randomWithHeader,
                FakeGnsUdpServer.Error(request.RequestId + 1, GnsErrorCode.NotFound, "wrong id"),
                [(byte)'M', (byte)'G', GnsDatagram.ProtocolVersion, 0x84, .. genuine.AsSpan(4, 4), 1, 2, 3],
            ];
        };
        await using var client = Client();

        var found = await client.LookupAsync(key.Guid).WithTimeout();

        Assert.NotNull(found);
        Assert.Equal(1, _server.RequestCount);
        using var second = HostKey.Generate();
        Assert.Null(await client.LookupAsync(second.Guid).WithTimeout());
    }

    [Fact]
    public async Task Reply_of_the_wrong_type_is_not_taken_for_the_answer()
    {
        using var key = HostKey.Generate();
        var record = TestRecords.Create(key);
        _server.Responder = (request, source) =>
        {
            var buffer = new byte[64];
            return buffer[..GnsDatagram.WriteRemoveAck(buffer, request.RequestId, 5)];
        };
        await using var client = Client(ShortRealTimeouts);

        var e = await Assert.ThrowsAsync<GnsException>(() => client.RegisterAsync(record).WithTimeout());

        Assert.Equal(GnsErrorCode.InvalidRecord, e.Code);
    }

    [Fact]
    public async Task Cached_record_is_served_until_its_ttl_expires_then_asked_again()
    {
        var time = _time;
        using var key = Served(ttl: 60);
        await using var client = Client();

        Assert.NotNull(await client.LookupAsync(key.Guid).WithTimeout());
        time.Advance(TimeSpan.FromSeconds(59));
        Assert.NotNull(await client.LookupAsync(key.Guid).WithTimeout());
        Assert.Equal(1, _server.RequestCount);

        time.Advance(TimeSpan.FromSeconds(2));
        Assert.NotNull(await client.LookupAsync(key.Guid).WithTimeout());
        Assert.Equal(2, _server.RequestCount);
    }

    [Fact]
    public async Task Record_with_ttl_zero_is_not_cached()
    {
        using var key = Served(ttl: 0);
        await using var client = Client();

        await client.LookupAsync(key.Guid).WithTimeout();
        await client.LookupAsync(key.Guid).WithTimeout();

        Assert.Equal(2, _server.RequestCount);
        Assert.Equal(0, client.CachedCount);
    }

    [Fact]
    public async Task Cache_is_off_when_disabled()
    {
        using var key = Served(ttl: 600);
        await using var client = Client(o => o.CacheEnabled = false);

        await client.LookupAsync(key.Guid).WithTimeout();
        await client.LookupAsync(key.Guid).WithTimeout();

        Assert.Equal(2, _server.RequestCount);
    }

    [Fact]
    public async Task Name_lookup_is_served_from_the_cache()
    {
        using var key = Served(ttl: 600, name: "echo");
        await using var client = Client();

        await client.LookupNameAsync("echo").WithTimeout();
        var again = await client.LookupAsync(key.Guid).WithTimeout();
        var byName = await client.LookupNameAsync("Echo").WithTimeout();

        Assert.Equal(1, _server.RequestCount);
        Assert.Equal(key.Guid, again!.Guid);
        Assert.Equal(key.Guid, byName!.Guid);
    }

    [Fact]
    public async Task Invalidate_drops_the_cached_record()
    {
        using var key = Served(ttl: 600);
        await using var client = Client();

        await client.LookupAsync(key.Guid).WithTimeout();
        client.Invalidate(key.Guid);
        await client.LookupAsync(key.Guid).WithTimeout();

        Assert.Equal(2, _server.RequestCount);
    }

    [Fact]
    public async Task Register_acknowledges_with_version_and_observed_address_and_fills_the_cache()
    {
        using var key = HostKey.Generate();
        var record = TestRecords.Create(key, version: 42, ttl: 600);
        await using var client = Client();

        var result = await client.RegisterAsync(record).WithTimeout();
        var found = await client.LookupAsync(key.Guid).WithTimeout();

        Assert.Equal(42UL, result.Version);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, client.LocalEndPoint.Port), result.Observed);
        Assert.Equal(42UL, found!.Version);
        Assert.Equal(1, _server.RequestCount);
    }

    [Fact]
    public async Task Refused_register_throws_with_the_gns_error_code()
    {
        using var key = Served(version: 10);
        await using var client = Client();

        var e = await Assert.ThrowsAsync<GnsException>(() => client.RegisterAsync(TestRecords.Create(key, version: 9)).WithTimeout());

        Assert.Equal(GnsErrorCode.StaleVersion, e.Code);
        Assert.Contains("stale version", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Register_whose_first_copy_was_stored_but_unacknowledged_succeeds_on_the_stale_retransmission()
    {
        using var key = HostKey.Generate();
        var record = TestRecords.Create(key, version: 7);
        var updates = 0;
        _server.Responder = (request, source) =>
        {
            var reply = _server.Answer(request, source);
            // The first copy is stored but its ack is lost; the retransmission is answered "stale".
            return request.Type == GnsMessageType.Update && Interlocked.Increment(ref updates) == 1 ? null : reply;
        };
        await using var client = Client();

        var register = client.RegisterAsync(record);
        await TimeOutAttempts(1);
        var result = await register.WithTimeout();

        Assert.Equal(7UL, result.Version);
        Assert.Equal(2, updates);
        // The ack that carried the observed address was lost: the client asked again with a Reflect.
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, client.LocalEndPoint.Port), result.Observed);
    }

    [Fact]
    public async Task Stale_register_is_still_refused_when_the_gns_holds_a_different_record_of_that_version()
    {
        using var key = Served(version: 7);
        await using var client = Client();

        var e = await Assert.ThrowsAsync<GnsException>(() => client.RegisterAsync(TestRecords.Create(key, version: 7, ttl: 99)).WithTimeout());

        Assert.Equal(GnsErrorCode.StaleVersion, e.Code);
    }

    [Fact]
    public async Task Update_without_grpc_refuses_a_guid_without_a_record()
    {
        using var key = HostKey.Generate();
        await using var client = Client();

        var e = await Assert.ThrowsAsync<GnsException>(() => client.UpdateAsync(TestRecords.Create(key)).WithTimeout());

        Assert.Equal(GnsErrorCode.NotFound, e.Code);
        Assert.False(_server.Records.ContainsKey(key.Guid));
    }

    [Fact]
    public async Task Busy_reply_is_retried_until_the_gns_accepts()
    {
        using var key = HostKey.Generate();
        var record = TestRecords.Create(key);
        _server.Responder = (request, source) => _server.RequestCount == 1
            ? FakeGnsUdpServer.Error(request.RequestId, GnsErrorCode.Unavailable, "Busy; retry shortly.")
            : _server.Answer(request, source);
        await using var client = Client();

        var register = client.RegisterAsync(record);
        await TimeOutAttempts(1);
        var result = await register.WithTimeout();

        Assert.Equal(record.Version, result.Version);
        Assert.Equal(2, _server.RequestCount);
    }

    [Fact]
    public async Task Remove_returns_the_tombstone_version_and_drops_the_cached_record()
    {
        using var key = Served(version: 3, ttl: 600);
        await using var client = Client();
        await client.LookupAsync(key.Guid).WithTimeout();

        var version = await client.RemoveAsync(Protocol.Records.GnsRemoval.Create(key, 4)).WithTimeout();

        Assert.Equal(4UL, version);
        Assert.Null(await client.LookupAsync(key.Guid).WithTimeout());
    }

    [Fact]
    public async Task Reverse_lists_the_guids_carrying_an_address()
    {
        using var a = HostKey.Generate();
        using var b = HostKey.Generate();
        _server.Records[a.Guid] = TestRecords.Create(a, address: "198.51.100.7");
        _server.Records[b.Guid] = TestRecords.Create(b, address: "198.51.100.7");
        await using var client = Client();

        var guids = await client.ReverseAsync(IPAddress.Parse("198.51.100.7")).WithTimeout();
        var none = await client.ReverseAsync(IPAddress.Parse("198.51.100.8")).WithTimeout();

        Assert.Equal(new[] { a.Guid, b.Guid }.Order(), guids.Order());
        Assert.Empty(none);
    }

    [Fact]
    public async Task Concurrent_requests_are_matched_to_their_own_replies()
    {
        var keys = Enumerable.Range(0, 20).Select(_ => HostKey.Generate()).ToList();
        foreach (var key in keys)
        {
            _server.Records[key.Guid] = TestRecords.Create(key);
        }

        await using var client = Client(o => o.CacheEnabled = false);

        var results = await Task.WhenAll(keys.Select(k => client.LookupAsync(k.Guid))).WithTimeout();

        Assert.Equal(keys.Select(k => k.Guid), results.Select(r => r!.Guid));
        keys.ForEach(k => k.Dispose());
    }

    [Fact]
    public async Task Cancelled_lookup_throws_operation_cancelled()
    {
        _server.Responder = (_, _) => null;
        await using var client = Client();
        using var key = HostKey.Generate();
        using var cts = new CancellationTokenSource();

        var lookup = client.LookupAsync(key.Guid, cts.Token);
        await TestTimeout.Eventually(() => _server.RequestCount == 1, "the request");
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => lookup.WithTimeout());
    }

    [Fact]
    public async Task Disposed_client_refuses_new_requests()
    {
        var client = Client();
        await client.DisposeAsync().WithTimeout();
        using var key = HostKey.Generate();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.LookupAsync(key.Guid).WithTimeout());
    }

    [Fact]
    public void Options_out_of_range_are_refused_at_construction()
    {
        Assert.Throws<ArgumentException>(() => new GnsClient(new GnsClientOptions { Attempts = 0 }));
        Assert.Throws<ArgumentException>(() => new GnsClient(new GnsClientOptions { RequestTimeout = TimeSpan.Zero }));
        Assert.Throws<ArgumentException>(() => new GnsClient(new GnsClientOptions { GrpcAddress = new Uri("ftp://x/") }));
    }

    [Fact]
    public void Attempt_timeouts_double_up_to_the_cap()
    {
        var options = new GnsClientOptions { RequestTimeout = TimeSpan.FromMilliseconds(500), MaxAttemptTimeout = TimeSpan.FromSeconds(2), Attempts = 4 };

        Assert.Equal(
            new[] { 500, 1000, 2000, 2000 },
            Enumerable.Range(0, 4).Select(i => (int)options.AttemptTimeout(i).TotalMilliseconds));
        Assert.Equal(TimeSpan.FromMilliseconds(5500 * 1.25), options.MaxUdpWait);
    }

    [Fact]
    public async Task Socket_is_bound_to_the_server_address_family()
    {
        await using var client = Client();
        Assert.Equal(AddressFamily.InterNetwork, client.LocalEndPoint.AddressFamily);
    }
}
