using Mobility.Net.Socks5;

namespace Mobility.Daemon.FunctionalTests.Infrastructure;

/// <summary>The shared SOCKS5 client for tests: CONNECT to a domain or an address, asserting the reply code.</summary>
public static class SocksTestClient
{
    public static Task<Socket> ConnectAsync(IPEndPoint socks, string host, int port, Socks5Reply expect)
        => ConnectAsync(socks, (socket, ct) => Socks5Client.ConnectAsync(socket, host, checked((ushort)port), ct), expect);

    public static Task<Socket> ConnectAsync(IPEndPoint socks, IPAddress address, int port, Socks5Reply expect)
        => ConnectAsync(socks, (socket, ct) => Socks5Client.ConnectAsync(socket, address, checked((ushort)port), ct), expect);

    private static async Task<Socket> ConnectAsync(IPEndPoint socks, Func<Socket, CancellationToken, Task<Socks5Reply>> connect, Socks5Reply expect)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await client.ConnectAsync(socks).WithTimeout();
            Assert.Equal(expect, await connect(client, CancellationToken.None).WithTimeout());
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    public static async Task<byte[]> ReadExactlyAsync(Socket socket, int count)
    {
        var buffer = new byte[count];
        var filled = 0;
        while (filled < count)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(filled)).WithTimeout();
            Assert.NotEqual(0, read);
            filled += read;
        }

        return buffer;
    }

    /// <summary>Sends <paramref name="size"/> random bytes through an echo, half-closes, and checks that exactly those bytes come back.</summary>
    public static async Task AssertEchoesAsync(Socket client, int size)
    {
        var data = RandomNumberGenerator.GetBytes(size);
        var reading = ReadToEndAsync(client);
        await client.SendAsync(data).WithTimeout();
        client.Shutdown(SocketShutdown.Send);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(await reading.WithTimeout()));
    }

    public static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        using var all = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer).WithTimeout(TimeSpan.FromSeconds(30));
            if (read == 0)
            {
                return all.ToArray();
            }

            all.Write(buffer, 0, read);
        }
    }
}
