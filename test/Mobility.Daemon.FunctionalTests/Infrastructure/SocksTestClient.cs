using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mobility.Daemon.Forwarding;

namespace Mobility.Daemon.FunctionalTests.Infrastructure;

/// <summary>A raw SOCKS5 client for tests: CONNECT to a domain or an address, asserting the reply code.</summary>
public static class SocksTestClient
{
    public static Task<Socket> ConnectAsync(IPEndPoint socks, string host, int port, Socks5Reply expect)
    {
        var name = Encoding.ASCII.GetBytes(host);
        return ConnectAsync(socks, [3, (byte)name.Length, .. name], port, expect);
    }

    public static Task<Socket> ConnectAsync(IPEndPoint socks, IPAddress address, int port, Socks5Reply expect)
        => ConnectAsync(socks, [address.AddressFamily == AddressFamily.InterNetwork ? (byte)1 : (byte)4, .. address.GetAddressBytes()], port, expect);

    private static async Task<Socket> ConnectAsync(IPEndPoint socks, byte[] address, int port, Socks5Reply expect)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await client.ConnectAsync(socks).WithTimeout();
            await client.SendAsync(new byte[] { 5, 1, 0 }).WithTimeout();
            Assert.Equal(new byte[] { 5, 0 }, await ReadExactlyAsync(client, 2));
            var request = new byte[3 + address.Length + 2];
            request[0] = 5;
            request[1] = 1;
            address.CopyTo(request, 3);
            BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(3 + address.Length), (ushort)port);
            await client.SendAsync(request).WithTimeout();
            var reply = await ReadExactlyAsync(client, 10);
            Assert.Equal(5, reply[0]);
            Assert.Equal(expect, (Socks5Reply)reply[1]);
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
