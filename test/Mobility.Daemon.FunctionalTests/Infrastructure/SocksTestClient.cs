using System.Net;
using System.Net.Sockets;
using Mobility.Net.Socks5;
using Mobility.Protocol.Forwarding;

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

/// <summary>A plain TCP echo server (no mobilityd): echoes until EOF, then half-closes its side.</summary>
public sealed class PlainEchoServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _loop;
    private int _accepted;

    public PlainEchoServer(IPAddress? address = null)
    {
        _listener = new TcpListener(address ?? IPAddress.Loopback, 0);
        _listener.Start();
        _loop = AcceptAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    public int Port => EndPoint.Port;

    public int Accepted => Volatile.Read(ref _accepted);

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _listener.Stop();
        await _loop.WithTimeout();
        _cts.Dispose();
    }

    private async Task AcceptAsync()
    {
        var sessions = new List<Task>();
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptSocketAsync(_cts.Token);
                Interlocked.Increment(ref _accepted);
                sessions.Add(EchoAsync(socket));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        await Task.WhenAll(sessions);
    }

    private async Task EchoAsync(Socket socket)
    {
        using (socket)
        {
            var buffer = new byte[32 * 1024];
            try
            {
                while (true)
                {
                    var read = await socket.ReceiveAsync(buffer, _cts.Token);
                    if (read == 0)
                    {
                        socket.Shutdown(SocketShutdown.Send);
                        return;
                    }

                    await socket.SendAsync(buffer.AsMemory(0, read), _cts.Token);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
            }
        }
    }
}
