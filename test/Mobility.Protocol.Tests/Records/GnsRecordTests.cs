namespace Mobility.Protocol.Tests.Records;

public class GnsRecordTests
{
    [Fact]
    public void Record_from_the_test_vector_inputs_encodes_to_the_documented_bytes_and_pinned_signature()
    {
        using var key = Test1Key();

        var record = Record(key);

        var body = RecordBody();
        Assert.Equal(138, body.Length);
        Assert.Equal(Convert.ToHexStringLower(body), Convert.ToHexStringLower(record.Encoded.Span[..^64]));
        Assert.Equal(RecordSignature, Convert.ToHexStringLower(record.Signature));
        Assert.Equal(SignedRecord(), record.Encoded.ToArray());
        Assert.True(record.Verify());
    }

    [Fact]
    public void Test_vector_bytes_decode_to_the_fields_and_verify()
    {
        var bytes = SignedRecord();

        var record = GnsRecord.Decode(bytes);

        Assert.Equal(HostGuid.Parse(Test1Guid), record.Guid);
        Assert.Equal(Rfc8032Test1PublicKey, Convert.ToHexStringLower(record.PublicKey.Span));
        Assert.Equal(RecordVersion, record.Version);
        Assert.Equal(IssuedAt, record.IssuedAt);
        Assert.Equal(RecordTtl, record.TtlSeconds);
        Assert.Equal(RecordName, record.Name);
        Assert.Equal(RecordLocators, record.Locators);
        Assert.Equal(bytes, record.Encoded.ToArray());
        Assert.True(record.Verify());
    }

