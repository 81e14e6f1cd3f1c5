using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using System.Net;

namespace Mobility.Transport.Tests;

/// <summary>The bulk output buffer is rented at a size class of the shared array pool, not rounded up to the next one.</summary>
public class OutputBufferTests
{
    [Fact]
    public void Batch_with_its_last_frame_and_a_fin_fits_the_buffer_which_is_a_pool_size_class()
    {
        Assert.True(MobileConnection.OutputBatchSize + (2 * Protocol.Transport.TransportConstants.MaxFrameWireSize) <= MobileConnection.OutputBufferSize);
        var rented = System.Buffers.ArrayPool<byte>.Shared.Rent(MobileConnection.OutputBufferSize);
        System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        Assert.Equal(MobileConnection.OutputBufferSize, rented.Length);
    }

    [Fact]
    public async Task Bulk_transfer_rents_no_buffer_larger_than_the_output_buffer()
    {
        using var rentals = new PoolRentals();
        await using var listener = new MobileListener(Keys.Server);
        listener.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var acceptTask = listener.AcceptAsync().AsTask();
        await using var client = await new MobileConnector(Keys.Client).ConnectAsync(listener.LocalEndPoint, Keys.Server.Guid).WithTimeout();
        await using var server = await acceptTask.WithTimeout();

        var receive = PatternSource.ReceiveAsync(server.Stream);
        var sent = await PatternSource.SendAsync(client.Stream, 4L << 20, seed: 7).WithTimeout();
        var clientClose = client.CloseAsync();
        var (length, hash) = await receive.WithTimeout();
        await server.CloseAsync().WithTimeout();
        await clientClose.WithTimeout();

        Assert.Equal(4L << 20, length);
        Assert.Equal(sent, hash);
        Assert.Contains(MobileConnection.OutputBufferSize, rentals.Sizes);
        Assert.DoesNotContain(rentals.Sizes, size => size > MobileConnection.OutputBufferSize);
    }

    /// <summary>Lengths of the arrays rented from any array pool while it listens (the runtime's ArrayPoolEventSource).</summary>
    private sealed class PoolRentals : EventListener
    {
        public ConcurrentBag<int> Sizes { get; } = [];

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == "System.Buffers.ArrayPoolEventSource")
            {
                EnableEvents(eventSource, EventLevel.Verbose);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs eventData)
        {
            if (eventData.EventName == "BufferRented" && eventData.Payload is [_, int size, ..])
            {
                // EventListener's base constructor enables the source, so an event can come before Sizes is set.
                Sizes?.Add(size);
            }
        }
    }
}
