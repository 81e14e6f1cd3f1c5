using System.Buffers.Binary;

namespace Mobility.Protocol.Tests.Transport;

public class FrameTests
{
    private static readonly byte[] Key = Enumerable.Range(100, 32).Select(i => (byte)i).ToArray();

    private static byte[] Frame(FrameProtector protector, FrameType type, ulong counter, byte[] body)
    {
        var bytes = new byte[TransportFrame.WireSize(body.Length)];
        Assert.Equal(bytes.Length, protector.Seal(type, counter, body, bytes));
        return bytes;
    }

    private static byte[] DataBody(ulong offset, int payload)
    {
        var body = new byte[8 + payload];
        BinaryPrimitives.WriteUInt64BigEndian(body, offset);
        new Random(payload).NextBytes(body.AsSpan(8));
        return body;
    }

    private static bool TryRead(byte[] bytes, out RawFrame frame, out long consumed, int max = TransportConstants.MaxFrameLength)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        var ok = TransportFrame.TryRead(ref reader, max, out frame);
        consumed = reader.Consumed;
        return ok;
    }

    private static byte[]? Open(FrameProtector protector, byte[] bytes)
    {
        Assert.True(TryRead(bytes, out var frame, out _));
        var body = new byte[frame.BodyLength];
        var scratch = new byte[TransportConstants.MaxFrameWireSize];
        return protector.TryOpen(frame, body, scratch) ? body : null;
    }

    public static TheoryData<bool> Modes => new() { true, false };

    public static IEnumerable<object[]> Samples()
    {
        foreach (var encrypt in new[] { true, false })
        {
            yield return new object[] { encrypt, FrameType.Data, DataBody(12345, 100) };
            yield return new object[] { encrypt, FrameType.Data, DataBody(0, TransportConstants.MaxFramePayload) };
            yield return new object[] { encrypt, FrameType.Ack, new byte[16] };
            yield return new object[] { encrypt, FrameType.Fin, new byte[8] };
            yield return new object[] { encrypt, FrameType.Ping, new byte[8] };
            yield return new object[] { encrypt, FrameType.Pong, new byte[8] };
            yield return new object[] { encrypt, FrameType.Reset, new byte[4] };
            yield return new object[] { encrypt, FrameType.Datagram, Enumerable.Range(0, 1200).Select(i => (byte)i).ToArray() };
            yield return new object[] { encrypt, FrameType.Datagram, new byte[] { 42 } };
            yield return new object[] { encrypt, FrameType.Datagram, new byte[TransportConstants.MaxDatagramPayload] };
        }
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void Every_frame_type_round_trips(bool encrypt, FrameType type, byte[] body)
    {
        using var protector = new FrameProtector(Key, encrypt);
        var bytes = Frame(protector, type, 77, body);
        Assert.True(TryRead([.. bytes, 1, 2, 3], out var frame, out var consumed));
        Assert.Equal(bytes.Length, consumed);
        Assert.Equal(type, frame.Type);
        Assert.Equal(77UL, frame.Counter);
        Assert.Equal(body, Open(protector, bytes));
        if (encrypt && body.Length > 16)
        {
            Assert.False(bytes.AsSpan(TransportConstants.FrameHeaderSize).IndexOf(body.AsSpan(8, 16)) >= 0, "payload visible in an encrypted frame");
        }
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void Sealing_in_place_gives_the_same_bytes_as_sealing_a_separate_body(bool encrypt, FrameType type, byte[] body)
    {
        using var protector = new FrameProtector(Key, encrypt);
        var expected = Frame(protector, type, 91, body);
        var inPlace = new byte[expected.Length + 5];
        body.CopyTo(inPlace, TransportConstants.FrameHeaderSize);
        Assert.Equal(expected.Length, protector.SealInPlace(type, 91, body.Length, inPlace));
        Assert.Equal(expected, inPlace.AsSpan(0, expected.Length).ToArray());
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void Truncation_at_every_offset_asks_for_more(bool encrypt, FrameType type, byte[] body)
    {
        using var protector = new FrameProtector(Key, encrypt);
        var bytes = Frame(protector, type, 1, body);
        var step = bytes.Length > 1000 ? 97 : 1;
        for (var length = 0; length < bytes.Length; length += step)
        {
            Assert.False(TryRead(bytes[..length], out _, out var consumed), $"accepted a frame cut at {length}");
            Assert.Equal(0, consumed);
        }
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void Any_flipped_bit_fails_authentication(bool encrypt, FrameType type, byte[] body)
    {
        using var protector = new FrameProtector(Key, encrypt);
        var bytes = Frame(protector, type, 5, body);
        var step = bytes.Length > 1000 ? 101 : 1;
        for (var i = 4; i < bytes.Length; i += step)
        {
            var tampered = (byte[])bytes.Clone();
            tampered[i] ^= 0x20;
            try
            {
                Assert.Null(Open(protector, tampered));
            }
            catch (MalformedMessageException)
            {
                // A flipped type byte can make the body size invalid for the type: also a rejection.
            }
        }

        using var otherKey = new FrameProtector(Enumerable.Repeat((byte)9, 32).ToArray(), encrypt);
        Assert.Null(Open(otherKey, bytes));
    }

    [Fact]
    public void Oversized_length_is_rejected_from_the_length_field_alone()
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, TransportConstants.MaxFrameLength + 1);
        Assert.Throws<MalformedMessageException>(() => TryRead(bytes, out _, out _));
        BinaryPrimitives.WriteUInt32BigEndian(bytes, uint.MaxValue);
        Assert.Throws<MalformedMessageException>(() => TryRead(bytes, out _, out _));
        BinaryPrimitives.WriteUInt32BigEndian(bytes, 3);
        Assert.Throws<MalformedMessageException>(() => TryRead(bytes, out _, out _));
        BinaryPrimitives.WriteUInt32BigEndian(bytes, 1000);
        Assert.Throws<MalformedMessageException>(() => TryRead(bytes, out _, out _, max: 999));
    }

    [Theory]
    [InlineData(FrameType.Ack, 8)]
    [InlineData(FrameType.Fin, 16)]
    [InlineData(FrameType.Data, 8)]
    [InlineData(FrameType.Reset, 8)]
    [InlineData(FrameType.Datagram, 0)]
    [InlineData(FrameType.Datagram, TransportConstants.MaxDatagramPayload + 1)]
    [InlineData((FrameType)0, 8)]
    [InlineData((FrameType)99, 8)]
    public void Body_sizes_that_do_not_fit_the_type_are_malformed(FrameType type, int bodyLength)
    {
        var bytes = new byte[TransportFrame.WireSize(bodyLength)];
        TransportFrame.WriteHeader(bytes, type, 1, bodyLength);
        Assert.Throws<MalformedMessageException>(() => TryRead(bytes, out _, out _));
    }

    [Fact]
    public void Ack_with_consumed_beyond_received_is_malformed()
    {
        var body = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(body, 10);
        BinaryPrimitives.WriteUInt64BigEndian(body.AsSpan(8), 11);
        Assert.Throws<MalformedMessageException>(() => TransportFrame.ReadAck(body));
    }

    [Fact]
    public void Random_bytes_never_throw_anything_but_malformed()
    {
        using var protector = new FrameProtector(Key, encrypt: true);
        var random = new Random(99);
        var scratch = new byte[TransportConstants.MaxFrameWireSize];
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = new byte[random.Next(0, 200)];
            random.NextBytes(bytes);
            if (i % 2 == 0 && bytes.Length >= 4)
            {
                BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)random.Next(0, bytes.Length));
            }

            try
            {
                if (TryRead(bytes, out var frame, out _))
                {
                    Assert.False(protector.TryOpen(frame, new byte[frame.BodyLength], scratch));
                }
            }
            catch (MalformedMessageException)
            {
            }
        }
    }
}
