using System.Net;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Tests;

/// <summary>
/// <see cref="IFlow.UnsentBytes"/> on a real TCP flow (loopback, Linux): what a lost path's last writes never put on the
/// wire, from TCP_INFO's tcpi_notsent_bytes. Where the resume's first flight starts depends on it (docs/transport.md,
/// "The first flight").
/// </summary>
public sealed class UnsentBytesTests
{
    [Fact]
    public async Task A_flow_whose_peer_stops_reading_counts_the_bytes_its_kernel_could_not_send()
    {
        await using var listener = new TcpFlowListener(new IPEndPoint(IPAddress.Loopback, 0));
        var accepting = listener.AcceptAsync(CancellationToken.None).AsTask();
        await using var client = await TcpFlowFactory.Instance.ConnectAsync(listener.LocalEndPoint, null, CancellationToken.None)
            .AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        await using var accepted = await accepting.WaitAsync(TimeSpan.FromSeconds(30));

        // Nothing written: nothing unsent.
        Assert.Equal(0, client.UnsentBytes);

        // The peer never reads: once its receive window is full, what the client writes stays in its own queue, unsent.
        var chunk = new byte[64 * 1024];
        long written = 0;
        using var stop = new CancellationTokenSource();
        // The loop only ends by throwing: a cancelled token fails the next write even when the kernel had room for it.
        var writing = Task.Run(async () =>
        {
            while (true)
            {
                await client.Stream.WriteAsync(chunk, stop.Token);
                Interlocked.Add(ref written, chunk.Length);
            }
        });

        await TestTimeout.Eventually(() => client.UnsentBytes > 0, "bytes stay in the client's queue once the peer's window is full");
        var unsent = client.UnsentBytes!.Value;
        Assert.InRange(unsent, 1, Interlocked.Read(ref written) + chunk.Length);

        await stop.CancelAsync();
        client.Abort();
        await Assert.ThrowsAnyAsync<Exception>(() => writing);
    }
}
