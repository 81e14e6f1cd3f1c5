namespace Mobility.Transport.Tests.Connections;

/// <summary>DATAGRAM frames through the connection's loop, frame by frame, on the fake clock.</summary>
public sealed partial class ConnectionLoopTests
{
    [Fact]
    public async Task A_datagram_is_sealed_into_a_datagram_frame_and_counted()
    {
        await using var connection = Start();
        var payload = RandomNumberGenerator.GetBytes(1200);
        Assert.True(connection.SendDatagram(payload));
        Assert.Equal(payload, await ReceiveAsync(FrameType.Datagram));
        await connection.SettleAsync().WithTimeout();
        Assert.Equal(new DatagramStatistics(1, 0, 0, 0, 0), connection.Statistics.Datagrams);
        Assert.Equal(0, connection.Statistics.BytesSent);
    }

    [Fact]
    public async Task A_received_datagram_frame_is_delivered_whole_and_outside_the_stream()
    {
        await using var connection = Start();
        var payload = RandomNumberGenerator.GetBytes(700);
        await SendAsync(FrameType.Datagram, payload);
        var buffer = new byte[MobileConnection.MaxDatagramSize];
        var length = await connection.ReceiveDatagramAsync(buffer).AsTask().WithTimeout();
        Assert.Equal(payload, buffer[..length]);

        // The stream saw nothing: a datagram moves no offset (the next DATA at offset 0 is in order).
        await SendAsync(FrameType.Data, [.. U64(0), 1, 2, 3]);
        var read = new byte[3];
        await connection.Stream.ReadExactlyAsync(read).AsTask().WithTimeout();
        Assert.Equal(new byte[] { 1, 2, 3 }, read);
        Assert.Equal(3, connection.Statistics.BytesReceived);
        Assert.Equal(1, connection.Statistics.Datagrams.Received);
    }

    [Fact]
    public async Task A_short_buffer_gets_the_first_bytes_of_a_datagram_as_a_udp_socket_truncates()
    {
        await using var connection = Start();
        await SendAsync(FrameType.Datagram, [1, 2, 3, 4, 5]);
        var buffer = new byte[2];
        Assert.Equal(2, await connection.ReceiveDatagramAsync(buffer).AsTask().WithTimeout());
        Assert.Equal(new byte[] { 1, 2 }, buffer);
    }

    [Fact]
    public async Task Datagrams_pass_a_send_window_that_holds_the_stream_back()
    {
        await using var connection = Start(peerWindow: TransportConstants.MaxFramePayload);
        var write = connection.WriteAsync(new byte[4 * TransportConstants.MaxFramePayload]).AsTask();
        await ReceiveStreamAsync(TransportConstants.MaxFramePayload);
        await connection.SettleAsync().WithTimeout();
        Assert.False(write.IsCompleted);

        // The window is full (nothing acknowledged): datagrams still go out.
        for (var i = 0; i < 3; i++)
        {
            Assert.True(connection.SendDatagram([(byte)i]));
            Assert.Equal(new[] { (byte)i }, await ReceiveAsync(FrameType.Datagram));
        }

        Assert.False(write.IsCompleted);
        connection.Abort();
        await Assert.ThrowsAsync<MobileConnectionException>(() => write.WithTimeout());
    }

    [Fact]
    public async Task A_full_receive_queue_drops_and_counts_what_arrives_and_never_holds_more_than_its_bound()
    {
        await using var connection = Start();
        var sent = new MobileTransportOptions().DatagramQueueLength + 44;
        for (var i = 0; i < sent; i++)
        {
            await SendAsync(FrameType.Datagram, BitConverter.GetBytes(i));
        }

        await TestTimeout.Eventually(async () =>
        {
            await connection.SettleAsync();
            var stats = connection.Statistics.Datagrams;
            return stats.Received + stats.DroppedOnReceive == sent;
        }, "every datagram received or dropped");
        Assert.Equal(new DatagramStatistics(0, sent - 44, 0, 44, 0), connection.Statistics.Datagrams);

        // The oldest are kept, in order; after reading, new ones are taken again.
        var buffer = new byte[16];
        Assert.Equal(4, await connection.ReceiveDatagramAsync(buffer).AsTask().WithTimeout());
        Assert.Equal(0, BitConverter.ToInt32(buffer));
        await SendAsync(FrameType.Datagram, [9]);
        await TestTimeout.Eventually(async () =>
        {
            await connection.SettleAsync();
            return connection.Statistics.Datagrams.Received == sent - 43;
        }, "the new datagram taken");
    }

    [Fact]
    public async Task An_empty_datagram_frame_is_malformed_and_drops_the_path_but_not_the_connection()
    {
        await using var connection = Start();
        // Rejected from its header, before authentication: a DATAGRAM carries at least one byte.
        var frame = new byte[TransportFrame.WireSize(0)];
        TransportFrame.WriteHeader(frame, FrameType.Datagram, ++_peerCounter, 0);
        await _flow.Incoming.WriteAsync(frame);
        await TestTimeout.Eventually(async () =>
        {
            await connection.SettleAsync();
            return connection.State == MobileConnectionState.Pathless;
        }, "the path dropped");
        Assert.Null(connection.Failure);

        // Pathless: a datagram is dropped at once and counted.
        Assert.False(connection.SendDatagram([1]));
        Assert.Equal(1, connection.Statistics.Datagrams.DroppedPathless);
    }

    [Fact]
    public async Task Datagrams_of_no_bytes_or_over_the_maximum_are_refused_by_the_api()
    {
        await using var connection = Start();
        Assert.Throws<ArgumentOutOfRangeException>(() => connection.SendDatagram([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => connection.SendDatagram(new byte[MobileConnection.MaxDatagramSize + 1]));
        Assert.True(connection.SendDatagram(new byte[MobileConnection.MaxDatagramSize]));
        Assert.Equal(MobileConnection.MaxDatagramSize, (await ReceiveAsync(FrameType.Datagram)).Length);
    }

    [Fact]
    public async Task A_failed_connection_refuses_sends_and_ends_a_waiting_receive()
    {
        var connection = Start();
        var receive = connection.ReceiveDatagramAsync(new byte[16]).AsTask();
        await SendAsync(FrameType.Reset, [0, 0, 0, 7]);
        await Assert.ThrowsAsync<MobileConnectionException>(() => receive.WithTimeout());
        Assert.Throws<MobileConnectionException>(() => connection.SendDatagram([1]));
        await connection.DisposeAsync().AsTask().WithTimeout();
    }
}
