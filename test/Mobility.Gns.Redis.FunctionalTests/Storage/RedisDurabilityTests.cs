using System.Collections.Concurrent;
using System.Net;
using Xunit.Abstractions;

namespace Mobility.Gns.Redis.FunctionalTests.Storage;

/// <summary>With appendonly yes + appendfsync always, an update the store acknowledged survives SIGKILL of redis-server.</summary>
public sealed class RedisDurabilityTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Every_acknowledged_update_survives_SIGKILL_of_redis_server_during_an_update_storm()
    {
        const int Writers = 8;
        const int MaxVersions = 1_000_000;
        using var server = new RedisProcess("--appendonly", "yes", "--appendfsync", "always");
        var options = Infrastructure.Redis.Options(server.Configuration);
        var keys = Enumerable.Range(0, Writers).Select(_ => HostKey.Generate()).ToArray();
        var acknowledged = new ConcurrentDictionary<HostGuid, ulong>();
        var acknowledgedCount = 0L;
        var failures = new ConcurrentBag<Exception>();

        var connection = ConfigurationOptions.Parse(server.Configuration);
        connection.AllowAdmin = true;
        connection.AbortOnConnectFail = true;
        connection.AsyncTimeout = 5000;
        await using (var redis = await ConnectionMultiplexer.ConnectAsync(connection).WithTimeout())
        {
            var store = await Infrastructure.Redis.OpenAsync(redis, options);
            Assert.True(store.ServerFacts.AllDurable, store.ServerFacts.Describe());
            using var stop = new CancellationTokenSource();
            var writers = keys.Select((key, i) => Task.Run(async () =>
            {
                for (ulong v = 1; v <= MaxVersions && !stop.IsCancellationRequested; v++)
                {
                    try
                    {
                        var result = await store.PutAsync(Record(key, v, NameOf(key, keys), AddressOf(key, keys)), false);
                        Assert.Equal(StoreStatus.Stored, result.Status);
                        acknowledged[key.Guid] = v;
                        Interlocked.Increment(ref acknowledgedCount);
                    }
                    catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException)
                    {
                        failures.Add(e);
                        return;
                    }
                }
            })).ToArray();

            // Let the storm run, then kill Redis without warning while writes are in flight.
            await WaitUntilAsync(() => Interlocked.Read(ref acknowledgedCount) >= 2_000);
            server.Kill();
            await Task.WhenAll(writers).WithTimeout();
            stop.Cancel();
        }

        server.Start();
        await using var restarted = await Infrastructure.Redis.ConnectAsync(server.Configuration);
        var reopened = await Infrastructure.Redis.OpenAsync(restarted, options);
        var present = 0L;
        var extra = 0L;
        foreach (var key in keys)
        {
            var acked = acknowledged.GetValueOrDefault(key.Guid);
            var stored = await reopened.GetVersionAsync(key.Guid).WithTimeout() ?? 0;
            present += (long)Math.Min(acked, stored);
            extra += (long)(stored > acked ? stored - acked : 0);
            Assert.True(stored >= acked, $"{key.Guid}: acknowledged v{acked}, present v{stored}");
            if (stored > 0)
            {
                if (stored > acked)
                {
                    // Applied but never acknowledged: the writer may have died before its index step; the
                    // client's retry of that version (answered Stale) repairs it.
                    var retry = Record(key, stored, NameOf(key, keys), AddressOf(key, keys));
                    Assert.Equal(new StoreResult(StoreStatus.Stale, stored), await reopened.PutAsync(retry, false).WithTimeout());
                }

                var record = await reopened.GetAsync(key.Guid).WithTimeout();
                Assert.Equal(stored, record?.Version);
                Assert.Contains(key.Guid, (await reopened.ReverseAsync(record!.Locators[0].Address, 10).WithTimeout()).Guids);
                if (record.Name is { } name)
                {
                    Assert.Equal(key.Guid, (await reopened.GetByNameAsync(name).WithTimeout())?.Guid);
                }
            }
        }

        output.WriteLine($"acknowledged updates: {acknowledgedCount}; present after SIGKILL + restart: {present}; " +
                         $"applied but never acknowledged (in flight at the kill): {extra}; writers stopped by the kill: {failures.Count}/{Writers}");
        Assert.Equal(acknowledgedCount, present);
        Assert.NotEmpty(failures);
        foreach (var key in keys)
        {
            key.Dispose();
        }
    }

    private static string? NameOf(HostKey key, HostKey[] keys)
    {
        var i = Array.IndexOf(keys, key);
        return i % 2 == 0 ? $"writer-{i}" : null;
    }

    private static string AddressOf(HostKey key, HostKey[] keys) => $"192.0.2.{Array.IndexOf(keys, key) + 1}";

    private static Task WaitUntilAsync(Func<bool> condition) => TestTimeout.Eventually(condition, "the storm got going");
}