    public static TheoryData<string?, string[]> Shapes() => new()
    {
        { null, [] },
        { "laptop", ["192.0.2.1:1/host"] },
        { null, ["[2001:db8::1]:65535/observed"] },
        { "x", ["10.0.0.1:4433/host", "[2001:db8::2]:4433/host", "203.0.113.9:61000/observed", "[2001:db8::99]:443/relay"] },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Created_record_decodes_to_the_same_fields_and_bytes(string? name, string[] locatorTexts)
    {
        using var key = HostKey.Generate();
        var locators = locatorTexts.Select(t => Locator.TryParse(t, out var l) ? l : throw new ArgumentException(t)).ToArray();
        var record = GnsRecord.Create(key, 42, locators, ttlSeconds: 0, name: name, issuedAt: IssuedAt);

        var decoded = GnsRecord.Decode(record.Encoded.Span);

        Assert.Equal(key.Guid, decoded.Guid);
        Assert.Equal(key.PublicKeyBytes(), decoded.PublicKey.ToArray());
        Assert.Equal(42UL, decoded.Version);
        Assert.Equal(IssuedAt, decoded.IssuedAt);
        Assert.Equal(0U, decoded.TtlSeconds);
        Assert.Equal(name, decoded.Name);
        Assert.Equal(locators, decoded.Locators);
        Assert.Equal(record.Encoded.ToArray(), decoded.Encoded.ToArray());
        Assert.True(decoded.Verify());
    }

    [Fact]
    public void Record_without_name_writes_a_zero_name_length()
    {
        using var key = Test1Key();

        var record = GnsRecord.Create(key, 1, [], ttlSeconds: 5, name: null, issuedAt: IssuedAt);

        var expected = RecordBytes.Body(key.Guid, key.PublicKey, 1, IssuedAtMs, 5, "");
        Assert.Equal(expected, record.Encoded.Span[..^64].ToArray());
        Assert.Null(GnsRecord.Decode(record.Encoded.Span).Name);
    }

    [Fact]
    public void Name_is_stored_in_canonical_lowercase()
    {
        using var key = HostKey.Generate();

        var record = GnsRecord.Create(key, 1, [], name: "LapTop");

        Assert.Equal("laptop", record.Name);
        Assert.Equal("laptop", GnsRecord.Decode(record.Encoded.Span).Name);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-x")]
    [InlineData("a.b")]
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4b")]
    public void Create_refuses_an_invalid_name(string name)
    {
        using var key = HostKey.Generate();

        Assert.Throws<ArgumentException>(() => GnsRecord.Create(key, 1, [], name: name));
    }

    [Fact]
    public void Ipv4_mapped_locator_is_encoded_as_ipv4()
    {
        using var key = Test1Key();
        var mapped = new Locator(IPAddress.Parse("::ffff:192.0.2.10"), 4433, LocatorKind.Host);

        var record = GnsRecord.Create(key, 1, [mapped], name: null, issuedAt: IssuedAt);

        Assert.Equal(AddressFamily.InterNetwork, record.Locators[0].Address.AddressFamily);
        var expected = RecordBytes.Body(key.Guid, key.PublicKey, 1, IssuedAtMs, 30, "", (1, IPAddress.Parse("192.0.2.10"), 4433));
        Assert.Equal(expected, record.Encoded.Span[..^64].ToArray());
        Assert.True(record.HasAddress(IPAddress.Parse("::ffff:192.0.2.10")));
        Assert.True(record.HasAddress(IPAddress.Parse("192.0.2.10")));
        Assert.False(record.HasAddress(IPAddress.Parse("192.0.2.11")));
    }

    [Fact]
    public void Issue_time_is_kept_to_the_millisecond()
    {
        using var key = HostKey.Generate();
        var precise = IssuedAt.AddTicks(9999);

        var record = GnsRecord.Create(key, 1, [], issuedAt: precise);

        Assert.Equal(IssuedAt, record.IssuedAt);
    }

    [Fact]
    public void Largest_record_is_MaxEncodedSize_bytes()
    {
        using var key = HostKey.Generate();

        var record = Largest(key);

        Assert.Equal(GnsRecord.MaxEncodedSize, record.Encoded.Length);
        // 75 fixed + 63 name + 16 x (kind 1 + family 1 + address 16 + port 2) + 64 signature.
        Assert.Equal(75 + 63 + (16 * 20) + 64, record.Encoded.Length);
        Assert.True(GnsRecord.Decode(record.Encoded.Span).Verify());
    }

    [Fact]
    public void Create_refuses_more_than_16_locators()
    {
        using var key = HostKey.Generate();
        var seventeen = Enumerable.Range(1, 17).Select(i => new Locator(IPAddress.Loopback, (ushort)i)).ToArray();

        Assert.Throws<ArgumentException>(() => GnsRecord.Create(key, 1, seventeen));
        Assert.Equal(16, GnsRecord.Create(key, 1, seventeen[..16]).Locators.Length);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(255)]
    public void Create_refuses_an_unknown_locator_kind(byte kind)
    {
        using var key = HostKey.Generate();

        Assert.Throws<ArgumentException>(() => GnsRecord.Create(key, 1, [new Locator(IPAddress.Loopback, 1, (LocatorKind)kind)]));
    }

    [Fact]
    public void Create_refuses_an_issue_time_before_1970_that_no_reader_would_accept()
    {
        using var key = HostKey.Generate();

        Assert.Throws<ArgumentOutOfRangeException>(() =>
            GnsRecord.Create(key, 1, [], issuedAt: DateTimeOffset.UnixEpoch.AddMilliseconds(-1)));
        Assert.Equal(DateTimeOffset.UnixEpoch, GnsRecord.Create(key, 1, [], issuedAt: DateTimeOffset.UnixEpoch).IssuedAt);
    }

    [Fact]
    public void Extreme_version_ttl_and_time_round_trip()
    {
        using var key = HostKey.Generate();
        var last = DateTimeOffset.FromUnixTimeMilliseconds(253402300799999);

        var record = GnsRecord.Create(key, ulong.MaxValue, [], ttlSeconds: uint.MaxValue, issuedAt: last);
        var decoded = GnsRecord.Decode(record.Encoded.Span);

        Assert.Equal(ulong.MaxValue, decoded.Version);
        Assert.Equal(uint.MaxValue, decoded.TtlSeconds);
        Assert.Equal(last, decoded.IssuedAt);
        Assert.True(decoded.Verify());
    }

    [Fact]
    public void Flipping_any_bit_of_a_record_makes_it_undecodable_or_unverifiable()
    {
        using var key = Test1Key();
        var good = Record(key).Encoded.ToArray();
        var decodedButRejected = 0;

        foreach (var (bit, decoded) in RecordBytes.DecodableBitFlips(good, bad => GnsRecord.Decode(bad)))
        {
            Assert.False(decoded.Verify(), $"bit {bit} (byte {bit / 8}) flipped and the record still verifies");
            decodedButRejected++;
        }

        // Most flips (GUID, key, version, time, ttl, addresses, ports, signature) still decode: the
        // signature check, not the parser, must be what refuses them.
        Assert.True(decodedButRejected > good.Length * 8 / 2, $"{decodedButRejected} decoded");
    }

    [Fact]
    public void Hand_built_record_with_matching_key_and_guid_verifies()
    {
        using var key = Test1Key();
        var body = RecordBytes.Body(key.Guid, key.PublicKey, 3, IssuedAtMs, 30, "h", (1, IPAddress.Loopback, 80));

        var record = GnsRecord.Decode(RecordBytes.SignedRecord(key, body));

        Assert.True(record.Verify());
    }

    [Fact]
    public void Record_whose_guid_is_not_the_hash_of_its_key_is_rejected_even_when_the_signature_is_good()
    {
        using var key = Test1Key();
        using var victim = HostKey.Generate();
        var body = RecordBytes.Body(victim.Guid, key.PublicKey, 3, IssuedAtMs, 30, "h", (1, IPAddress.Loopback, 80));

        var record = GnsRecord.Decode(RecordBytes.SignedRecord(key, body));

        Assert.Equal(victim.Guid, record.Guid);
        Assert.False(record.Verify());
    }

    [Fact]
    public void Record_carrying_the_victims_guid_and_key_but_signed_by_another_key_is_rejected()
    {
        using var attacker = HostKey.Generate();
        using var victim = Test1Key();
        var body = RecordBytes.Body(victim.Guid, victim.PublicKey, 3, IssuedAtMs, 30, "h", (1, IPAddress.Loopback, 80));

        var record = GnsRecord.Decode(RecordBytes.SignedRecord(attacker, body));

        Assert.False(record.Verify());
    }

    [Fact]
    public void Signature_made_under_the_removal_context_does_not_verify_as_a_record()
    {
        using var key = Test1Key();
        var body = RecordBody();

        var underRemove = GnsRecord.Decode(RecordBytes.Signed(key, SigningContext.GnsRemove, body));
        var underRecord = GnsRecord.Decode(RecordBytes.Signed(key, SigningContext.GnsRecord, body));
        var withoutContext = GnsRecord.Decode([.. body, .. key.Sign(body)]);

        Assert.False(underRemove.Verify());
        Assert.False(withoutContext.Verify());
        Assert.True(underRecord.Verify());
        Assert.Equal(RecordSignature, Convert.ToHexStringLower(underRecord.Signature));
    }

    [Fact]
    public void Decode_refuses_a_name_not_in_canonical_lowercase()
    {
        using var key = Test1Key();
        var body = RecordBytes.Body(key.Guid, key.PublicKey, 1, IssuedAtMs, 30, "Alpha");

        var e = Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(RecordBytes.SignedRecord(key, body)));
        Assert.Contains("canonical", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-a")]
    [InlineData("a.b")]
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4b")]
    public void Decode_refuses_an_invalid_name(string name)
    {
        using var key = Test1Key();
        var body = RecordBytes.Body(key.Guid, key.PublicKey, 1, IssuedAtMs, 30, name);

        Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(RecordBytes.SignedRecord(key, body)));
    }

    [Fact]
    public void Decode_refuses_an_ipv4_mapped_locator_so_each_record_has_one_encoding()
    {
        using var key = Test1Key();
        var body = RecordBytes.Body(key.Guid, key.PublicKey, 1, IssuedAtMs, 30, "", (1, IPAddress.Parse("::ffff:192.0.2.1"), 80));

        Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(RecordBytes.SignedRecord(key, body)));
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(long.MinValue)]
    [InlineData(253402300800000L)]  // year 10000
    [InlineData(long.MaxValue)]
    public void Decode_refuses_an_issue_time_outside_0001_to_9999(long issuedMs)
    {
        using var key = Test1Key();
        var body = RecordBytes.Body(key.Guid, key.PublicKey, 1, issuedMs, 30, "");

        Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(RecordBytes.SignedRecord(key, body)));
    }

