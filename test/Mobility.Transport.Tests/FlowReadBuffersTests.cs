using System.IO.Pipelines;
using Mobility.Transport.Internal;

namespace Mobility.Transport.Tests;

/// <summary>A flow's reads: 64 KiB while a listener's peer is unauthenticated, up to 256 KiB once it is (and on the client from the start).</summary>
public class FlowReadBuffersTests
{
    private static async Task<int> ReadOnceAsync(PipeReader reader)
    {
        var result = await reader.ReadAsync().AsTask().WithTimeout();
        var length = (int)result.Buffer.Length;
        reader.AdvanceTo(result.Buffer.End);
        return length;
    }

    [Fact]
    public async Task A_listener_flow_reads_at_most_64_KiB_until_it_starts_bulk_then_up_to_256_KiB()
    {
        using var source = new MemoryStream(new byte[1024 * 1024]);
        var buffers = new FlowReadBuffers(bulk: false);
        var reader = buffers.CreateReader(source);

        // A stalled or hostile peer before authentication holds no more than one 64 KiB buffer.
        Assert.Equal(FlowReadBuffers.HandshakeSize, await ReadOnceAsync(reader));
        Assert.Equal(FlowReadBuffers.HandshakeSize, await ReadOnceAsync(reader));

        buffers.StartBulk();
        Assert.Equal(FlowReadBuffers.BulkSize, await ReadOnceAsync(reader));
        await reader.CompleteAsync();
    }

    [Fact]
    public async Task A_client_flow_reads_up_to_256_KiB_from_the_start()
    {
        using var source = new MemoryStream(new byte[1024 * 1024]);
        var reader = FlowReadBuffers.CreateReader(source, bulk: true);
        Assert.Equal(FlowReadBuffers.BulkSize, await ReadOnceAsync(reader));
        await reader.CompleteAsync();
    }
}
