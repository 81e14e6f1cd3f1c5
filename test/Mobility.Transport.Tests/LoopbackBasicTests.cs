using System.Text;

namespace Mobility.Transport.Tests;

public class LoopbackBasicTests
{
    [Fact]
    public async Task Connect_by_endpoint_exchanges_data_and_closes()
    {
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var connector = new MobileConnector(Keys.Client);
        var acceptTask = listener.AcceptAsync().AsTask();
        await using var client = await connector.ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid).WithTimeout();
        await using var server = await acceptTask.WithTimeout();
        Assert.Equal(Keys.Client.Guid, server.RemoteGuid);
        Assert.Equal(Keys.Server.Guid, client.RemoteGuid);
        Assert.Equal(client.Token, server.Token);

        await client.Stream.WriteAsync(Encoding.ASCII.GetBytes("hello")).WithTimeout();
        var buffer = new byte[5];
        await server.Stream.ReadExactlyAsync(buffer).WithTimeout();
        Assert.Equal("hello", Encoding.ASCII.GetString(buffer));

        await server.Stream.WriteAsync(Encoding.ASCII.GetBytes("world")).WithTimeout();
        await client.Stream.ReadExactlyAsync(buffer).WithTimeout();
        Assert.Equal("world", Encoding.ASCII.GetString(buffer));

        var clientClose = client.CloseAsync();
        Assert.Equal(0, await server.Stream.ReadAsync(buffer).WithTimeout());
        await server.CloseAsync().WithTimeout();
        await clientClose.WithTimeout();
        Assert.Equal(MobileConnectionState.Completed, client.State);
        Assert.Equal(MobileConnectionState.Completed, server.State);
        Assert.Equal(0, await client.Stream.ReadAsync(buffer).WithTimeout());
    }

    [Fact]
    public async Task Available_counts_the_bytes_a_read_would_return_at_once_and_drops_with_each_read()
    {
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var connector = new MobileConnector(Keys.Client);
        var acceptTask = listener.AcceptAsync().AsTask();
        await using var client = await connector.ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid).WithTimeout();
        await using var server = await acceptTask.WithTimeout();
        Assert.Equal(0, server.Available);

        var data = new byte[100_000];
        Random.Shared.NextBytes(data);
        await client.Stream.WriteAsync(data).WithTimeout();
        await TestTimeout.Eventually(() => server.Available == data.Length, "all bytes are buffered at the server");

        // Published before a read returns: what the reader sees next is exact (nothing else reads).
        var first = new byte[40_000];
        await server.Stream.ReadExactlyAsync(first).WithTimeout();
        Assert.Equal(data.Length - first.Length, server.Available);
        var rest = new byte[data.Length];
        var n = await server.Stream.ReadAsync(rest).WithTimeout();
        Assert.Equal(data.Length - first.Length, n);
        Assert.Equal(0, server.Available);
        Assert.Equal(data, first.Concat(rest.Take(n)).ToArray());
    }

    [Fact]
    public async Task A_waiting_read_takes_every_frame_of_a_flow_read_not_only_the_first()
    {
        // 40,000 bytes written at once go out as two DATA frames (32,768 + 7,232) in one socket write, one loopback
        // segment, so the server's flow usually reads both at once. A read parked before they arrive is served once the
        // read's frames are all in: it returns all 40,000 bytes, where serving it per frame returned only the first 32,768.
        // A flow read that happens to split them is allowed for: some attempt out of ten must see both in one read.
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var data = new byte[40_000];
        var buffer = new byte[256 * 1024];
        var acceptTask = listener.AcceptAsync().AsTask();
        await using var client = await new MobileConnector(Keys.Client).ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid).WithTimeout();
        await using var server = await acceptTask.WithTimeout();
        var largest = 0;
        for (var attempt = 0; attempt < 10 && largest < data.Length; attempt++)
        {
            Random.Shared.NextBytes(data);
            var read = server.Stream.ReadAsync(buffer).AsTask();
            // The read is parked on the server's loop before a byte is written.
            await server.SettleAsync().WithTimeout();
            Assert.False(read.IsCompleted);
            await client.Stream.WriteAsync(data).WithTimeout();
            var n = await read.WithTimeout();
            largest = Math.Max(largest, n);
            var received = buffer.AsSpan(0, n).ToArray();
            if (n < data.Length)
            {
                var rest = new byte[data.Length - n];
                await server.Stream.ReadExactlyAsync(rest).WithTimeout();
                received = [.. received, .. rest];
            }

            Assert.Equal(data, received);
        }

        Assert.Equal(data.Length, largest);
    }
}
