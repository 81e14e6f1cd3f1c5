namespace Mobility.Protocol.Tests.Identity;

public class HostGuidTests
{
    [Fact]
    public void Guid_of_a_public_key_is_the_first_20_bytes_of_its_sha256()
    {
        var guid = HostGuid.FromPublicKey(Convert.FromHexString(Rfc8032Test1PublicKey));

        Assert.Equal(Test1Guid, guid.ToString());
        Assert.Equal(Convert.FromHexString(Test1Guid), guid.ToByteArray());
    }

    [Fact]
    public void Key_from_the_rfc8032_seed_has_the_guid_computed_with_hashlib()
    {
        using var key = Test1Key();

        Assert.Equal(HostGuid.Parse(Test1Guid), key.Guid);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    [InlineData(64)]
    public void Public_key_of_wrong_length_is_refused(int length)
    {
        Assert.Throws<ArgumentException>(() => HostGuid.FromPublicKey(new byte[length]));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(19)]
    [InlineData(21)]
    [InlineData(32)]
    public void Bytes_of_wrong_length_are_refused(int length)
    {
        Assert.Throws<ArgumentException>(() => HostGuid.FromBytes(new byte[length]));
    }

    [Fact]
    public void Text_form_is_40_lowercase_hex_characters()
    {
        var guid = HostGuid.FromBytes(Convert.FromHexString("ABCDEF0123456789ABCDEF0123456789ABCDEF01"));

        Assert.Equal("abcdef0123456789abcdef0123456789abcdef01", guid.ToString());
        Assert.Equal("abcdef012345", guid.ToShortString());
    }

    [Fact]
    public void Parse_accepts_uppercase_and_mixed_case()
    {
        var lower = HostGuid.Parse(Test1Guid);

        Assert.Equal(lower, HostGuid.Parse(Test1Guid.ToUpperInvariant()));
        Assert.Equal(lower, HostGuid.Parse("21FE31dfA154a261626bf854046fd2271b7bed4B"));
        Assert.True(HostGuid.TryParse(Test1Guid.ToUpperInvariant().AsSpan(), out var fromSpan));
        Assert.Equal(lower, fromSpan);
    }

    [Theory]
    [InlineData("")]
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4")]          // 39
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4b0")]        // 41
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4g")]         // 'g'
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4 ")]         // space
    [InlineData(" 21fe31dfa154a261626bf854046fd2271b7bed4")]
    [InlineData("0x21fe31dfa154a261626bf854046fd2271b7bed")]         // prefix
    [InlineData("21fe31df-a154-a261-626b-f854046fd2271b7b")]         // dashes
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4\u0660")]    // Arabic-Indic zero
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4\uff41")]    // full-width 'a'
    public void Parse_refuses_text_that_is_not_40_hex_characters(string text)
    {
        Assert.False(HostGuid.TryParse(text, out var guid));
        Assert.Equal(HostGuid.Empty, guid);
        var e = Assert.Throws<FormatException>(() => HostGuid.Parse(text));
        Assert.Contains("40 hexadecimal", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryParse_of_null_is_false()
    {
        Assert.False(HostGuid.TryParse((string?)null, out _));
    }

    [Fact]
    public void Parse_error_for_huge_input_quotes_only_a_prefix()
    {
        var e = Assert.Throws<FormatException>(() => HostGuid.Parse(new string('x', 100_000)));

        Assert.True(e.Message.Length < 200, e.Message);
    }

    [Fact]
    public void Guid_works_through_the_generic_parsing_and_formatting_interfaces()
    {
        Assert.Equal(HostGuid.Parse(Test1Guid), ParseGeneric<HostGuid>(Test1Guid));
        Assert.Equal(Test1Guid, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{HostGuid.Parse(Test1Guid)}"));

        static T ParseGeneric<T>(string s) where T : ISpanParsable<T> => T.Parse(s.AsSpan(), null);
    }

    [Fact]
    public void TryFormat_needs_room_for_40_characters()
    {
        var guid = HostGuid.Parse(Test1Guid);

        Assert.False(guid.TryFormat(new char[39], out var none, default, null));
        Assert.Equal(0, none);
        var buffer = new char[50];
        Assert.True(guid.TryFormat(buffer, out var written, default, null));
        Assert.Equal(Test1Guid, new string(buffer, 0, written));
    }

    [Fact]
    public void Bytes_round_trip_through_WriteTo_and_FromBytes()
    {
        var bytes = Enumerable.Range(1, 20).Select(i => (byte)(i * 13)).ToArray();
        var guid = HostGuid.FromBytes(bytes);
        var written = new byte[24];

        guid.WriteTo(written);

        Assert.Equal(bytes, written[..20]);
        Assert.Equal(bytes, guid.ToByteArray());
        Assert.Throws<ArgumentException>(() => guid.WriteTo(new byte[19]));
    }

    [Fact]
    public void Default_guid_is_empty_and_a_real_guid_is_not()
    {
        Assert.True(default(HostGuid).IsEmpty);
        Assert.True(HostGuid.Empty.IsEmpty);
        Assert.Equal(new string('0', 40), HostGuid.Empty.ToString());
        Assert.False(HostGuid.Parse(Test1Guid).IsEmpty);
        Assert.False(HostGuid.FromBytes([.. new byte[19], 1]).IsEmpty);
    }

    [Fact]
    public void Guids_differing_in_any_single_byte_are_unequal()
    {
        var baseBytes = Convert.FromHexString(Test1Guid);
        var a = HostGuid.FromBytes(baseBytes);
        for (var i = 0; i < HostGuid.Size; i++)
        {
            var other = (byte[])baseBytes.Clone();
            other[i] ^= 0x01;
            var b = HostGuid.FromBytes(other);

            Assert.NotEqual(a, b);
            Assert.False(a == b);
            Assert.True(a != b);
            Assert.False(a.Equals((object)b));
        }
    }

    [Fact]
    public void Equal_guids_are_equal_and_hash_alike()
    {
        var a = HostGuid.Parse(Test1Guid);
        var b = HostGuid.Parse(Test1Guid.ToUpperInvariant());

        Assert.True(a == b);
        Assert.False(a != b);
        Assert.True(a.Equals((object)b));
        Assert.False(a.Equals((object)Test1Guid));
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.Single(new HashSet<HostGuid> { a, b });
    }

    [Fact]
    public void Hash_codes_spread_over_many_guids()
    {
        var random = new Random(1);
        var hashes = new HashSet<int>();
        for (var i = 0; i < 1000; i++)
        {
            var bytes = new byte[20];
            random.NextBytes(bytes);
            hashes.Add(HostGuid.FromBytes(bytes).GetHashCode());
        }

        Assert.True(hashes.Count > 990, $"{hashes.Count} distinct hash codes of 1000");
    }

    [Fact]
    public void Order_is_the_unsigned_byte_order_of_the_20_bytes()
    {
        var random = new Random(2);
        var list = new List<byte[]>();
        for (var i = 0; i < 500; i++)
        {
            var bytes = new byte[20];
            random.NextBytes(bytes);
            // Many share long prefixes so every 8-byte word boundary is exercised.
            if (i % 3 == 0 && list.Count > 0)
            {
                var prefix = random.Next(1, 20);
                list[random.Next(list.Count)].AsSpan(0, prefix).CopyTo(bytes);
            }

            list.Add(bytes);
        }

        var byBytes = list.OrderBy(b => Convert.ToHexStringLower(b), StringComparer.Ordinal).Select(b => HostGuid.FromBytes(b)).ToList();
        var byGuid = list.Select(b => HostGuid.FromBytes(b)).Order().ToList();

        Assert.Equal(byBytes, byGuid);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(19)]
    public void A_higher_byte_at_any_position_sorts_later_and_the_high_bit_is_not_a_sign(int position)
    {
        var low = new byte[20];
        var high = new byte[20];
        low[position] = 0x7F;
        high[position] = 0x80;
        var a = HostGuid.FromBytes(low);
        var b = HostGuid.FromBytes(high);

        Assert.True(a < b);
        Assert.True(a <= b);
        Assert.True(b > a);
        Assert.True(b >= a);
        Assert.True(a.CompareTo(b) < 0);
        Assert.True(b.CompareTo(a) > 0);
        Assert.Equal(0, a.CompareTo(HostGuid.FromBytes(low)));
        Assert.True(a <= HostGuid.FromBytes(low) && a >= HostGuid.FromBytes(low));
    }
}
