using System.Buffers.Binary;
using System.Text;
using Mobility.Daemon.Transparent;

namespace Mobility.Daemon.FunctionalTests.Transparent;

/// <summary>mobilityd's DNS stub on real UDP and TCP sockets (loopback, a port the kernel picks).</summary>
public sealed class DnsStubTests
{
    private static async Task<(DaemonInstance Peer, DaemonInstance Daemon, IPEndPoint Stub)> StartAsync(params string[] extra)
    {
        var gns = new FakeGns();
        var peer = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--name", "stub-peer"]);
        var daemon = await DaemonInstance.StartAsync(gns.CreateClient(), extraArgs: ["--Transparent:Dns", "127.0.0.1:0", .. extra]);
        await TestTimeout.Eventually(() => gns.Get(peer.Guid) is not null, "the peer registered");
        return (peer, daemon, daemon.Services.GetRequiredService<DnsStub>().LocalEndPoint!);
    }

    private static byte[] Query(string name, ushort id)
    {
        var bytes = new List<byte> { (byte)(id >> 8), (byte)id, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0 };
        foreach (var label in name.Split('.'))
        {
            bytes.Add((byte)label.Length);
            bytes.AddRange(Encoding.ASCII.GetBytes(label));
        }

        bytes.AddRange([0, 0, 1, 0, 1]);
        return [.. bytes];
    }

    private static byte[] Framed(byte[] message) => [(byte)(message.Length >> 8), (byte)message.Length, .. message];

    private static async Task<byte[]> ReadFrameAsync(NetworkStream stream)
    {
        var prefix = new byte[2];
        await stream.ReadExactlyAsync(prefix).AsTask().WithTimeout();
        var message = new byte[BinaryPrimitives.ReadUInt16BigEndian(prefix)];
        await stream.ReadExactlyAsync(message).AsTask().WithTimeout();
        return message;
    }

    [Fact]
    public async Task Over_tcp_a_connection_carries_several_queries_and_a_runt_frame_closes_only_that_connection()
    {
        var (peer, daemon, stub) = await StartAsync();
        await using var _ = peer;
        await using var __ = daemon;

        using (var client = new TcpClient())
        {
            await client.ConnectAsync(stub).WithTimeout();
            var stream = client.GetStream();
            // Two queries in one write: the second waits in the stream while the first is answered.
            await stream.WriteAsync((byte[])[.. Framed(Query("stub-peer.mob", 1)), .. Framed(Query(peer.Guid + ".guid", 2))]).AsTask().WithTimeout();
            var first = await ReadFrameAsync(stream);
            var second = await ReadFrameAsync(stream);

            Assert.Equal((1, 0, 1), (BinaryPrimitives.ReadUInt16BigEndian(first), first[3] & 0xF, BinaryPrimitives.ReadUInt16BigEndian(first.AsSpan(6))));
            Assert.Equal((2, 0), (BinaryPrimitives.ReadUInt16BigEndian(second), second[3] & 0xF));
            Assert.Equal(first[^4..], second[^4..]);
            Assert.Equal(100, first[^4]);

            await stream.WriteAsync(new byte[] { 0, 3, 1, 2, 3 }).AsTask().WithTimeout();
            Assert.Equal(0, await stream.ReadAsync(new byte[1]).AsTask().WithTimeout());
        }

        using var udp = new UdpClient();
        udp.Connect(stub);
        await udp.SendAsync(Query("stub-peer.mob", 3)).WithTimeout();
        var answer = (await udp.ReceiveAsync().WithTimeout()).Buffer;
        Assert.Equal(3, BinaryPrimitives.ReadUInt16BigEndian(answer));
        Assert.Equal(0, answer[3] & 0xF);
    }

    [Fact]
    public async Task A_flood_from_one_source_gets_its_burst_answered_and_the_rest_dropped_and_garbage_changes_nothing()
    {
        // A rate so low that no token comes back during the test: exactly the burst is answered.
        var (peer, daemon, stub) = await StartAsync("--Transparent:QueriesPerSecond", "0.001", "--Transparent:QueryBurst", "3");
        await using var _ = peer;
        await using var __ = daemon;
        using var udp = new UdpClient();
        udp.Connect(stub);

        await udp.SendAsync(new byte[] { 0xFF }).WithTimeout();
        await udp.SendAsync(new byte[4000]).WithTimeout();
        for (ushort id = 10; id < 40; id++)
        {
            await udp.SendAsync(Query("stub-peer.mob", id)).WithTimeout();
        }

        var answered = new List<ushort>();
        using var quiet = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            while (true)
            {
                var received = await udp.ReceiveAsync(quiet.Token);
                answered.Add(BinaryPrimitives.ReadUInt16BigEndian(received.Buffer));
            }
        }
        catch (OperationCanceledException)
        {
        }

        // The one-octet datagram is dropped (no header), the 4000 zero octets get FORMERR (id 0): both spent a token.
        Assert.Equal([0, 10], answered.Order().ToArray());
        daemon.Logs.AssertNoWarningsOrErrors();
    }
}