    [Fact]
    public void Decode_refuses_trailing_bytes_but_Read_leaves_them_to_the_caller()
    {
        using var key = Test1Key();
        var encoded = Record(key).Encoded.ToArray();
        byte[] withTrailer = [.. encoded, 0];

        Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(withTrailer));
        var reader = new WireReader(withTrailer);
        var record = GnsRecord.Read(ref reader);
        Assert.Equal(1, reader.Remaining);
        Assert.Equal(encoded, record.Encoded.ToArray());
    }

    [Fact]
    public void ToString_shows_guid_version_name_and_locators()
    {
        using var key = Test1Key();

        var text = Record(key).ToString();

        Assert.Contains(Test1Guid, text, StringComparison.Ordinal);
        Assert.Contains(" v7", text, StringComparison.Ordinal);
        Assert.Contains("name=alpha-1", text, StringComparison.Ordinal);
        Assert.Contains("[2001:db8:ffff::2]:443/relay", text, StringComparison.Ordinal);
    }

    internal static GnsRecord Largest(HostKey key)
    {
        var locators = Enumerable.Range(0, GnsRecord.MaxLocators)
            .Select(i => new Locator(IPAddress.Parse($"2001:db8:ffff:ffff:ffff:ffff:ffff:{i + 1:x}"), 65535, LocatorKind.Relay));
        return GnsRecord.Create(key, ulong.MaxValue, locators, uint.MaxValue, new string('z', HostName.MaxLength), IssuedAt);
    }
}
