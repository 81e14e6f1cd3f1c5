namespace Mobility.Protocol.Tests.Transport;

/// <summary>The PUNCH frame (type 9, docs/protocol.md): a 4-byte attempt number, 1 or more; anything else is malformed.</summary>
public class PunchFrameTests
{
    [Fact]
    public void A_punch_body_is_its_attempt_number_big_endian()
    {
        Assert.Equal(1u, TransportFrame.ReadPunch([0, 0, 0, 1]));
        Assert.Equal(0x01020304u, TransportFrame.ReadPunch([1, 2, 3, 4]));
        Assert.Equal(uint.MaxValue, TransportFrame.ReadPunch([0xff, 0xff, 0xff, 0xff]));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(8)]
    public void A_punch_body_of_another_size_is_refused_in_the_envelope_and_by_the_reader(int length)
    {
        Assert.Throws<MalformedMessageException>(() => TransportFrame.CheckBodyLength(FrameType.Punch, length));
        Assert.Throws<MalformedMessageException>(() => TransportFrame.ReadPunch(new byte[length]));
    }

    [Fact]
    public void Attempt_zero_is_refused()
        => Assert.Throws<MalformedMessageException>(() => TransportFrame.ReadPunch([0, 0, 0, 0]));

    [Fact]
    public void A_punch_frame_seals_and_opens_like_any_frame()
    {
        var key = new byte[32];
        using var sealer = new FrameProtector(key, encrypt: true);
        using var opener = new FrameProtector(key, encrypt: true);
        var wire = new byte[TransportFrame.WireSize(4)];
        sealer.Seal(FrameType.Punch, 7, [0, 0, 0, 2], wire);

        var reader = new System.Buffers.SequenceReader<byte>(new System.Buffers.ReadOnlySequence<byte>(wire));
        Assert.True(TransportFrame.TryRead(ref reader, TransportConstants.MaxFrameLength, out var frame));
        var body = new byte[frame.BodyLength];
        Assert.True(opener.TryOpen(frame, body, new byte[wire.Length + 64]));

        Assert.Equal(FrameType.Punch, frame.Type);
        Assert.Equal(2u, TransportFrame.ReadPunch(body));
    }

    [Fact]
    public void The_punch_frames_flag_is_a_flag_bit_the_candidates_reader_ignores()
    {
        var body = DirectCandidates.Encode(punch: true, []);
        body[0] |= DirectCandidates.PunchFramesFlag;

        var (punch, candidates) = DirectCandidates.Read(body);

        Assert.True(punch);
        Assert.Empty(candidates);
        Assert.Equal(0x03, body[0]);
    }
}
