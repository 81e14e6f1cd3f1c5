using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Mobility.Gns.Redis.FunctionalTests.Storage;

/// <summary>What the store checks when it opens, and its registration.</summary>
public sealed class RedisStoreOpeningTests
{
    [Fact]
    public async Task A_server_without_an_fsynced_aof_is_reported_and_refused_when_durability_is_required()
    {
        using var server = new RedisProcess("--appendonly", "no");
        await using var redis = await Infrastructure.Redis.ConnectAsync(server.Configuration);
        var log = new RecordingLogger<RedisGnsStore>();

        var store = await Infrastructure.Redis.OpenAsync(redis, Infrastructure.Redis.Options(server.Configuration), log);
        Assert.False(store.ServerFacts.AllDurable);
        Assert.Contains(log.Entries, e => e.Level == LogLevel.Warning && e.Id.Id == 1601);

        var strict = Infrastructure.Redis.Options(server.Configuration);
        strict.RequireDurableConfiguration = true;
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => Infrastructure.Redis.OpenAsync(redis, strict));
        Assert.Contains("appendfsync always", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FsyncWait_Always_needs_WAITAOF_and_IfSupported_uses_it_only_where_the_server_has_it()
    {
        using var server = new RedisProcess("--appendonly", "yes", "--appendfsync", "always");
        await using var redis = await Infrastructure.Redis.ConnectAsync(server.Configuration);
        var facts = (await Infrastructure.Redis.OpenAsync(redis, Infrastructure.Redis.Options(server.Configuration))).ServerFacts;
        var always = Infrastructure.Redis.Options(server.Configuration);
        always.FsyncWait = RedisFsyncWait.Always;

        if (facts.AllSupportWaitAof)
        {
            var store = await Infrastructure.Redis.OpenAsync(redis, always);
            Assert.True(store.UsesWaitAof);
            using var key = HostKey();
            Assert.Equal(StoreStatus.Stored, (await store.PutAsync(Record(key, 1, "waited", "192.0.2.1"), false).WithTimeout()).Status);
        }
        else
        {
            // Debian bookworm's Redis 7.0: no WAITAOF.
            var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => Infrastructure.Redis.OpenAsync(redis, always));
            Assert.Contains("7.2", refused.Message, StringComparison.Ordinal);
            Assert.False((await Infrastructure.Redis.OpenAsync(redis, Infrastructure.Redis.Options(server.Configuration))).UsesWaitAof);
        }
    }

    [Fact]
    public async Task AddRedisGnsStore_replaces_a_store_and_feed_registered_before_it()
    {
        using var server = new RedisProcess();
        var services = new ServiceCollection();
        services.AddLogging();
        services.TryAddSingleton<IGnsStore, InMemoryGnsStore>();
        services.TryAddSingleton<IRecordChangeFeed, LocalRecordChangeFeed>();

        services.AddRedisGnsStore(server.Configuration);
        await using var provider = services.BuildServiceProvider(validateScopes: true);

        Assert.IsType<RedisGnsStore>(provider.GetRequiredService<IGnsStore>());
        Assert.IsType<RedisRecordChangeFeed>(provider.GetRequiredService<IRecordChangeFeed>());
        Assert.Single(services, d => d.ServiceType == typeof(IGnsStore));
    }

    [Fact]
    public void Options_validation_names_each_bad_setting()
    {
        var result = new RedisGnsOptionsValidator().Validate(null, new RedisGnsOptions
        {
            Configuration = "",
            KeyPrefix = "bad{prefix}",
            ClaimLease = TimeSpan.FromSeconds(10),
            ClaimWriteDeadline = TimeSpan.FromSeconds(9),
            ChangeChannels = 0,
        });

        Assert.True(result.Failed);
        Assert.Contains(result.Failures!, f => f.Contains("Configuration", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.Contains("KeyPrefix", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.Contains("ClaimWriteDeadline", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.Contains("ChangeChannels", StringComparison.Ordinal));
        Assert.True(new RedisGnsOptionsValidator().Validate(null, new RedisGnsOptions { Configuration = "127.0.0.1:6379" }).Succeeded);
    }

    private static Mobility.Protocol.Identity.HostKey HostKey() => Mobility.Protocol.Identity.HostKey.Generate();
}
