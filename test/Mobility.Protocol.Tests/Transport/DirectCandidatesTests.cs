using System.Net;

namespace Mobility.Protocol.Tests.Transport;

public class DirectCandidatesTests
{
    private static readonly DirectCandidate[] Sample =
    [
        new(DirectCandidateKind.Reflexive, IPEndPoint.Parse("198.51.100.7:40000")),
        new(DirectCandidateKind.Local, IPEndPoint.Parse("[2001:db8::5]:7000")),
        new(DirectCandidateKind.Mapped, IPEndPoint.Parse("203.0.113.9:1234")),
    ];

    [Fact]
    public void Candidates_round_trip_with_the_punch_flag()
    {
        var body = DirectCandidates.Encode(punch: true, Sample);
        var (punch, candidates) = DirectCandidates.Read(body);

        Assert.True(punch);
        Assert.Equal(Sample, candidates);
        Assert.Equal(body.Length, DirectCandidates.BodyLength(Sample));
    }

    [Fact]
    public void Body_is_pinned_byte_by_byte()
    {
        var body = DirectCandidates.Encode(punch: false, [new(DirectCandidateKind.Reflexive, IPEndPoint.Parse("198.51.100.7:40000"))]);

        Assert.Equal("00" + "01" + "02" + "04" + "9c40" + "c6336407", Convert.ToHexStringLower(body));
    }

    [Fact]
    public void Empty_list_withdraws_the_candidates()
    {
        var (punch, candidates) = DirectCandidates.Read([0, 0]);

        Assert.False(punch);
        Assert.Empty(candidates);
    }

    [Fact]
    public void Unknown_flag_bits_are_ignored()
    {
        Assert.False(DirectCandidates.Read([0xfe, 0]).Punch);
        Assert.True(DirectCandidates.Read([0xff, 0]).Punch);
    }

    [Fact]
    public void Every_truncation_is_malformed()
    {
        var body = DirectCandidates.Encode(punch: true, Sample);
        for (var length = 0; length < body.Length; length++)
        {
            Assert.Throws<MalformedMessageException>(() => DirectCandidates.Read(body.AsSpan(0, length)));
        }
    }

    [Fact]
    public void Trailing_bytes_are_malformed()
    {
        var body = DirectCandidates.Encode(punch: true, Sample);

        Assert.Throws<MalformedMessageException>(() => DirectCandidates.Read([.. body, 0]));
    }

    [Fact]
    public void A_count_over_the_cap_is_refused_before_reading_entries()
    {
        var body = new byte[DirectCandidates.MaxBodyLength];
        body[1] = DirectCandidates.MaxCount + 1;

        Assert.Throws<MalformedMessageException>(() => DirectCandidates.Read(body));
        Assert.Throws<MalformedMessageException>(() => DirectCandidates.Read(new byte[DirectCandidates.MaxBodyLength + 1]));
    }

    [Theory]
    [InlineData("0001" + "09" + "04" + "9c40" + "c6336407")] // unknown kind
    [InlineData("0001" + "00" + "04" + "9c40" + "c6336407")] // kind 0
    [InlineData("0001" + "02" + "05" + "9c40" + "c6336407")] // unknown family
    [InlineData("0001" + "02" + "04" + "0000" + "c6336407")] // port 0
    [InlineData("0001" + "02" + "04" + "9c40" + "00000000")] // 0.0.0.0
    [InlineData("0001" + "02" + "04" + "9c40" + "ffffffff")] // broadcast
    [InlineData("0001" + "02" + "04" + "9c40" + "e0000001")] // IPv4 multicast
    [InlineData("0001" + "02" + "06" + "9c40" + "ff020000000000000000000000000001")] // IPv6 multicast
    [InlineData("0001" + "02" + "06" + "9c40" + "00000000000000000000000000000000")] // ::
    [InlineData("0001" + "02" + "06" + "9c40" + "00000000000000000000ffffc6336407")] // IPv4-mapped: not canonical
    public void Hostile_entries_are_malformed(string hex)
    {
        Assert.Throws<MalformedMessageException>(() => DirectCandidates.Read(Convert.FromHexString(hex)));
    }

    [Fact]
    public void Random_bytes_only_parse_or_throw_malformed()
    {
        var random = new Random(16);
        for (var i = 0; i < 20_000; i++)
        {
            var body = new byte[random.Next(0, DirectCandidates.MaxBodyLength + 4)];
            random.NextBytes(body);
            if (body.Length > 1)
            {
                body[1] = (byte)random.Next(0, 10);
            }

            try
            {
                var (_, candidates) = DirectCandidates.Read(body);
                Assert.True(candidates.Length <= DirectCandidates.MaxCount);
            }
            catch (MalformedMessageException)
            {
            }
        }
    }

    [Fact]
    public void Writer_refuses_what_the_reader_would_refuse()
    {
        Assert.Throws<ArgumentException>(() => DirectCandidates.Encode(false, [new(DirectCandidateKind.Local, new IPEndPoint(IPAddress.Any, 1))]));
        Assert.Throws<ArgumentException>(() => DirectCandidates.Encode(false, [new(DirectCandidateKind.Local, IPEndPoint.Parse("192.0.2.1:0"))]));
        Assert.Throws<ArgumentException>(() => DirectCandidates.Encode(false, [.. Enumerable.Repeat(Sample[0], DirectCandidates.MaxCount + 1)]));
    }

    [Fact]
    public void Candidates_frame_body_length_is_checked_in_the_envelope()
    {
        TransportFrame.CheckBodyLength(FrameType.Candidates, 2);
        TransportFrame.CheckBodyLength(FrameType.Candidates, DirectCandidates.MaxBodyLength);
        Assert.Throws<MalformedMessageException>(() => TransportFrame.CheckBodyLength(FrameType.Candidates, 1));
        Assert.Throws<MalformedMessageException>(() => TransportFrame.CheckBodyLength(FrameType.Candidates, DirectCandidates.MaxBodyLength + 1));
    }
}
