using System.Net;
using System.Net.Sockets;
using Mobility.Transport;

namespace Mobility.Daemon.Forwarding;

public sealed partial class MobileForwarder
{
    /// <summary>
    /// One incoming UDP session (after a "MUDP" open header): refused like a TCP stream unless the UDP
    /// port is exposed to the peer; otherwise one UDP socket connected to 127.0.0.1:port carries the
    /// peer's datagrams to the application and its replies back (from the peer's virtual address when the port's
    /// source is virtual: Inbound/InboundDelivery), until the session ends
    /// (<see cref="ForwardingOptions.UdpIdleTimeout"/>, the peer's close, a failure or stop).
    /// </summary>
    private async Task ServeUdpAsync(MobileConnection connection, ushort port, CancellationToken cancellationToken)
    {
        if (_exposed.Find(port, connection.RemoteGuid, udp: true) is not { } exposed)
        {
            Log.NotExposed(_logger, connection.RemoteGuid.ToString(), port);
            await RefuseAsync(connection, OpenStatus.NotExposed, cancellationToken).ConfigureAwait(false);
            return;
        }

        Socket socket;
        try
        {
            socket = await _inbound.OpenUdpAsync(connection.RemoteGuid, port, exposed.Source, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            Log.LocalConnectFailed(_logger, port, e.Message);
            await RefuseAsync(connection, OpenStatus.ConnectionRefused, cancellationToken).ConfigureAwait(false);
            return;
        }

        using var owned = socket;
        await connection.WriteAsync(new[] { (byte)OpenStatus.Ok }, cancellationToken).ConfigureAwait(false);
        Log.UdpSessionServed(_logger, connection.RemoteGuid.ToString(), port);
        using var relay = new UdpRelay(connection, async (datagram, ct) => await socket.SendAsync(datagram, SocketFlags.None, ct).ConfigureAwait(false),
            _options.Forwarding.UdpIdleTimeout, _time);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, relay.Ended);
        var fromLocal = ReceiveLocalAsync(socket, relay, stop.Token);
        var end = await relay.RunAsync(_options.Forwarding.HandshakeTimeout, cancellationToken).ConfigureAwait(false);
        await stop.CancelAsync().ConfigureAwait(false);
        await fromLocal.ConfigureAwait(false);
        Log.UdpSessionEnded(_logger, connection.RemoteGuid.ToString(), port, end);
    }

    /// <summary>The local application's datagrams (on the session's connected socket) to the peer, until cancelled.</summary>
    internal static async Task ReceiveLocalAsync(Socket socket, UdpRelay relay, CancellationToken cancellationToken)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(UdpForwards.ReceiveBufferSize);
        try
        {
            while (true)
            {
                int length;
                try
                {
                    length = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset)
                {
                    // ICMP port unreachable from an earlier send (nobody listens yet): keep receiving.
                    continue;
                }

                relay.FromLocal(buffer.AsSpan(0, length));
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
