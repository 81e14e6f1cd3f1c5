namespace Mobility.Protocol.Tests.Records;

public class GnsRemovalTests
{
    [Fact]
    public void Removal_from_the_test_vector_inputs_encodes_to_the_documented_bytes_and_pinned_signature()
    {
        using var key = Test1Key();

        var removal = GnsRemoval.Create(key, RemovalVersion, IssuedAt);

        Assert.Equal(101, GnsRemoval.EncodedSize);
        Assert.Equal(Convert.ToHexStringLower(SignedRemoval()),
            Convert.ToHexStringLower(removal.Encoded.Span));
        Assert.True(removal.Verify(key.PublicKey));
    }

    [Fact]
    public void Test_vector_bytes_decode_to_the_fields_and_verify()
    {
        var bytes = SignedRemoval();

        var removal = GnsRemoval.Decode(bytes);

        Assert.Equal(HostGuid.Parse(Test1Guid), removal.Guid);
        Assert.Equal(RemovalVersion, removal.Version);
        Assert.Equal(IssuedAt, removal.IssuedAt);
        Assert.Equal(bytes, removal.Encoded.ToArray());
        Assert.True(removal.Verify(Convert.FromHexString(Rfc8032Test1PublicKey)));
    }

    [Fact]
    public void Created_removal_round_trips()
    {
        using var key = HostKey.Generate();
        var removal = GnsRemoval.Create(key, ulong.MaxValue, DateTimeOffset.UnixEpoch);

        var decoded = GnsRemoval.Decode(removal.Encoded.Span);

        Assert.Equal(key.Guid, decoded.Guid);
        Assert.Equal(ulong.MaxValue, decoded.Version);
        Assert.Equal(DateTimeOffset.UnixEpoch, decoded.IssuedAt);
        Assert.Equal(removal.Encoded.ToArray(), decoded.Encoded.ToArray());
        Assert.True(decoded.Verify(key.PublicKey));
    }

    [Fact]
    public void Removal_does_not_verify_under_another_key()
    {
        using var key = Test1Key();
        using var other = HostKey.Generate();
        var removal = GnsRemoval.Create(key, 2, IssuedAt);

        Assert.False(removal.Verify(other.PublicKey));
    }

    [Fact]
    public void Removal_for_another_guid_signed_by_the_presented_key_is_rejected()
    {
        using var attacker = Test1Key();
        using var victim = HostKey.Generate();
        var bytes = RecordBytes.Signed(attacker, SigningContext.GnsRemove, RecordBytes.RemovalBody(victim.Guid, 9, IssuedAtMs));

        var removal = GnsRemoval.Decode(bytes);

        Assert.Equal(victim.Guid, removal.Guid);
        Assert.False(removal.Verify(attacker.PublicKey));
        Assert.False(removal.Verify(victim.PublicKey));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    public void Verify_with_a_public_key_of_wrong_length_is_false(int length)
    {
        using var key = Test1Key();
        var removal = GnsRemoval.Create(key, 2, IssuedAt);

        Assert.False(removal.Verify(new byte[length]));
    }

    [Fact]
    public void Signature_made_under_the_record_context_does_not_verify_as_a_removal()
    {
        using var key = Test1Key();
        var body = RemovalBody();

        var underRecord = GnsRemoval.Decode(RecordBytes.Signed(key, SigningContext.GnsRecord, body));
        var withoutContext = GnsRemoval.Decode([.. body, .. key.Sign(body)]);
        var underRemove = GnsRemoval.Decode(RecordBytes.Signed(key, SigningContext.GnsRemove, body));

        Assert.False(underRecord.Verify(key.PublicKey));
        Assert.False(withoutContext.Verify(key.PublicKey));
        Assert.True(underRemove.Verify(key.PublicKey));
    }

    [Fact]
    public void Flipping_any_bit_of_a_removal_makes_it_undecodable_or_unverifiable()
    {
        using var key = Test1Key();
        var good = GnsRemoval.Create(key, RemovalVersion, IssuedAt).Encoded.ToArray();

        foreach (var (bit, decoded) in RecordBytes.DecodableBitFlips(good, bad => GnsRemoval.Decode(bad)))
        {
            Assert.False(decoded.Verify(key.PublicKey), $"bit {bit} flipped and the removal still verifies");
        }
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(253402300800000L)]
    public void Decode_refuses_an_issue_time_outside_the_representable_range(long issuedMs)
    {
        using var key = Test1Key();
        var bytes = RecordBytes.Signed(key, SigningContext.GnsRemove, RecordBytes.RemovalBody(key.Guid, 1, issuedMs));

        Assert.Throws<MalformedMessageException>(() => GnsRemoval.Decode(bytes));
    }

    [Fact]
    public void Create_refuses_an_issue_time_before_1970_that_no_reader_would_accept()
    {
        using var key = HostKey.Generate();

        Assert.Throws<ArgumentOutOfRangeException>(() => GnsRemoval.Create(key, 1, DateTimeOffset.UnixEpoch.AddMilliseconds(-1)));
    }

    [Fact]
    public void Decode_refuses_trailing_bytes_but_Read_leaves_them_to_the_caller()
    {
        using var key = Test1Key();
        byte[] withTrailer = [.. GnsRemoval.Create(key, 1, IssuedAt).Encoded.Span, 0];

        Assert.Throws<MalformedMessageException>(() => GnsRemoval.Decode(withTrailer));
        var reader = new WireReader(withTrailer);
        GnsRemoval.Read(ref reader);
        Assert.Equal(1, reader.Remaining);
    }
}
