using System.Globalization;
using StackExchange.Redis;

namespace Mobility.Gns.Redis.Storage;

public sealed partial class RedisGnsStore
{
    /// <summary>
    /// Waits until the write just made to <paramref name="key"/> is fsynced on its master (WAITAOF, when
    /// enabled) and acknowledged by <see cref="RedisGnsOptions.ReplicaAcks"/> replicas. WAITAOF/WAIT cover
    /// every earlier command on the connection, and StackExchange.Redis sends all commands of one node
    /// over one connection, so the command reaches the node after the write it confirms.
    /// </summary>
    private async Task WaitDurableAsync(RedisKey key)
    {
        if (!_waitAof && _options.ReplicaAcks == 0)
        {
            return;
        }

        var server = ServerFor(key);
        var timeout = ((long)_options.DurabilityTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        if (_waitAof)
        {
            var reply = (RedisResult[]?)await server.ExecuteAsync("WAITAOF", "1", _options.ReplicaAcks.ToString(CultureInfo.InvariantCulture), timeout)
                .ConfigureAwait(false);
            if (reply is not { Length: 2 } || (long)reply[0] < 1 || (long)reply[1] < _options.ReplicaAcks)
            {
                throw new RedisDurabilityException($"WAITAOF on {server.EndPoint} did not confirm the write within {_options.DurabilityTimeout}.");
            }
        }
        else
        {
            var acks = (long)await server.ExecuteAsync("WAIT", _options.ReplicaAcks.ToString(CultureInfo.InvariantCulture), timeout).ConfigureAwait(false);
            if (acks < _options.ReplicaAcks)
            {
                throw new RedisDurabilityException($"Only {acks} of {_options.ReplicaAcks} replicas acknowledged the write on {server.EndPoint} within {_options.DurabilityTimeout}.");
            }
        }
    }

    /// <summary>The master serving <paramref name="key"/>'s slot (the only master of a single server).</summary>
    private IServer ServerFor(RedisKey key)
    {
        var servers = _redis.GetServers();
        if (_facts.IsCluster)
        {
            foreach (var server in servers)
            {
                if (server.IsConnected && server.ClusterConfiguration?.GetBySlot(key) is { EndPoint: { } endPoint })
                {
                    return _redis.GetServer(endPoint);
                }
            }
        }

        return servers.FirstOrDefault(s => s.IsConnected && !s.IsReplica)
            ?? throw new InvalidOperationException("No Redis master is connected.");
    }
}

/// <summary>Redis applied a write but did not confirm it durable (fsync or replicas) in time; the caller should retry.</summary>
public sealed class RedisDurabilityException : Exception
{
    public RedisDurabilityException(string message) : base(message) { }

    public RedisDurabilityException() : base("The write was not confirmed durable.") { }

    public RedisDurabilityException(string message, Exception innerException) : base(message, innerException) { }
}
