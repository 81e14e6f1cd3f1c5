namespace Mobility.Gns.FunctionalTests.Udp;

/// <summary>
/// Address claims over the real datagram endpoint: the GNS attests a claim by the datagram's source
/// (docs/protocol.md, "Address claims"). Sockets bound to distinct loopback addresses play the owner
/// and the attacker.
/// </summary>
public sealed class AddressClaimUdpTests : IAsyncLifetime
{
    private static readonly IPAddress OwnerAddress = IPAddress.Parse("127.0.0.10");
    private static readonly IPAddress AttackerAddress = IPAddress.Parse("127.0.0.66");
    private readonly RecordingLoggerProvider _logs = new();
    private ServiceProvider? _services;
    private GnsUdpServer? _server;

    public async Task InitializeAsync()
    {
        _services = new ServiceCollection()
            .AddLogging(b => b.AddProvider(_logs).SetMinimumLevel(LogLevel.Trace))
            .AddGnsServer(o =>
            {
                o.Udp = "127.0.0.1:0";
                o.Store = GnsServerOptions.MemoryStore;
                o.UdpReceiveLoops = 2;
                // The flood is the test's subject, not the rate limit.
                o.RequestsPerSecond = 1_000_000;
                o.Burst = 1_000_000;
            })
            .BuildServiceProvider();
        _server = _services.GetRequiredService<GnsUdpServer>();
        await _server.StartAsync(CancellationToken.None).WithTimeout();
    }

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

        Assert.DoesNotContain(_logs.Entries, e => e.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task Owner_sending_from_its_address_ranks_first_after_a_thousand_earlier_false_claims()
    {
        using var attacker = new UdpClient(new IPEndPoint(AttackerAddress, 0));
        using var owner = new UdpClient(new IPEndPoint(OwnerAddress, 0));
        using var ownerKey = HostKey.Generate();
        var target = new Locator(OwnerAddress, 7391);
        for (uint i = 0; i < 1_000; i++)
        {
            using var key = HostKey.Generate();
            var ack = await ExchangeAsync(attacker, GnsDatagram.Update(i, GnsRecord.Create(key, 1, [target], 60, null)));
            Assert.Equal(GnsMessageType.UpdateAck, ack.Type);
            Assert.Equal(AttackerAddress, ack.Observed!.Address);
        }

        var ownerAck = await ExchangeAsync(owner, GnsDatagram.Update(1, GnsRecord.Create(ownerKey, 1, [target], 60, null)));
        Assert.Equal(GnsMessageType.UpdateAck, ownerAck.Type);

        var reverse = await ExchangeAsync(attacker, GnsDatagram.Reverse(2, OwnerAddress));
        Assert.Equal(GnsMessageType.GuidListReply, reverse.Type);
        Assert.Equal(ownerKey.Guid, reverse.Guids[0]);
        // The owner and the unattested slots of one address: the flood added 16, not 1,000.
        Assert.Equal(1 + new Claims.ClaimLimits().MaxUnattestedPerAddress, reverse.Guids.Length);
        Assert.False(reverse.Truncated);
    }

    private async Task<GnsResponse> ExchangeAsync(UdpClient client, byte[] datagram)
    {
        await client.SendAsync(datagram, _server!.LocalEndPoint!).AsTask().WithTimeout();
        var result = await client.ReceiveAsync().WithTimeout();
        return GnsDatagram.ParseResponse(result.Buffer);
    }
}
