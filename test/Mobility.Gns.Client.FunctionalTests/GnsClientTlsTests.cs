using System.Security.Cryptography;

namespace Mobility.Gns.Client.FunctionalTests;

/// <summary>
/// The client against the real <c>gns</c> over TLS on loopback (docs/protocol.md, "GNS over TLS"): every request over TLS
/// to a GNS whose UDP is off; a certificate that is not pinned refused; and TLS as the fallback when UDP gets no answer.
/// </summary>
public sealed class GnsClientTlsTests : IAsyncLifetime
{
    private string _directory = null!;
    private string _certificate = null!;
    private string _key = null!;
    private byte[] _pin = null!;

    public Task InitializeAsync()
    {
        _directory = Directory.CreateTempSubdirectory("gns-client-tls-").FullName;
        (_certificate, _key, _pin) = TestCertificates.CreateSelfSigned(_directory, "gns");
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    private Task<GnsProcess> StartGnsAsync(string udp)
        => GnsProcess.StartAsync(["serve", "--memory", "--udp", udp, "--http", "127.0.0.1:0", "--grpc", "off",
            "--tls-listen", "127.0.0.1:0", "--tls-cert", _certificate, "--tls-key", _key]);

    private static IPEndPoint TlsOf(GnsProcess gns) => gns.Ready.EndPoint("tls") ?? throw new InvalidOperationException(gns.Ready.Text);

    /// <summary>A UDP socket that takes datagrams and never answers: a GNS address whose UDP is filtered.</summary>
    private static UdpClient SilentUdp() => new(new IPEndPoint(IPAddress.Loopback, 0));

    [Fact]
    public async Task Register_lookup_and_observed_address_over_tls_only_with_the_gns_udp_off()
    {
        await using var gns = await StartGnsAsync("off");
        using var silent = SilentUdp();
        await using var client = new GnsClient(new GnsClientOptions
        {
            Server = (IPEndPoint)silent.Client.LocalEndPoint!,
            TlsServer = TlsOf(gns),
            TlsPins = [_pin],
            TlsUse = GnsTlsUse.Always,
            CacheEnabled = false,
        });
        using var key = HostKey.Generate();
        var name = $"tls-{key.Guid.ToShortString()}";

        var registered = await client.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Parse("192.0.2.77"), 4000)], 30, name)).WithTimeout();
        Assert.Equal(1UL, registered.Version);
        // The observed address is the TLS connection's TCP peer, not the datagram socket.
        Assert.Equal(IPAddress.Loopback, registered.Observed!.Address);
        Assert.NotEqual(client.LocalEndPoint.Port, registered.Observed.Port);

        Assert.Equal(1UL, (await client.LookupAsync(key.Guid).WithTimeout())!.Version);
        Assert.Equal(key.Guid, (await client.LookupNameAsync(name).WithTimeout())!.Guid);
        Assert.Contains(key.Guid, await client.ReverseAsync(IPAddress.Parse("192.0.2.77")).WithTimeout());
        Assert.Equal(2UL, await client.RemoveAsync(GnsRemoval.Create(key, 2)).WithTimeout());
        Assert.Null(await client.LookupAsync(key.Guid).WithTimeout());
        Assert.Equal(0, silent.Available);
    }

    [Fact]
    public async Task A_certificate_that_is_not_pinned_is_refused()
    {
        await using var gns = await StartGnsAsync("off");
        await using var client = new GnsClient(new GnsClientOptions
        {
            Server = new IPEndPoint(IPAddress.Loopback, 9),
            TlsServer = TlsOf(gns),
            TlsPins = [SHA256.HashData(_pin)],
            TlsUse = GnsTlsUse.Always,
            Attempts = 2,
        });
        using var key = HostKey.Generate();
        var refused = await Assert.ThrowsAsync<GnsException>(() => client.LookupAsync(key.Guid).WithTimeout());
        Assert.Equal(GnsErrorCode.Unavailable, refused.Code);
        Assert.Contains("not pinned", refused.Message, StringComparison.Ordinal);
        Assert.Contains(Convert.ToHexStringLower(_pin), refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tls_answers_when_udp_is_silent_and_stays_in_use_until_the_host_moves()
    {
        await using var gns = await StartGnsAsync("127.0.0.1:0");
        using var silent = SilentUdp();
        await using var client = new GnsClient(new GnsClientOptions
        {
            Server = (IPEndPoint)silent.Client.LocalEndPoint!,
            TlsServer = TlsOf(gns),
            TlsPins = [_pin],
            CacheEnabled = false,
        });
        Assert.False(client.UsingTls);
        using var key = HostKey.Generate();
        Assert.Null(await client.LookupAsync(key.Guid).WithTimeout());
        // The first datagram went to the silent UDP address; the answer came over TLS.
        Assert.True(silent.Available > 0);
        Assert.True(client.UsingTls);

        await client.RegisterAsync(GnsRecord.Create(key, 1, [new Locator(IPAddress.Parse("192.0.2.78"), 4000)])).WithTimeout();
        Assert.True(client.UsingTls);

        client.NotifyLocalAddressChanged();
        Assert.False(client.UsingTls);
        Assert.Equal(1UL, (await client.LookupAsync(key.Guid).WithTimeout())!.Version);
        Assert.True(client.UsingTls);
    }
}
