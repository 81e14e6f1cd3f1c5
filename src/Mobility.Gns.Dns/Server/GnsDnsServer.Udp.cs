using System.Buffers;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Gns.Dns.Server;

public sealed partial class GnsDnsServer
{
    /// <summary>Receives a datagram, answers it, repeats. Datagrams over <see cref="GnsDnsOptions.MaxQuerySize"/> are dropped.</summary>
    private async Task RunUdpLoopAsync(Socket socket, CancellationToken stoppingToken)
    {
        // One octet more than the limit tells an oversized datagram from one exactly at it.
        var query = ArrayPool<byte>.Shared.Rent(_options.MaxQuerySize + 1);
        var response = ArrayPool<byte>.Shared.Rent(_options.MaxUdpResponseSize);
        EndPoint any = new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                SocketReceiveFromResult received;
                try
                {
                    received = await socket.ReceiveFromAsync(query.AsMemory(0, _options.MaxQuerySize + 1), SocketFlags.None, any, stoppingToken)
                        .ConfigureAwait(false);
                }
                catch (SocketException e)
                {
                    // ICMP port unreachable from an earlier reply (ConnectionReset) and the like: keep serving.
                    Log.UdpError(_logger, e);
                    continue;
                }

                if (received.ReceivedBytes > _options.MaxQuerySize)
                {
                    Log.OversizedUdp(_logger, received.ReceivedBytes, received.RemoteEndPoint.ToString() ?? "?");
                    continue;
                }

                var length = await _responder.RespondAsync(query.AsMemory(0, received.ReceivedBytes), response.AsMemory(0, _options.MaxUdpResponseSize),
                    DnsTransport.Udp, stoppingToken).ConfigureAwait(false);
                if (length == 0)
                {
                    continue;
                }

                try
                {
                    await socket.SendToAsync(response.AsMemory(0, length), SocketFlags.None, received.RemoteEndPoint, stoppingToken).ConfigureAwait(false);
                }
                catch (SocketException e)
                {
                    Log.UdpError(_logger, e);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (ObjectDisposedException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(query);
            ArrayPool<byte>.Shared.Return(response);
        }
    }
}
