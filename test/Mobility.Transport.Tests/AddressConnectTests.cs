namespace Mobility.Transport.Tests;

/// <summary>An <see cref="IAddressOwnerResolver"/> whose answers the test sets (the daemon's answers come from challenges).</summary>
internal sealed class TestOwners : IAddressOwnerResolver
{
    private readonly Dictionary<IPAddress, AddressOwner> _owners = [];

    public List<IPAddress> Forgotten { get; } = [];

    public int Resolves;

    public void Set(IPAddress address, HostGuid guid, params IPEndPoint[] endpoints)
    {
        lock (_owners)
        {
            _owners[address] = new AddressOwner(guid, endpoints);
        }
    }

    public ValueTask<AddressOwner?> ResolveAsync(IPAddress address, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref Resolves);
        lock (_owners)
        {
            return ValueTask.FromResult(_owners.GetValueOrDefault(address));
        }
    }

    public void Forget(IPAddress address)
    {
        lock (Forgotten)
        {
            Forgotten.Add(address);
        }
    }
}

/// <summary>
/// <see cref="MobileConnector.ConnectToAddressAsync"/>: an address gets a mobile connection only when
/// its owner is verified (the resolver) and the handshake proves that same GUID; otherwise plain TCP.
/// Real sockets on loopback.
/// </summary>
public sealed class AddressConnectTests
{
    /// <summary>A plain TCP echo server (no mobile transport).</summary>
    private static (Socket Listener, Task Serving) PlainEcho(IPAddress address)
    {
        var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(address, 0));
        listener.Listen();
        var serving = Task.Run(async () =>
        {
            using var peer = await listener.AcceptAsync();
            var buffer = new byte[16 * 1024];
            int n;
            while ((n = await peer.ReceiveAsync(buffer)) > 0)
            {
                await peer.SendAsync(buffer.AsMemory(0, n));
            }

            peer.Shutdown(SocketShutdown.Send);
        });
        return (listener, serving);
    }

    private static async Task AssertEchoAsync(AddressConnection connection, int size)
    {
        var data = RandomNumberGenerator.GetBytes(size);
        var reading = PatternSource.ReceiveAsync(connection.Stream);
        await connection.Stream.WriteAsync(data).WithTimeout();
        connection.ShutdownWrite();
        var (length, hash) = await reading.WithTimeout();
        Assert.Equal(size, length);
        Assert.Equal(SHA256.HashData(data), hash);
    }

    [Fact]
    public async Task Fallback_to_plain_tcp_against_a_plain_server_with_no_verified_owner()
    {
        var address = IPAddress.Parse($"127.{LoopbackScenario.NextSubnet()}.3.1");
        var (listener, serving) = PlainEcho(address);
        using var _ = listener;
        var owners = new TestOwners();
        var connector = new MobileConnector(Keys.Client);

        await using var connection = await connector.ConnectToAddressAsync((IPEndPoint)listener.LocalEndPoint!, new AddressConnectOptions { Owners = owners }).WithTimeout();

        Assert.False(connection.IsMobile);
        Assert.Equal(HostGuid.Empty, connection.Peer);
        Assert.Contains("no verified owner", connection.PlainReason, StringComparison.Ordinal);
        await AssertEchoAsync(connection, 300_000);
        await serving.WithTimeout();
        Assert.Empty(connector.Connections);
        Assert.Equal(1, owners.Resolves);
    }

    [Fact]
    public async Task A_verified_owner_gets_a_mobile_connection_that_names_the_target_and_survives_a_move()
    {
        var net = LoopbackScenario.NextSubnet();
        var target = new IPEndPoint(IPAddress.Parse($"127.{net}.2.1"), 2222);
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(target.Address, 0));
        var owners = new TestOwners();
        owners.Set(target.Address, Keys.Server.Guid, listener.LocalEndPoint);
        var locator = new TestLocator();
        locator.Set(Keys.Server.Guid, listener.LocalEndPoint);
        var connector = new MobileConnector(Keys.Client, new MobileConnectionOptions { LocalAddress = IPAddress.Parse($"127.{net}.1.1") });
        IPEndPoint? opened = null;
        var accept = listener.AcceptAsync().AsTask();

        await using var connection = await connector.ConnectToAddressAsync(target, new AddressConnectOptions
        {
            Owners = owners,
            Locator = locator,
            OpenStream = (c, t, ct) =>
            {
                opened = t;
                return c.WriteAsync(new byte[] { (byte)(t.Port >> 8), (byte)t.Port }, ct);
            },
        }).WithTimeout();
        await using var server = await accept.WithTimeout();

        Assert.True(connection.IsMobile);
        Assert.Equal(Keys.Server.Guid, connection.Peer);
        Assert.Null(connection.PlainReason);
        Assert.Equal(target, opened);
        var port = new byte[2];
        await server.Stream.ReadExactlyAsync(port).WithTimeout();
        Assert.Equal(2222, (port[0] << 8) | port[1]);

        // A move of the client: the stream carries on (it is a mobile connection).
        var data = RandomNumberGenerator.GetBytes(200_000);
        var write = connection.Stream.WriteAsync(data).AsTask();
        connector.NotifyLocalAddressChanged(IPAddress.Parse($"127.{net}.1.2"));
        await write.WithTimeout();
        var received = new byte[data.Length];
        await server.Stream.ReadExactlyAsync(received).WithTimeout();
        Assert.Equal(data, received);
        await TestTimeout.Eventually(() => connection.Mobile!.Statistics.Moves >= 1, "the connection resumed from the new address");
    }

    [Fact]
    public async Task An_owner_whose_transport_proves_another_guid_never_gets_a_mobile_connection()
    {
        // The resolver says Other owns the address, but the transport endpoint is Server's: the
        // handshake demands Other's GUID, fails, and the application gets plain TCP to the address.
        var address = IPAddress.Parse($"127.{LoopbackScenario.NextSubnet()}.3.1");
        var (plain, serving) = PlainEcho(address);
        using var _ = plain;
        await using var impostor = new MobileListener(Keys.Server);
        impostor.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var owners = new TestOwners();
        owners.Set(address, Keys.Other.Guid, impostor.LocalEndPoint);
        var connector = new MobileConnector(Keys.Client);

        await using var connection = await connector.ConnectToAddressAsync((IPEndPoint)plain.LocalEndPoint!, new AddressConnectOptions { Owners = owners }).WithTimeout();

        Assert.False(connection.IsMobile);
        Assert.Contains("not the expected", connection.PlainReason, StringComparison.Ordinal);
        Assert.Equal([address], owners.Forgotten);
        Assert.Empty(impostor.Connections);
        await AssertEchoAsync(connection, 10_000);
        await serving.WithTimeout();
    }

    [Fact]
    public async Task A_failed_mobile_attempt_falls_back_unless_asked_not_to()
    {
        var address = IPAddress.Parse($"127.{LoopbackScenario.NextSubnet()}.3.1");
        var (plain, serving) = PlainEcho(address);
        using var _ = plain;
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var owners = new TestOwners();
        owners.Set(address, Keys.Server.Guid, listener.LocalEndPoint);
        var connector = new MobileConnector(Keys.Client);
        var target = (IPEndPoint)plain.LocalEndPoint!;

        // The owner's side refuses the stream (mobilityd: the port is not exposed to us).
        ValueTask Refuse(MobileConnection c, IPEndPoint t, CancellationToken ct) => throw new IOException("not exposed");
        var strict = new AddressConnectOptions { Owners = owners, OpenStream = Refuse, FallBackWhenMobileFails = false };
        var e = await Assert.ThrowsAsync<IOException>(() => connector.ConnectToAddressAsync(target, strict).WithTimeout());
        Assert.Equal("not exposed", e.Message);

        await using var connection = await connector.ConnectToAddressAsync(target, new AddressConnectOptions { Owners = owners, OpenStream = Refuse }).WithTimeout();
        Assert.False(connection.IsMobile);
        Assert.Contains("not exposed", connection.PlainReason, StringComparison.Ordinal);
        await AssertEchoAsync(connection, 10_000);
        await serving.WithTimeout();
        Assert.Equal([address, address], owners.Forgotten);
        await TestTimeout.Eventually(() => connector.Connections.Count == 0, "the refused mobile connections are gone");
    }

    [Fact]
    public async Task Plain_tcp_failures_are_thrown_as_socket_errors()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var closed = (IPEndPoint)probe.LocalEndPoint!;   // bound, not listening: connection refused
        var e = await Assert.ThrowsAsync<SocketException>(() => new MobileConnector(Keys.Client)
            .ConnectToAddressAsync(closed, new AddressConnectOptions { Owners = new TestOwners() }).WithTimeout());
        Assert.Equal(SocketError.ConnectionRefused, e.SocketErrorCode);
    }
}
