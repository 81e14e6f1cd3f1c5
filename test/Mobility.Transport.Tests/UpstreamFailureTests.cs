namespace Mobility.Transport.Tests;

/// <summary>
/// A silent upstream failure on a host with two addresses, on the simulated network in virtual time
/// (<see cref="SimulatedMoveTests"/>' pair: one-way latency 100 ms): the client names no local address
/// (the OS's choice, as mobilityd), its default route's address stops forwarding with no address event,
/// and no standby path is up. The resume races its flows from every usable local address, the dead
/// path's last, so it goes over the other address. Assertions count round trips and bytes.
/// </summary>
[Collection("Timing")]
public sealed class UpstreamFailureTests(ITestOutputHelper output)
{
    private static readonly IPAddress ClientA = IPAddress.Parse("198.51.100.1");
    private static readonly IPAddress ClientB = IPAddress.Parse("198.51.100.2");

    /// <summary>A connection from the OS's choice (<see cref="ClientA"/>, the default route's), told the host also has <see cref="ClientB"/>; no standby paths.</summary>
    private static async Task<SimulatedMoveTests.Pair> CreateMultihomedAsync()
    {
        var pair = await SimulatedMoveTests.CreateAsync(configure: o =>
        {
            o.LocalAddress = null;
            o.MaxStandbyPaths = 0;
        });
        var (client, _) = pair.Connections[0];
        pair.Network.AddAddress(ClientB);
        pair.Connector.NotifyLocalAddresses([ClientA, ClientB]);
        Assert.Equal(ClientA, client.LocalEndPoint!.Address);
        await TestTimeout.Eventually(() => client.ActivePath?.SmoothedRtt is not null, "the active path has an RTT sample");
        return pair;
    }

    /// <summary>The virtual time of the client's first PathLost from now on (0 until then); <paramref name="onLost"/> runs on the connection's loop at that moment.</summary>
    private static Func<long> WatchPathLost(MobileConnection client, Action? onLost = null)
    {
        long lostAt = 0;
        client.Diagnostic += (_, e) =>
        {
            if (e.Kind == MobileConnectionEventKind.PathLost && Interlocked.CompareExchange(ref lostAt, e.Timestamp, 0) == 0)
            {
                onLost?.Invoke();
            }
        };
        return () => Interlocked.Read(ref lostAt);
    }

    [Fact]
    public async Task A_dead_default_upstream_without_an_address_event_resumes_over_the_other_address_within_a_connect_and_a_round_trip()
    {
        await using var pair = await CreateMultihomedAsync();
        var (client, server) = pair.Connections[0];
        var lostAt = WatchPathLost(client);
        var resumes = client.Statistics.ResumeAttempts;
        var sources = pair.Network.Sources.Count;

        // The upstream of A stops forwarding: A stays, its link and routes too; nobody is told.
        // Both ends go on writing; what they write now is lost with the old path.
        pair.Network.DropTraffic(ClientA);
        var payload = RandomNumberGenerator.GetBytes(20_000);
        await server.Stream.WriteAsync(new byte[] { 2 }).WithTimeout();
        await client.Stream.WriteAsync(payload).WithTimeout();
        var clientRead = Task.Run(async () =>
        {
            var b = new byte[1];
            await client.Stream.ReadExactlyAsync(b);
            return (At: pair.Time.GetTimestamp(), Byte: b[0]);
        });
        var received = new byte[payload.Length];
        await server.Stream.ReadExactlyAsync(received).WithTimeout();
        var serverGot = pair.Time.GetTimestamp();
        var (clientGot, got) = await clientRead.WithTimeout();
        Assert.Equal(2, got);

        Assert.NotEqual(0, lostAt());
        var toServer = pair.Time.GetElapsedTime(lostAt(), serverGot) / pair.Network.Rtt;
        var toClient = pair.Time.GetElapsedTime(lostAt(), clientGot) / pair.Network.Rtt;
        output.WriteLine($"after the silent death was declared: client->server data {toServer:0.00} RTT, server->client {toClient:0.00} RTT; " +
            $"connects from {string.Join(", ", pair.Network.Sources.Skip(sources).Select(s => s?.ToString() ?? "the OS's choice"))}");

        // The first connect after the death came from B, not from the default route's A.
        Assert.Equal(ClientB, pair.Network.Sources.Skip(sources).First());
        Assert.Equal(ClientB, client.LocalEndPoint!.Address);
        // Connect (1 RTT), then the Resume with data behind it (half an RTT) and its answer (one).
        Assert.InRange(toServer, 1.45, 1.75);
        Assert.InRange(toClient, 1.95, 2.25);
        Assert.Equal(resumes + 1, client.Statistics.ResumeAttempts);
        Assert.Equal(0, server.Statistics.ResumesRejected);
        Assert.Equal(payload, received);
        Assert.Equal(0, client.Statistics.DuplicateBytesReceived + server.Statistics.DuplicateBytesReceived);
        Assert.Contains(client.Moves[^1].Events, e => e.Kind == MoveEventKind.ConnectStarted && e.Detail!.StartsWith($"{server.LocalEndPoint} from {ClientB}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task When_the_other_address_is_dead_too_the_old_one_is_raced_after_the_race_delay_and_carries_the_resume()
    {
        await using var pair = await CreateMultihomedAsync();
        var (client, server) = pair.Connections[0];
        // B's upstream is dead as well (the host cannot know), and A's outage ends the moment its path is declared dead.
        pair.Network.DropTraffic(ClientB);
        var lostAt = WatchPathLost(client, () => pair.Network.RestoreTraffic(ClientA));
        var sources = pair.Network.Sources.Count;

        pair.Network.DropTraffic(ClientA);
        var (_, serverGot) = await SimulatedMoveTests.ExchangeAfterMoveAsync(pair.Time, client, server);

        var tried = pair.Network.Sources.Skip(sources).ToList();
        var toServer = pair.Time.GetElapsedTime(lostAt(), serverGot) / pair.Network.Rtt;
        output.WriteLine($"client->server data {toServer:0.00} RTT after the death; connects from {string.Join(", ", tried.Select(s => s?.ToString() ?? "the OS's choice"))}");
        Assert.Equal(ClientB, tried[0]);
        Assert.Null(tried[1]);   // the OS's choice (A), started when B had not connected within the race delay
        Assert.Equal(ClientA, client.LocalEndPoint!.Address);
        // Race delay (2 RTT), connect (1 RTT), the Resume and its data (half an RTT).
        Assert.InRange(toServer, 3.45, 3.75);
        Assert.Equal(0, server.Statistics.ResumesRejected);
    }
}
