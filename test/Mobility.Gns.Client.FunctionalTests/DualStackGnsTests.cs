namespace Mobility.Gns.Client.FunctionalTests;

/// <summary>
/// A client given both addresses of one real GNS (listening on [::], so 127.0.0.1 and ::1 reach it): when the host
/// can no longer use the family in use, or the address in use stops answering, requests and watches move to the
/// other address. Loopback cannot lose a family, so the host's routes are faked (<see cref="GnsClientOptions.HasRoute"/>);
/// the namespaces of Mobility.Netlab.FunctionalTests take a family away for real.
/// </summary>
public sealed class DualStackGnsTests : IAsyncLifetime
{
    private GnsProcess _gns = null!;

    public async Task InitializeAsync() => _gns = await GnsProcess.StartInMemoryAsync(udp: "[::]:0", grpc: "[::]:0");

    public async Task DisposeAsync() => await _gns.DisposeAsync();

    private IPEndPoint Udp4 => new(IPAddress.Loopback, _gns.Udp.Port);

    private IPEndPoint Udp6 => new(IPAddress.IPv6Loopback, _gns.Udp.Port);

    private Uri Grpc6 => new($"http://[::1]:{_gns.Grpc.Port}/");

    [Fact]
    public async Task A_host_that_goes_IPv6_only_moves_its_watch_and_its_updates_to_the_GNS_IPv6_address_at_once()
    {
        using var key = HostKey.Generate();
        using var peer = HostKey.Generate();
        // The IPv4 gRPC address through a proxy whose connections can be made to go silent, as when the address they ran from vanished.
        await using var proxy = new FreezingProxy(new IPEndPoint(IPAddress.Loopback, _gns.Grpc.Port));
        var ipv4 = 1;
        await using var client = new GnsClient(new GnsClientOptions
        {
            Server = Udp4,
            GrpcAddress = new Uri($"http://{proxy.EndPoint}/"),
            Alternates = [new GnsEndPoint(Udp6, Grpc6)],
            HasRoute = e => e.AddressFamily == AddressFamily.InterNetworkV6 || Volatile.Read(ref ipv4) == 1,
            CacheEnabled = false,
            // A back-off beyond the test's timeouts: the watch must re-open because it was told, not by retrying.
            WatchReconnectDelay = TimeSpan.FromSeconds(60),
            WatchMaxReconnectDelay = TimeSpan.FromSeconds(60),
        });
        await using var publisher = new GnsClient(new GnsClientOptions { Server = Udp4 });
        await publisher.RegisterAsync(GnsRecord.Create(peer, 1, [new Locator(IPAddress.Parse("192.0.2.1"), 7391)])).WithTimeout();
        using var cts = new CancellationTokenSource(TestTimeout.Default * 2);
        await using var events = client.WatchAsync([peer.Guid], cts.Token).GetAsyncEnumerator();
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(1UL, events.Current.Version);

        // The host goes IPv6-only: no IPv4 route, and the watch's IPv4 connection is silent. The peer moves meanwhile.
        proxy.FreezeExisting();
        Volatile.Write(ref ipv4, 0);
        await publisher.RegisterAsync(GnsRecord.Create(peer, 2, [new Locator(IPAddress.Parse("fd00::2"), 7391)])).WithTimeout();
        client.NotifyLocalAddressChanged();

        Assert.Equal(Udp6, client.Server);
        Assert.Equal(Grpc6, client.GrpcAddress);

        // The watch re-opened over IPv6 and re-delivers the current state: the move made in the gap.
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(2UL, events.Current.Version);

        // The host's own record goes over IPv6 (the GNS saw it come from ::1).
        var registered = await client.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Parse("fd00::3"), 7391)])).WithTimeout();
        Assert.Equal(IPAddress.IPv6Loopback, registered.Observed!.Address);

        // Pushes keep coming over IPv6; nothing went to the IPv4 gRPC address again.
        await publisher.RegisterAsync(GnsRecord.Create(peer, 3, [new Locator(IPAddress.Parse("fd00::4"), 7391)])).WithTimeout();
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(3UL, events.Current.Version);
        Assert.Equal(1, proxy.Accepted);
    }

    [Fact]
    public async Task A_dual_stack_host_keeps_the_GNS_address_in_use_when_its_addresses_change()
    {
        await using var client = new GnsClient(new GnsClientOptions
        {
            Server = Udp4,
            GrpcAddress = _gns.Grpc,
            Alternates = [new GnsEndPoint(Udp6, Grpc6)],
            HasRoute = _ => true,
        });

        client.NotifyLocalAddressChanged();
        using var key = HostKey.Generate();
        var registered = await client.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Parse("192.0.2.5"), 7391)])).WithTimeout();

        // Both answer; the one in use had the head start of the race, so nothing moved.
        Assert.Equal(IPAddress.Loopback, registered.Observed!.Address);
        Assert.Equal(Udp4, client.Server);
    }

    [Fact]
    public async Task A_GNS_address_that_stops_answering_is_left_for_one_that_answers()
    {
        using var key = HostKey.Generate();
        await using var publisher = new GnsClient(new GnsClientOptions { Server = Udp6 });
        await publisher.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Parse("192.0.2.6"), 7391)])).WithTimeout();
        // A route exists but nothing answers there (a path that died without an address change).
        using var silent = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        await using var client = new GnsClient(new GnsClientOptions
        {
            Server = (IPEndPoint)silent.Client.LocalEndPoint!,
            Alternates = [new GnsEndPoint(Udp6, null)],
            HasRoute = _ => true,
            CacheEnabled = false,
        });

        // The first attempt's silence starts a race between the addresses; the one that answers wins.
        await TestTimeout.Eventually(async () =>
        {
            try
            {
                await client.LookupAsync(key.Guid).WithTimeout();
            }
            catch (GnsException e) when (e.Code == GnsErrorCode.Unavailable)
            {
                // Every attempt went to the silent address before the race ended; the next lookup goes to the winner.
            }

            return client.Server.Equals(Udp6);
        }, "the client moved to the address that answers");
        Assert.Equal(1UL, (await client.LookupAsync(key.Guid).WithTimeout())!.Version);
    }

    [Fact]
    public async Task After_an_address_change_the_watch_goes_to_the_only_GNS_address_that_takes_TCP()
    {
        await using var lab = await OnlyIpv6TakesTcp.StartAsync();
        var client = lab.Client;

        client.NotifyLocalAddressChanged();

        // The datagram race may keep either address (both answer); the TCP race only has one that connects.
        await TestTimeout.Eventually(() => client.GrpcAddress == lab.Grpc6, "gRPC moved to the GNS's IPv6 address");
        using var cts = new CancellationTokenSource(TestTimeout.Default * 2);
        await using var events = client.WatchAsync([lab.Peer.Guid], cts.Token).GetAsyncEnumerator();
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(1UL, events.Current.Version);

        // An update that must find the record asks gRPC, which works there too.
        Assert.Equal(2UL, (await client.UpdateAsync(GnsRecord.Create(lab.Peer, 2, [new Locator(IPAddress.Parse("fd00::2"), 7391)])).WithTimeout()).Version);
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(2UL, events.Current.Version);
    }

    [Fact]
    public async Task A_watch_refused_at_the_GNS_address_in_use_moves_to_the_one_that_takes_TCP_without_waiting_out_its_back_off()
    {
        await using var lab = await OnlyIpv6TakesTcp.StartAsync();

        // No address change: the refused stream itself starts the race, and the move ends the 60 s back-off.
        using var cts = new CancellationTokenSource(TestTimeout.Default * 2);
        await using var events = lab.Client.WatchAsync([lab.Peer.Guid], cts.Token).GetAsyncEnumerator();
        Assert.True(await events.MoveNextAsync().AsTask().WithTimeout());
        Assert.Equal(1UL, events.Current.Version);
        Assert.Equal(lab.Grpc6, lab.Client.GrpcAddress);
    }

    /// <summary>
    /// A GNS with UDP on both families and gRPC on ::1 only (127.0.0.1 at the gRPC port refuses: bound, never listening),
    /// a peer's record (version 1) in it, and a client given its IPv4 address first and its IPv6 one as the alternate.
    /// </summary>
    private sealed class OnlyIpv6TakesTcp : IAsyncDisposable
    {
        private GnsProcess _gns = null!;
        private Socket _refusing = null!;

        public GnsClient Client { get; private set; } = null!;

        public HostKey Peer { get; } = HostKey.Generate();

        public Uri Grpc6 { get; private set; } = null!;

        public static async Task<OnlyIpv6TakesTcp> StartAsync()
        {
            var lab = new OnlyIpv6TakesTcp();
            lab._gns = await GnsProcess.StartInMemoryAsync(udp: "[::]:0", grpc: "[::1]:0");
            lab._refusing = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            lab._refusing.Bind(new IPEndPoint(IPAddress.Loopback, lab._gns.Grpc.Port));
            lab.Grpc6 = new Uri($"http://[::1]:{lab._gns.Grpc.Port}/");
            await using (var publisher = new GnsClient(new GnsClientOptions { Server = new(IPAddress.Loopback, lab._gns.Udp.Port) }))
            {
                await publisher.RegisterAsync(GnsRecord.Create(lab.Peer, 1, [new Locator(IPAddress.Parse("fd00::1"), 7391)])).WithTimeout();
            }

            lab.Client = new GnsClient(new GnsClientOptions
            {
                Server = new IPEndPoint(IPAddress.Loopback, lab._gns.Udp.Port),
                GrpcAddress = new Uri($"http://127.0.0.1:{lab._gns.Grpc.Port}/"),
                Alternates = [new GnsEndPoint(new IPEndPoint(IPAddress.IPv6Loopback, lab._gns.Udp.Port), lab.Grpc6)],
                HasRoute = _ => true,
                CacheEnabled = false,
                // A back-off beyond the test's timeouts: the watch must move because the race found the other address.
                WatchReconnectDelay = TimeSpan.FromSeconds(60),
                WatchMaxReconnectDelay = TimeSpan.FromSeconds(60),
            });
            return lab;
        }

        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            _refusing.Dispose();
            await _gns.DisposeAsync();
            Peer.Dispose();
        }
    }
}
