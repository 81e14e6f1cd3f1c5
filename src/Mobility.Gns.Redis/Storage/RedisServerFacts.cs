using System.Globalization;
using StackExchange.Redis;

namespace Mobility.Gns.Redis.Storage;

/// <summary>What one master reported when the store opened.</summary>
/// <param name="AppendOnly">CONFIG GET appendonly, or null when CONFIG is not allowed.</param>
/// <param name="AppendFsync">CONFIG GET appendfsync, or null when CONFIG is not allowed.</param>
public sealed record RedisMasterFacts(string EndPoint, Version Version, bool Cluster, string? AppendOnly, string? AppendFsync)
{
    /// <summary>WAITAOF exists from Redis 7.2.</summary>
    public static readonly Version WaitAofVersion = new(7, 2);

    public bool SupportsWaitAof => Version >= WaitAofVersion;

    /// <summary>Every acknowledged write is in an fsynced AOF before the reply: nothing acknowledged is lost on SIGKILL or power loss.</summary>
    public bool Durable => AppendOnly == "yes" && AppendFsync == "always";

    public override string ToString()
        => $"{EndPoint} v{Version}{(Cluster ? " cluster" : "")} appendonly={AppendOnly ?? "?"} appendfsync={AppendFsync ?? "?"}";
}

/// <summary>The masters behind a multiplexer, probed once when the store opens.</summary>
public sealed record RedisServerFacts(IReadOnlyList<RedisMasterFacts> Masters)
{
    public bool IsCluster => Masters.Any(m => m.Cluster);

    public bool AllSupportWaitAof => Masters.Count > 0 && Masters.All(m => m.SupportsWaitAof);

    public bool AllDurable => Masters.Count > 0 && Masters.All(m => m.Durable);

    public Version LowestVersion => Masters.Count == 0 ? new Version(0, 0) : Masters.Min(m => m.Version)!;

    public string Describe() => Masters.Count == 0 ? "no connected master" : string.Join("; ", Masters);

    /// <summary>Asks every connected master its version, mode and AOF settings (CONFIG may be refused: then unknown).</summary>
    public static async Task<RedisServerFacts> ProbeAsync(IConnectionMultiplexer redis, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(redis);
        var masters = new List<RedisMasterFacts>();
        foreach (var server in redis.GetServers())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!server.IsConnected || server.IsReplica)
            {
                continue;
            }

            masters.Add(new RedisMasterFacts(
                Format(server.EndPoint), server.Version, server.ServerType == ServerType.Cluster,
                await ConfigAsync(server, "appendonly").ConfigureAwait(false),
                await ConfigAsync(server, "appendfsync").ConfigureAwait(false)));
        }

        if (masters.Count == 0)
        {
            throw new InvalidOperationException("No Redis master is connected.");
        }

        return new RedisServerFacts(masters);
    }

    private static async Task<string?> ConfigAsync(IServer server, string name)
    {
        try
        {
            var pairs = await server.ConfigGetAsync(name).ConfigureAwait(false);
            return pairs.FirstOrDefault(p => string.Equals(p.Key, name, StringComparison.OrdinalIgnoreCase)).Value?.ToLowerInvariant();
        }
        catch (Exception e) when (e is RedisServerException or RedisCommandException)
        {
            // CONFIG renamed or forbidden (managed services), or a multiplexer without allowAdmin: unknown.
            return null;
        }
    }

    private static string Format(System.Net.EndPoint endPoint) => Convert.ToString(endPoint, CultureInfo.InvariantCulture) ?? "?";
}
