using System.Collections.Concurrent;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.EndToEnd.FunctionalTests;

/// <summary>
/// The real <c>gns</c> process on its default SQLite store: data survives a restart, and no
/// acknowledged update is lost when the process is killed with SIGKILL in the middle of an update storm.
/// </summary>
public sealed class GnsDurabilityTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("gns-durability-").FullName;

    [Fact]
    public async Task Records_survive_a_clean_restart_of_the_sqlite_gns()
    {
        using var key = HostKey.Generate();
        var record = GnsRecord.Create(key, 5, [new Locator(IPAddress.Parse("127.0.0.2"), 7391)], 30, "durable-host");
        await using (var gns = await StartAsync())
        {
            await using var client = Client(gns.Udp);
            await client.RegisterAsync(record).WaitAsync(TimeSpan.FromSeconds(30));
            gns.Process.Signal(15);
            Assert.Equal(0, await gns.Process.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        }

        await using var restarted = await StartAsync();
        await using var after = Client(restarted.Udp);
        var byGuid = await after.LookupAsync(key.Guid).WaitAsync(TimeSpan.FromSeconds(30));
        var byName = await after.LookupNameAsync("durable-host").WaitAsync(TimeSpan.FromSeconds(30));
        var reverse = await after.ReverseAsync(IPAddress.Parse("127.0.0.2")).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(record.Encoded.ToArray(), byGuid!.Encoded.ToArray());
        Assert.Equal(key.Guid, byName!.Guid);
        Assert.Contains(key.Guid, reverse);
        var replay = await Assert.ThrowsAsync<GnsException>(() => after.RegisterAsync(
            GnsRecord.Create(key, 4, [new Locator(IPAddress.Parse("127.0.0.9"), 7391)])).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(Protocol.Gns.GnsErrorCode.StaleVersion, replay.Code);
    }

    [Fact]
    public async Task No_acknowledged_update_is_lost_when_gns_is_killed_during_an_update_storm()
    {
        const int Hosts = 32;
        var keys = Enumerable.Range(0, Hosts).Select(_ => HostKey.Generate()).ToArray();
        var acknowledged = new ConcurrentDictionary<HostGuid, ulong>();
        var acks = 0;
        await using (var gns = await StartAsync())
        {
            await using var client = Client(gns.Udp, attempts: 2);
            using var stop = new CancellationTokenSource();
            var writers = keys.Select(key => Task.Run(async () =>
            {
                for (ulong version = 1; !stop.IsCancellationRequested && version < 100_000; version++)
                {
                    var record = GnsRecord.Create(key, version, [new Locator(IPAddress.Parse("127.0.0.2"), (ushort)(1000 + (version % 60000)))]);
                    try
                    {
                        await client.RegisterAsync(record, stop.Token).WaitAsync(TimeSpan.FromSeconds(10));
                        acknowledged[key.Guid] = version;
                        Interlocked.Increment(ref acks);
                    }
                    catch (Exception e) when (e is GnsException or OperationCanceledException or TimeoutException)
                    {
                        return; // the server is gone (killed) or the storm is over
                    }
                }
            })).ToArray();

            // Let the storm run until a good number of updates were acknowledged, then kill without warning.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (Volatile.Read(ref acks) < 500 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            gns.Process.Signal(9);
            await gns.Process.WaitForExitAsync(TimeSpan.FromSeconds(30));
            await stop.CancelAsync();
            await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(60));
        }

        Assert.True(acks > 0, "no update was acknowledged before the kill");
        await using var restarted = await StartAsync();
        await using var after = Client(restarted.Udp);
        var present = 0;
        foreach (var (guid, version) in acknowledged)
        {
            var record = await after.LookupAsync(guid).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(record is not null && record.Version >= version,
                $"{guid}: acknowledged v{version}, found {(record is null ? "nothing" : $"v{record.Version}")}");
            present++;
        }

        output.WriteLine($"{acks} updates acknowledged before SIGKILL; latest acknowledged version present after restart for {present} of {acknowledged.Count} hosts");
    }

    public void Dispose() => Directory.Delete(_data, recursive: true);

    private Task<GnsProcess> StartAsync()
        => GnsProcess.StartAsync(["serve", "--data", _data, "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"],
            new Dictionary<string, string>
            {
                // One test source sends the whole storm: lift the per-source limit meant for floods.
                ["GNS_Gns__RequestsPerSecond"] = "1000000",
                ["GNS_Gns__Burst"] = "1000000",
            });

    private static GnsClient Client(IPEndPoint udp, int attempts = 4)
        => new(new GnsClientOptions { Server = udp, Attempts = attempts, CacheEnabled = false });
}
