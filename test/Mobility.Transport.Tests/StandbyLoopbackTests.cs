namespace Mobility.Transport.Tests;

/// <summary>
/// Standby paths over real loopback sockets, the client bound to two 127.x addresses: a Join from
/// anyone without the resume key, or a replay of the genuine Join, is refused while the standby it
/// made goes on; a transfer both ways survives the loss of the active address with no new connect
/// and arrives intact (SHA-256).
/// </summary>
public sealed class StandbyLoopbackTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_join_without_the_resume_key_and_a_replayed_join_are_refused_while_the_standby_path_goes_on()
    {
        await using var setup = await TwoAddressesAsync(notifyFirst: false);
        var (_, second, recorder, listener, connector, client, server) = setup;

        // The genuine Join is the first write of the second flow.
        var join = recorder.FirstWrites[1][..ResumeRequest.EncodedSize];
        Assert.Equal((byte)HandshakeMessageType.Join, join[5]);
        var refused = new HandshakeReject(RejectReason.ResumeRefused).ToArray();

        // Impostors know the token and GUIDs (they travel in clear) but not the resume key.
        var forged = await Task.WhenAll(new ulong[] { 1, 5, 1_000_000 }.Select(counter => RawHandshake.ExchangeAsync(listener.LocalEndPoint,
            ResumeRequest.Create(RandomNumberGenerator.GetBytes(32), client.ClientGuid, client.ServerGuid, client.Token, counter, 0, standby: true).ToArray()))).WithTimeout();
        Assert.All(forged, answer => Assert.Equal(refused, answer));

        // A replay of the genuine Join, and the same bytes relabelled as a Resume (the type is under the MAC).
        Assert.Equal(refused, await RawHandshake.ExchangeAsync(listener.LocalEndPoint, join));
        var asResume = (byte[])join.Clone();
        asResume[5] = (byte)HandshakeMessageType.Resume;
        Assert.Equal(refused, await RawHandshake.ExchangeAsync(listener.LocalEndPoint, asResume));

        Assert.Single(server.StandbyPaths);
        Assert.True(server.ResumesRejected >= 5, $"rejected: {server.ResumesRejected}");
        await ConnectionAssert.CarriesOnAsync(client, server, 64 * 1024);
        Assert.Equal(MobileConnectionState.Connected, server.State);
        Assert.Equal(0, server.Statistics.Moves);

        // The standby made by the genuine Join still takes over.
        connector.NotifyLocalAddresses([second]);
        await ConnectionAssert.CarriesOnAsync(client, server, 64 * 1024);
        Assert.Equal(1, client.Statistics.StandbySwitches);
        Assert.Equal(second, client.LocalEndPoint!.Address);
        Assert.Equal(2, recorder.FirstWrites.Count);
    }

    [Fact]
    public async Task A_transfer_both_ways_survives_the_loss_of_the_active_address_over_the_standby_with_no_new_connect()
    {
        const long Bytes = 32L << 20;
        await using var setup = await TwoAddressesAsync(notifyFirst: true);
        var (_, second, recorder, _, connector, client, server) = setup;

        var up = Task.Run(() => PumpAsync(client.Stream, server.Stream, Bytes, seed: 1));
        var down = Task.Run(() => PumpAsync(server.Stream, client.Stream, Bytes, seed: 2));
        await TestTimeout.Eventually(() => client.Statistics.BytesReceived > Bytes / 4 && server.Statistics.BytesReceived > Bytes / 4, "a quarter is across");

        // The active address goes (the daemon's monitor no longer lists it). A starved machine may already have
        // switched once and joined a standby from the first address again: what counts is that the loss opens no flow.
        var flowsBefore = recorder.FirstWrites.Count;
        var switchesBefore = client.Statistics.StandbySwitches;
        var resumesBefore = client.Statistics.ResumeAttempts;
        connector.NotifyLocalAddresses([second]);
        var (sentUp, gotUp, stallUp) = await up.WaitAsync(TimeSpan.FromSeconds(60));
        var (sentDown, gotDown, stallDown) = await down.WaitAsync(TimeSpan.FromSeconds(60));

        output.WriteLine($"32 MiB each way, active address lost mid-transfer: longest gap at the receiver {stallUp.TotalMilliseconds:0} ms up, {stallDown.TotalMilliseconds:0} ms down; " +
            $"resent {client.Statistics.BytesResent} / {server.Statistics.BytesResent} bytes, flows opened {recorder.FirstWrites.Count} " +
            $"(first messages {string.Join(", ", recorder.FirstWrites.Select(w => (HandshakeMessageType)w[5]))}), standby switches before the loss {switchesBefore}, resumes {resumesBefore}");
        Assert.Equal(sentUp, gotUp);
        Assert.Equal(sentDown, gotDown);
        Assert.Equal(flowsBefore, recorder.FirstWrites.Count);   // no connect at the loss: the standby takes over
        Assert.Equal(resumesBefore, client.Statistics.ResumeAttempts);
        Assert.Equal(switchesBefore + 1, client.Statistics.StandbySwitches);
        Assert.Equal(client.Statistics.StandbySwitches, server.Statistics.StandbySwitches);
        Assert.Equal(second, client.LocalEndPoint!.Address);
    }

    private sealed record Setup(IPAddress First, IPAddress Second, RecordingFlowFactory Recorder, MobileListener Listener,
        MobileConnector Connector, MobileConnection Client, MobileConnection Server) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            await Server.DisposeAsync();
            await Listener.DisposeAsync();
        }
    }

    /// <summary>
    /// A connection from the first of two 127.x client addresses, told both (the connector before it
    /// connects with <paramref name="notifyFirst"/>, which hands the list to the new connection; else
    /// after), once its standby path from the second has joined.
    /// </summary>
    private static async Task<Setup> TwoAddressesAsync(bool notifyFirst)
    {
        var net = LoopbackScenario.NextSubnet();
        var first = IPAddress.Parse($"127.{net}.1.2");
        var second = IPAddress.Parse($"127.{net}.1.3");
        var recorder = new RecordingFlowFactory();
        var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Parse($"127.{net}.2.1"), 0));
        var connector = new MobileConnector(Keys.Client, new MobileConnectionOptions { FlowFactory = recorder, LocalAddress = first });
        if (notifyFirst)
        {
            connector.NotifyLocalAddresses([first, second]);
        }

        var accept = listener.AcceptAsync().AsTask();
        var client = await connector.ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid).WithTimeout();
        var server = await accept.WithTimeout();
        if (!notifyFirst)
        {
            connector.NotifyLocalAddresses([first, second]);
        }
        await TestTimeout.Eventually(() => client.StandbyPaths.Any(p => p.Established) && server.StandbyPaths.Length == 1, "the standby path joins");
        return new Setup(first, second, recorder, listener, connector, client, server);
    }

    /// <summary>Writes <paramref name="bytes"/> seeded random bytes and reads them on the other side; returns both SHA-256 hashes and the longest gap between reads.</summary>
    private static async Task<(string Sent, string Received, TimeSpan LongestGap)> PumpAsync(Stream from, Stream to, long bytes, int seed)
    {
        var writer = Task.Run(async () =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var random = new Random(seed);
            var buffer = new byte[64 * 1024];
            for (long sent = 0; sent < bytes; sent += buffer.Length)
            {
                random.NextBytes(buffer);
                hash.AppendData(buffer);
                await from.WriteAsync(buffer);
            }

            return Convert.ToHexString(hash.GetHashAndReset());
        });

        using var received = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var readBuffer = new byte[64 * 1024];
        var gap = TimeSpan.Zero;
        var last = Stopwatch.GetTimestamp();
        for (long got = 0; got < bytes;)
        {
            var n = await to.ReadAsync(readBuffer);
            if (n == 0)
            {
                break;
            }

            var now = Stopwatch.GetTimestamp();
            var elapsed = Stopwatch.GetElapsedTime(last, now);
            gap = elapsed > gap ? elapsed : gap;
            last = now;
            received.AppendData(readBuffer, 0, n);
            got += n;
        }

        return (await writer, Convert.ToHexString(received.GetHashAndReset()), gap);
    }
}
