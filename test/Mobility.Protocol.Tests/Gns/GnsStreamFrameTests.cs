namespace Mobility.Protocol.Tests.Gns;

/// <summary>The framing of the GNS datagram protocol on a stream (docs/protocol.md, "GNS over TLS").</summary>
public sealed class GnsStreamFrameTests
{
    [Fact]
    public void A_frame_is_a_16_bit_big_endian_length_then_the_datagram()
    {
        var datagram = GnsDatagram.Reflect(0x01020304);
        var frame = GnsStreamFrame.Frame(datagram);
        Assert.Equal(new byte[] { 0x00, (byte)datagram.Length }, frame[..2]);
        Assert.Equal(datagram, frame[2..]);
    }

    [Fact]
    public void Two_frames_are_read_one_at_a_time_and_a_partial_one_waits()
    {
        var first = GnsStreamFrame.Frame(GnsDatagram.Reflect(1));
        var second = GnsStreamFrame.Frame(GnsDatagram.Reflect(2, padTo: 40));
        var bytes = first.Concat(second).ToArray();
        // Split across segments and byte by byte: the fuzz target gns-stream (fuzz/corpus/gns-stream/valid-lookup-then-reflect).
        var buffer = new ReadOnlySequence<byte>(bytes);

        Assert.True(GnsStreamFrame.TryRead(buffer, out var message, out var consumed));
        Assert.Equal(first[2..], message.ToArray());
        buffer = buffer.Slice(consumed);
        Assert.True(GnsStreamFrame.TryRead(buffer, out message, out consumed));
        Assert.Equal(second[2..], message.ToArray());
        Assert.Equal(buffer.End, consumed);

        for (var cut = 0; cut < second.Length; cut++)
        {
            Assert.False(GnsStreamFrame.TryRead(new ReadOnlySequence<byte>(second, 0, cut), out message, out consumed));
            Assert.True(message.IsEmpty);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(GnsDatagram.MaxDatagramSize + 1)]
    [InlineData(ushort.MaxValue)]
    public void A_length_of_zero_or_above_the_largest_datagram_is_malformed_before_any_body_arrives(int length)
    {
        var prefix = new byte[] { (byte)(length >> 8), (byte)length };
        Assert.Throws<MalformedMessageException>(() => GnsStreamFrame.TryRead(new ReadOnlySequence<byte>(prefix), out _, out _));
        Assert.Throws<ArgumentException>(() => GnsStreamFrame.Frame(new byte[Math.Min(length, ushort.MaxValue)]));
    }

    [Fact]
    public void The_largest_datagram_fits_a_frame()
    {
        var frame = GnsStreamFrame.Frame(new byte[GnsDatagram.MaxDatagramSize]);
        Assert.Equal(GnsStreamFrame.MaxFrameSize, frame.Length);
        Assert.True(GnsStreamFrame.TryRead(new ReadOnlySequence<byte>(frame), out var message, out _));
        Assert.Equal(GnsDatagram.MaxDatagramSize, message.Length);
    }
}
