using System.Net.Sockets;
using Mobility.Net.Socks5;
using Mobility.Protocol.Forwarding;

namespace Mobility.Net.Tests;

/// <summary>The SOCKS5 client against a scripted server on loopback (real sockets): what it sends, what it accepts, what it leaves in the socket.</summary>
public sealed class Socks5ClientTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Greeting_and_connect_to_a_domain_go_out_together_and_the_bytes_after_the_reply_stay()
    {
        await using var server = new ScriptedServer(expected: 3 + 4 + 1 + 11 + 2, answer: [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0, .. "app"u8]);
        using var client = await ConnectAsync(server);

        var reply = await Socks5Client.ConnectAsync(client, "example.org", 8080, CancellationToken.None).WaitAsync(Limit);

        Assert.Equal(Socks5Reply.Succeeded, reply);
        Assert.Equal((byte[])[5, 1, 0, 5, 1, 0, 3, 11, .. "example.org"u8, 0x1F, 0x90], await server.Received.WaitAsync(Limit));
        var rest = new byte[3];
        Assert.Equal(3, await client.ReceiveAsync(rest.AsMemory()).AsTask().WaitAsync(Limit));
        Assert.Equal("app"u8.ToArray(), rest);
    }

    [Theory]
    [InlineData("192.0.2.7", new byte[] { 1, 192, 0, 2, 7 })]
    [InlineData("::ffff:192.0.2.7", new byte[] { 1, 192, 0, 2, 7 })]
    [InlineData("2001:db8::1", new byte[] { 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 })]
    public async Task An_address_is_sent_as_ATYP_1_or_4(string address, byte[] field)
    {
        await using var server = new ScriptedServer(expected: 3 + 3 + field.Length + 2, answer: [5, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
        using var client = await ConnectAsync(server);

        var reply = await Socks5Client.ConnectAsync(client, IPAddress.Parse(address), 22, CancellationToken.None).WaitAsync(Limit);

        Assert.Equal(Socks5Reply.NotAllowed, reply);
        Assert.Equal((byte[])[5, 1, 0, 5, 1, 0, .. field, 0, 22], await server.Received.WaitAsync(Limit));
    }

    [Fact]
    public async Task A_reply_with_a_domain_or_IPv6_address_is_read_to_its_end()
    {
        await using var server = new ScriptedServer(expected: 3 + 4 + 1 + 1 + 2, answer: [5, 0, 5, 0, 0, 3, 4, .. "host"u8, 0, 80, 9]);
        using var client = await ConnectAsync(server);
        Assert.Equal(Socks5Reply.Succeeded, await Socks5Client.ConnectAsync(client, "h", 80, CancellationToken.None).WaitAsync(Limit));
        var next = new byte[1];
        Assert.Equal(1, await client.ReceiveAsync(next.AsMemory()).AsTask().WaitAsync(Limit));
        Assert.Equal(9, next[0]);
    }

    [Fact]
    public async Task A_server_that_refuses_no_authentication_is_a_format_error()
    {
        await using var server = new ScriptedServer(expected: 3 + 4 + 1 + 1 + 2, answer: [5, 0xFF]);
        using var client = await ConnectAsync(server);
        var error = await Assert.ThrowsAsync<Socks5FormatException>(() => Socks5Client.ConnectAsync(client, "h", 80, CancellationToken.None)).WaitAsync(Limit);
        Assert.Contains("255", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new byte[] { 4, 0 })]
    [InlineData(new byte[] { 5, 0, 4, 0, 0, 1, 0, 0, 0, 0, 0, 0 })]
    [InlineData(new byte[] { 5, 0, 5, 0, 1, 1, 0, 0, 0, 0, 0, 0 })]
    [InlineData(new byte[] { 5, 0, 5, 0, 0, 9, 0, 0, 0, 0, 0, 0 })]
    public async Task Malformed_answers_are_format_errors(byte[] answer)
    {
        await using var server = new ScriptedServer(expected: 3 + 4 + 1 + 1 + 2, answer: answer);
        using var client = await ConnectAsync(server);
        await Assert.ThrowsAsync<Socks5FormatException>(() => Socks5Client.ConnectAsync(client, "h", 80, CancellationToken.None)).WaitAsync(Limit);
    }

    [Fact]
    public async Task A_server_that_closes_mid_reply_is_an_IO_error()
    {
        await using var server = new ScriptedServer(expected: 3 + 4 + 1 + 1 + 2, answer: [5, 0, 5, 0]);
        using var client = await ConnectAsync(server);
        var error = await Assert.ThrowsAsync<IOException>(() => Socks5Client.ConnectAsync(client, "h", 80, CancellationToken.None)).WaitAsync(Limit);
        Assert.Contains("closed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenAsync_throws_the_reply_and_disposes_the_socket_on_failure()
    {
        await using var server = new ScriptedServer(expected: 3 + 4 + 1 + 1 + 2, answer: [5, 0, 5, 4, 0, 1, 0, 0, 0, 0, 0, 0]);
        Socket? created = null;
        var error = await Assert.ThrowsAsync<Socks5ReplyException>(() => Socks5Client.OpenAsync(server.EndPoint, "h", 80, CancellationToken.None,
            endPoint => created = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp))).WaitAsync(Limit);
        Assert.Equal(Socks5Reply.HostUnreachable, error.Reply);
        Assert.Contains("h:80", error.Message, StringComparison.Ordinal);
        Assert.NotNull(created);
        Assert.Throws<ObjectDisposedException>(() => created.Send([1]));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a b")]
    [InlineData("ex\u00e4mple")]
    public void A_host_that_is_no_SOCKS5_domain_is_refused_before_anything_is_sent(string host)
        => Assert.Throws<ArgumentException>(() => Socks5Parser.ConnectRequest(host, 80));

    private static async Task<Socket> ConnectAsync(ScriptedServer server)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(server.EndPoint).WaitAsync(Limit);
        return client;
    }

    /// <summary>Accepts one connection, reads exactly <c>expected</c> bytes, writes <c>answer</c>, then closes.</summary>
    private sealed class ScriptedServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly Task _run;
        private readonly TaskCompletionSource<byte[]> _received = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ScriptedServer(int expected, byte[] answer)
        {
            _listener.Start();
            _run = RunAsync(expected, answer);
        }

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

        public Task<byte[]> Received => _received.Task;

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _run.WaitAsync(Limit);
        }

        private async Task RunAsync(int expected, byte[] answer)
        {
            try
            {
                using var socket = await _listener.AcceptSocketAsync().WaitAsync(Limit);
                var buffer = new byte[expected];
                var filled = 0;
                while (filled < expected)
                {
                    var read = await socket.ReceiveAsync(buffer.AsMemory(filled)).AsTask().WaitAsync(Limit);
                    if (read == 0)
                    {
                        break;
                    }

                    filled += read;
                }

                _received.TrySetResult(buffer[..filled]);
                await socket.SendAsync(answer.AsMemory()).AsTask().WaitAsync(Limit);
                socket.Shutdown(SocketShutdown.Send);
                await socket.ReceiveAsync(new byte[1].AsMemory()).AsTask().WaitAsync(Limit);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or TimeoutException)
            {
                _received.TrySetResult([]);
            }
        }
    }
}
