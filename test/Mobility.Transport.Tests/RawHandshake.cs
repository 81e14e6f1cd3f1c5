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
}
