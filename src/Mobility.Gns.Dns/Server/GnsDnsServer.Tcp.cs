using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;
using Mobility.Protocol.Dns;

namespace Mobility.Gns.Dns.Server;

public sealed partial class GnsDnsServer
{
    /// <summary>Accepts connections up to <see cref="GnsDnsOptions.MaxTcpConnections"/>; on stop, waits for every connection loop.</summary>
    private async Task RunTcpAcceptLoopAsync(Socket listener, CancellationToken stoppingToken)
    {
        var connections = new ConcurrentDictionary<Task, bool>();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var client = await listener.AcceptAsync(stoppingToken).ConfigureAwait(false);
                if (connections.Count >= _options.MaxTcpConnections)
                {
                    Log.TcpRefused(_logger, client.RemoteEndPoint?.ToString() ?? "?", connections.Count);
                    client.Dispose();
                    continue;
                }

                var task = ServeTcpAsync(client, stoppingToken);
                connections.TryAdd(task, true);
                _ = task.ContinueWith(t => connections.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (ObjectDisposedException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (SocketException e)
        {
            Log.AcceptFailed(_logger, e);
        }

        await Task.WhenAll(connections.Keys).ConfigureAwait(false);
    }

    /// <summary>
    /// Serves one connection: reads a 2-octet length and that many octets (refusing lengths under a header
    /// or over <see cref="GnsDnsOptions.MaxQuerySize"/> before reading them), answers, repeats. Closes on
    /// EOF, on a bad length, on a query that cannot be answered, and after <see cref="GnsDnsOptions.TcpIdleTimeout"/>
    /// without a complete query. Never throws.
    /// </summary>
    private async Task ServeTcpAsync(Socket client, CancellationToken stoppingToken)
    {
        var source = client.RemoteEndPoint?.ToString() ?? "?";
        var query = ArrayPool<byte>.Shared.Rent(_options.MaxQuerySize);
        var response = ArrayPool<byte>.Shared.Rent(2 + DnsLimits.MaxMessageSize);
        var reason = "end of stream";
        try
        {
            using var stream = new NetworkStream(client, ownsSocket: true);
            while (true)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                idle.CancelAfter(_options.TcpIdleTimeout);
                var prefix = query.AsMemory(0, 2);
                if (!await ReadExactlyOrEndAsync(stream, prefix, idle.Token).ConfigureAwait(false))
                {
                    break;
                }

                var length = BinaryPrimitives.ReadUInt16BigEndian(prefix.Span);
                if (length < DnsLimits.HeaderSize || length > _options.MaxQuerySize)
                {
                    reason = $"a frame of {length} octets";
                    break;
                }

                if (!await ReadExactlyOrEndAsync(stream, query.AsMemory(0, length), idle.Token).ConfigureAwait(false))
                {
                    reason = "a frame cut short";
                    break;
                }

                var written = await _responder.RespondAsync(query.AsMemory(0, length), response.AsMemory(2, DnsLimits.MaxMessageSize), DnsTransport.Tcp,
                    stoppingToken).ConfigureAwait(false);
                if (written == 0)
                {
                    reason = "a message that is not a query";
                    break;
                }

                BinaryPrimitives.WriteUInt16BigEndian(response, (ushort)written);
                await stream.WriteAsync(response.AsMemory(0, 2 + written), idle.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            reason = stoppingToken.IsCancellationRequested ? "server stopping" : "idle timeout";
        }
        catch (IOException e)
        {
            reason = e.Message;
        }
        catch (SocketException e)
        {
            reason = e.Message;
        }
        finally
        {
            client.Dispose();
            ArrayPool<byte>.Shared.Return(query);
            ArrayPool<byte>.Shared.Return(response);
        }

        Log.TcpClosed(_logger, source, reason);
    }

    /// <summary>Fills <paramref name="buffer"/>; false on a clean end of stream before the first octet.</summary>
    private static async ValueTask<bool> ReadExactlyOrEndAsync(NetworkStream stream, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer[read..], cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                if (read == 0)
                {
                    return false;
                }

                throw new IOException("The connection closed inside a frame.");
            }

            read += n;
        }

        return true;
    }
}
