namespace Mobility.Transport.Tests;

/// <summary>Talks to a listener below the transport: raw handshake bytes in, the raw answer out.</summary>
internal static class RawHandshake
{
    /// <summary>
    /// Sends <paramref name="bytes"/> on a new TCP flow and returns what comes back, up to one
    /// <see cref="HandshakeReject"/>, until the listener closes or resets the flow.
    /// </summary>
    public static async Task<byte[]> ExchangeAsync(IPEndPoint endpoint, byte[] bytes)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint).WithTimeout();
        await socket.SendAsync(bytes).WithTimeout();
        var answer = new MemoryStream();
        var buffer = new byte[1024];
        try
        {
            int n;
            while (answer.Length < HandshakeReject.EncodedSize && (n = await socket.ReceiveAsync(buffer).WithTimeout()) > 0)
            {
                answer.Write(buffer, 0, n);
            }
        }
        catch (SocketException)
        {
        }

        return answer.ToArray();
    }

    /// <summary>
    /// Opens a flow of <paramref name="network"/> from <paramref name="from"/> to <paramref name="to"/> and sends
    /// <paramref name="message"/> on it: how many bytes came back within 3 RTT (the network's virtual time), and whether
    /// the flow was closed.
    /// </summary>
    public static async Task<(int BytesBack, bool Closed)> SendAsync(SimulatedNetwork network, IPEndPoint to, IPAddress from, byte[] message)
    {
        var flow = await network.ConnectAsync(to, from, CancellationToken.None).AsTask().WithTimeout();
        await flow.Stream.WriteAsync(message).AsTask().WithTimeout();
        var buffer = new byte[256];
        var back = 0;
        try
        {
            using var limit = new CancellationTokenSource(network.Rtt * 3, network.Time);
            while (true)
            {
                var n = await flow.Stream.ReadAsync(buffer, limit.Token).AsTask().WithTimeout();
                if (n == 0)
                {
                    return (back, true);
                }

                back += n;
            }
        }
        catch (OperationCanceledException)
        {
            return (back, false);
        }
        catch (IOException)
        {
            return (back, true);
        }
        finally
        {
            flow.Abort();
        }
    }
}
