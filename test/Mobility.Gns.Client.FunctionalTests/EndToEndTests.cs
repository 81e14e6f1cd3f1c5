using System.Text.Json;
using Mobility.Cli;

namespace Mobility.Gns.Client.FunctionalTests;

/// <summary>One real <c>gns</c> process shared by the end-to-end tests (each test uses fresh keys).</summary>
public sealed class GnsProcessFixture : IAsyncLifetime
{
    internal GnsProcess Gns { get; private set; } = null!;

    public async Task InitializeAsync() => Gns = await GnsProcess.StartInMemoryAsync();

    public async Task DisposeAsync() => await Gns.DisposeAsync();
}

/// <summary>The client and the CLI against the real GNS server process (functional tests: real sockets, loopback).</summary>
public sealed class EndToEndTests(GnsProcessFixture fixture) : IClassFixture<GnsProcessFixture>
{
    private GnsClient Client(Action<GnsClientOptions>? configure = null)
    {
        var options = new GnsClientOptions { Server = fixture.Gns.Udp, GrpcAddress = fixture.Gns.Grpc };
        configure?.Invoke(options);
        return new GnsClient(options);
    }

    [Fact]
    public async Task Register_lookup_reverse_update_and_remove_against_the_real_gns()
    {
        using var key = HostKey.Generate();
        var name = $"e2e-{key.Guid.ToShortString()}";
        await using var client = Client(o => o.CacheEnabled = false);

        var registered = await client.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Parse("192.0.2.77"), 4000)], 30, name)).WithTimeout();
        Assert.Equal(1UL, registered.Version);
        Assert.Equal(IPAddress.Loopback, registered.Observed!.Address);
        Assert.Equal(client.LocalEndPoint.Port, registered.Observed.Port);

        var byGuid = await client.LookupAsync(key.Guid).WithTimeout();
        var byName = await client.LookupNameAsync(name.ToUpperInvariant()).WithTimeout();
        Assert.Equal(1UL, byGuid!.Version);
        Assert.Equal(key.Guid, byName!.Guid);
        Assert.Contains(key.Guid, await client.ReverseAsync(IPAddress.Parse("192.0.2.77")).WithTimeout());

        var updated = await client.UpdateAsync(GnsRecord.Create(key, 2, [new Locator(IPAddress.Parse("192.0.2.78"), 4000)])).WithTimeout();
        Assert.Equal(2UL, updated.Version);
        var stale = await Assert.ThrowsAsync<GnsException>(() => client.RegisterAsync(GnsRecord.Create(key, 2, [])).WithTimeout());
        Assert.Equal(GnsErrorCode.StaleVersion, stale.Code);

        Assert.Equal(3UL, await client.RemoveAsync(GnsRemoval.Create(key, 3)).WithTimeout());
        Assert.Null(await client.LookupAsync(key.Guid).WithTimeout());
        Assert.Null(await client.LookupNameAsync(name).WithTimeout());
    }

    /// <remarks>
    /// With <paramref name="gnsRefusesRetransmissions"/> the relay answers the retransmission StaleVersion itself, as a
    /// GNS that does not acknowledge identical retransmissions would: the client finds its record stored and asks
    /// again (Reflect) for the address the lost ack carried.
    /// </remarks>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Register_learns_the_observed_address_when_the_first_ack_is_lost(bool gnsRefusesRetransmissions)
    {
        using var key = HostKey.Generate();
        await using var relay = new DroppingUdpRelay(fixture.Gns.Udp, dropReplies: 1, gnsRefusesRetransmissions).Start();
        await using var client = Client(o =>
        {
            o.Server = relay.EndPoint;
            o.GrpcAddress = null;
            o.CacheEnabled = false;
        });

        var registered = await client.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Parse("192.0.2.80"), 4000)])).WithTimeout();

        Assert.Equal(1, relay.Dropped);
        Assert.Equal(1UL, registered.Version);
        Assert.Equal(relay.UpstreamEndPoint, registered.Observed);

        // A different record of the stored version is a conflict, not a retransmission.
        var e = await Assert.ThrowsAsync<GnsException>(
            () => client.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Parse("192.0.2.81"), 4000)])).WithTimeout());
        Assert.Equal(GnsErrorCode.StaleVersion, e.Code);
    }

    [Fact]
    public async Task Update_of_an_unknown_guid_is_not_found_over_grpc()
    {
        using var key = HostKey.Generate();
        await using var client = Client();

        var e = await Assert.ThrowsAsync<GnsException>(() => client.UpdateAsync(GnsRecord.Create(key, 1, [])).WithTimeout());

        Assert.Equal(GnsErrorCode.NotFound, e.Code);
    }

    [Fact]
    public async Task Watch_delivers_the_current_state_then_changes_made_by_another_client()
    {
        using var key = HostKey.Generate();
        await using var watcher = Client();
        await using var publisher = Client();
        await publisher.RegisterAsync(GnsRecord.Create(key, 10, [new Locator(IPAddress.Loopback, 5000)])).WithTimeout();
        using var cts = new CancellationTokenSource(TestTimeout.Default);
        await using var events = watcher.WatchAsync([key.Guid], cts.Token).GetAsyncEnumerator();

        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(10UL, events.Current.Version);

        await publisher.RegisterAsync(GnsRecord.Create(key, 11, [new Locator(IPAddress.Loopback, 5001)])).WithTimeout();
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(11UL, events.Current.Record!.Version);
        Assert.Equal(5001, events.Current.Record.Locators[0].Port);

        await publisher.RemoveAsync(GnsRemoval.Create(key, 12)).WithTimeout();
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.True(events.Current.Removed);
    }

    [Fact]
    public async Task Watch_reopens_on_a_new_connection_at_once_when_told_the_local_address_changed()
    {
        // The watch's connection goes silent (its local address vanished): without being told, the
        // client would notice only by its keepalive pings (30 s + 10 s) and then back off (up to a
        // minute here), far beyond this test's 15 s timeout.
        using var key = HostKey.Generate();
        await using var proxy = new FreezingProxy(new IPEndPoint(IPAddress.Loopback, fixture.Gns.Grpc.Port));
        await using var watcher = Client(o =>
        {
            o.GrpcAddress = new Uri($"http://{proxy.EndPoint}/");
            o.WatchReconnectDelay = TimeSpan.FromSeconds(30);
            o.WatchMaxReconnectDelay = TimeSpan.FromSeconds(60);
        });
        await using var publisher = Client();
        await publisher.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Loopback, 6000)])).WithTimeout();
        using var cts = new CancellationTokenSource(TestTimeout.Default * 2);
        await using var events = watcher.WatchAsync([key.Guid], cts.Token).GetAsyncEnumerator();
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(1UL, events.Current.Version);
        Assert.Equal(1, proxy.Accepted);

        proxy.FreezeExisting();
        await publisher.RegisterAsync(GnsRecord.Create(key, 2, [new Locator(IPAddress.Loopback, 6001)])).WithTimeout(); // Missed by the frozen stream.
        watcher.NotifyLocalAddressChanged();

        // Re-opened on a new connection, the watch re-delivers the current state: the change made in the gap.
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(2UL, events.Current.Version);
        Assert.Equal(6001, events.Current.Record!.Locators[0].Port);
        Assert.Equal(2, proxy.Accepted);

        // And it keeps following changes on the new connection.
        await publisher.RegisterAsync(GnsRecord.Create(key, 3, [new Locator(IPAddress.Loopback, 6002)])).WithTimeout();
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(3UL, events.Current.Version);
    }

    [Fact]
    public async Task Lookups_and_updates_work_right_after_the_local_address_changed()
    {
        using var key = HostKey.Generate();
        await using var client = Client();
        await client.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Loopback, 6100)])).WithTimeout();
        client.NotifyLocalAddressChanged();
        await client.UpdateAsync(GnsRecord.Create(key, 2, [new Locator(IPAddress.Loopback, 6101)])).WithTimeout(); // gRPC ("must exist") on the new channel.
        client.Invalidate(key.Guid);
        Assert.Equal(2UL, (await client.LookupAsync(key.Guid).WithTimeout())!.Version);
    }

    [Fact]
    public async Task Cli_registers_looks_up_and_reports_exit_codes_against_the_real_gns()
    {
        var dir = Directory.CreateTempSubdirectory("mob-e2e-").FullName;
        try
        {
            var keyPath = Path.Combine(dir, "host.key");
            string[] gns = ["--gns", fixture.Gns.Udp.ToString(), "--grpc", fixture.Gns.Grpc.ToString()];
            Assert.Equal(0, (await Mob("id", "new", "--key", keyPath)).Code);
            using var key = HostKeyFile.Load(keyPath);

            var register = await Mob(["gns", "register", .. gns, "--key", keyPath, "--addr", "127.0.0.1:6000", "--version", "100", "--json"]);
            Assert.Equal(0, register.Code);
            Assert.Equal(100UL, JsonDocument.Parse(register.Out).RootElement.GetProperty("version").GetUInt64());

            var lookup = await Mob(["gns", "lookup", .. gns, key.Guid.ToString(), "--json"]);
            Assert.Equal(0, lookup.Code);
            Assert.Equal(6000, JsonDocument.Parse(lookup.Out).RootElement.GetProperty("locators")[0].GetProperty("port").GetInt32());

            Assert.Equal(ExitCodes.Rejected, (await Mob(["gns", "register", .. gns, "--key", keyPath, "--addr", "127.0.0.1:6000", "--version", "99"])).Code);
            Assert.Equal(0, (await Mob(["gns", "remove", .. gns, "--key", keyPath, "--version", "101"])).Code);
            Assert.Equal(ExitCodes.NotFound, (await Mob(["gns", "lookup", .. gns, key.Guid.ToString()])).Code);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<(int Code, string Out, string Err)> Mob(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = await Program.RunAsync(args, stdout, stderr).WithTimeout();
        return (code, stdout.ToString(), stderr.ToString());
    }
}

/// <summary>Restarts a real GNS under a watch: the watch must reconnect by itself and deliver the new state.</summary>
public sealed class EndToEndRestartTests
{
    [Fact]
    public async Task Watch_reconnects_after_the_gns_restarts_and_delivers_the_new_state()
    {
        using var key = HostKey.Generate();
        var first = await GnsProcess.StartInMemoryAsync();
        var udp = first.Udp;
        var grpc = first.Grpc;
        await using var client = new GnsClient(new GnsClientOptions
        {
            Server = udp,
            GrpcAddress = grpc,
            WatchReconnectDelay = TimeSpan.FromMilliseconds(50),
            WatchMaxReconnectDelay = TimeSpan.FromMilliseconds(500),
        });
        GnsProcess? second = null;
        try
        {
            await client.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Loopback, 7000)])).WithTimeout();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            await using var events = client.WatchAsync([key.Guid], cts.Token).GetAsyncEnumerator();
            Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
            Assert.Equal(1UL, events.Current.Version);
            Assert.False(events.Current.Reconnected);

            await first.DisposeAsync();
            second = await GnsProcess.StartInMemoryAsync(udp.ToString(), $"{grpc.Host}:{grpc.Port}");
            Assert.Equal(udp, second.Udp);
            try
            {
                await client.RegisterAsync(GnsRecord.Create(key, 2, [new Locator(IPAddress.Loopback, 7001)])).WithTimeout();
            }
            catch (GnsException e)
            {
                Assert.Fail($"{e.Message}\nfirst gns log:\n{first.Log}\nsecond gns log:\n{second.Log}");
            }

            // The in-memory store restarted empty: the watch may first report "removed", then version 2.
            // The first event of the re-opened stream says so (changes while it was down are not replayed).
            Assert.True(await events.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(60)));
            var seen = events.Current;
            Assert.True(seen.Reconnected);
            while (seen.Version != 2)
            {
                Assert.True(await events.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(60)));
                seen = events.Current;
                Assert.False(seen.Reconnected);
            }

            Assert.Equal(7001, seen.Record!.Locators[0].Port);
        }
        finally
        {
            if (second is not null)
            {
                await second.DisposeAsync();
            }
        }
    }
}
