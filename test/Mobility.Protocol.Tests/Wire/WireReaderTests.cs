namespace Mobility.Protocol.Tests.Wire;

public class WireReaderTests
{
    [Fact]
    public void Integers_are_read_big_endian()
    {
        var reader = new WireReader(Hex("01", "0203", "04050607", "08090a0b0c0d0e0f", "fffffffffffffffe"));

        Assert.Equal(0x01, reader.ReadByte());
        Assert.Equal(0x0203, reader.ReadUInt16());
        Assert.Equal(0x04050607U, reader.ReadUInt32());
        Assert.Equal(0x08090a0b0c0d0e0fUL, reader.ReadUInt64());
        Assert.Equal(-2L, reader.ReadInt64());
        Assert.Equal(0, reader.Remaining);
        reader.EnsureEnd(allowZeroPadding: false);
    }

    [Fact]
    public void Position_remaining_consumed_and_rest_track_the_reads()
    {
        byte[] bytes = [1, 2, 3, 4, 5];
        var reader = new WireReader(bytes);

        reader.ReadUInt16();

        Assert.Equal(2, reader.Position);
        Assert.Equal(3, reader.Remaining);
        Assert.Equal([1, 2], reader.Consumed.ToArray());
        Assert.Equal([3, 4, 5], reader.Rest.ToArray());
    }

    [Fact]
    public void Addresses_are_a_family_byte_then_4_or_16_bytes()
    {
        var reader = new WireReader(Hex("04", "c0000201", "06", "20010db8000000000000000000000001"));

        Assert.Equal(IPAddress.Parse("192.0.2.1"), reader.ReadAddress());
        Assert.Equal(IPAddress.Parse("2001:db8::1"), reader.ReadAddress());
        Assert.Equal(0, reader.Remaining);
    }

    [Fact]
    public void Guid_is_20_raw_bytes()
    {
        var reader = new WireReader(Hex(Test1Guid, "ff"));

        Assert.Equal(HostGuid.Parse(Test1Guid), reader.ReadGuid());
        Assert.Equal(1, reader.Remaining);
    }

    [Fact]
    public void Short_bytes_are_a_length_byte_then_that_many_bytes()
    {
        var reader = new WireReader(Hex("03", "616263", "00"));

        Assert.Equal("abc"u8.ToArray(), reader.ReadShortBytes(3).ToArray());
        Assert.Empty(reader.ReadShortBytes(0).ToArray());
        Assert.Equal(0, reader.Remaining);
    }

    public static TheoryData<string, int> Reads() => new()
    {
        { "byte", 1 }, { "u16", 2 }, { "u32", 4 }, { "u64", 8 }, { "i64", 8 }, { "guid", 20 },
        { "bytes7", 7 }, { "v4", 5 }, { "v6", 17 }, { "short3", 4 },
    };

    [Theory]
    [MemberData(nameof(Reads))]
    public void Every_read_of_a_truncated_field_is_malformed_and_leaves_the_position(string read, int size)
    {
        for (var available = 0; available < size; available++)
        {
            var bytes = new byte[available];
            if (available > 0)
            {
                bytes[0] = read switch { "v4" => 4, "v6" => 6, "short3" => 3, _ => 0 };
            }

            var e = Assert.Throws<MalformedMessageException>(() =>
            {
                var reader = new WireReader(bytes);
                Read(ref reader, read);
            });
            Assert.Contains("Truncated", e.Message, StringComparison.Ordinal);
        }

        var exact = new byte[size];
        exact[0] = read switch { "v4" => 4, "v6" => 6, "short3" => 3, _ => 0 };
        var whole = new WireReader(exact);
        Read(ref whole, read);
        Assert.Equal(0, whole.Remaining);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void Negative_length_is_malformed(int count)
    {
        Assert.Throws<MalformedMessageException>(() => new WireReader(new byte[8]).ReadBytes(count));
    }

    [Theory]
    [InlineData(9)]
    [InlineData(int.MaxValue)]
    public void Length_beyond_the_buffer_is_malformed(int count)
    {
        Assert.Throws<MalformedMessageException>(() => new WireReader(new byte[8]).ReadBytes(count));
    }

    [Fact]
    public void Short_bytes_longer_than_the_limit_are_malformed_even_when_present()
    {
        byte[] bytes = [10, .. new byte[10]];

        var e = Assert.Throws<MalformedMessageException>(() => new WireReader(bytes).ReadShortBytes(9));
        Assert.Contains("limit", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(7)]
    [InlineData(255)]
    public void Address_of_an_unknown_family_is_malformed(byte family)
    {
        byte[] bytes = [family, .. new byte[16]];

        Assert.Throws<MalformedMessageException>(() => new WireReader(bytes).ReadAddress());
    }

    [Fact]
    public void EnsureEnd_accepts_zero_padding_only_when_allowed()
    {
        byte[] padded = [1, 0, 0, 0];
        byte[] garbage = [1, 0, 1, 0];

        var reader = new WireReader(padded);
        reader.ReadByte();
        reader.EnsureEnd(allowZeroPadding: true);
        Assert.Throws<MalformedMessageException>(() => Skip1(padded).EnsureEnd(allowZeroPadding: false));
        Assert.Throws<MalformedMessageException>(() => Skip1(garbage).EnsureEnd(allowZeroPadding: true));

        static WireReader Skip1(byte[] bytes)
        {
            var r = new WireReader(bytes);
            r.ReadByte();
            return r;
        }
    }

    [Fact]
    public void Writer_output_reads_back()
    {
        var buffer = new byte[128];
        var writer = new WireWriter(buffer);
        writer.WriteByte(0xAB);
        writer.WriteUInt16(0xBEEF);
        writer.WriteUInt32(0xDEADBEEF);
        writer.WriteUInt64(ulong.MaxValue - 1);
        writer.WriteInt64(long.MinValue);
        writer.WriteGuid(HostGuid.Parse(Test1Guid));
        writer.WriteAddress(IPAddress.Parse("::ffff:10.0.0.1"));
        writer.WriteAddress(IPAddress.IPv6Loopback);
        writer.WriteShortBytes("xyz"u8);

        var reader = new WireReader(writer.Written);
        Assert.Equal(0xAB, reader.ReadByte());
        Assert.Equal(0xBEEF, reader.ReadUInt16());
        Assert.Equal(0xDEADBEEFU, reader.ReadUInt32());
        Assert.Equal(ulong.MaxValue - 1, reader.ReadUInt64());
        Assert.Equal(long.MinValue, reader.ReadInt64());
        Assert.Equal(HostGuid.Parse(Test1Guid), reader.ReadGuid());
        Assert.Equal(IPAddress.Parse("10.0.0.1"), reader.ReadAddress());
        Assert.Equal(IPAddress.IPv6Loopback, reader.ReadAddress());
        Assert.Equal("xyz"u8.ToArray(), reader.ReadShortBytes(3).ToArray());
        reader.EnsureEnd(allowZeroPadding: false);
        Assert.Equal(1 + 2 + 4 + 8 + 8 + 20 + 5 + 17 + 4, writer.Position);
    }

    [Fact]
    public void Writer_refuses_to_write_past_its_buffer()
    {
        Assert.Throws<InvalidOperationException>(() => new WireWriter(new byte[3]).WriteUInt32(1));
        Assert.Throws<InvalidOperationException>(() => new WireWriter(new byte[4]).WriteAddress(IPAddress.Loopback));
        Assert.Throws<InvalidOperationException>(() => new WireWriter(new byte[19]).WriteGuid(HostGuid.Empty));
        Assert.Throws<ArgumentException>(() => new WireWriter(new byte[300]).WriteShortBytes(new byte[256]));
    }

    [Theory]
    [InlineData("10.0.0.1", 5)]
    [InlineData("::ffff:10.0.0.1", 5)]
    [InlineData("::1", 17)]
    public void Address_size_counts_the_family_byte(string address, int size)
    {
        Assert.Equal(size, WireWriter.AddressSize(IPAddress.Parse(address)));
    }

    [Fact]
    public Task Random_reads_over_random_bytes_are_malformed_or_stay_in_bounds() => Task.Run(() =>
    {
        var random = new Random(6);
        string[] reads = ["byte", "u16", "u32", "u64", "i64", "guid", "bytes7", "v4", "v6", "addr", "short3", "short255", "neg", "end", "endpad"];
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = new byte[random.Next(0, 40)];
            random.NextBytes(bytes);
            var reader = new WireReader(bytes);
            try
            {
                for (var op = 0; op < 12; op++)
                {
                    var before = reader.Position;
                    Read(ref reader, reads[random.Next(reads.Length)]);
                    Assert.InRange(reader.Position, before, bytes.Length);
                }
            }
            catch (MalformedMessageException)
            {
                // expected for most
            }
        }
    }).WaitAsync(TimeSpan.FromMinutes(1));

    private static void Read(ref WireReader reader, string read)
    {
        switch (read)
        {
            case "byte": reader.ReadByte(); break;
            case "u16": reader.ReadUInt16(); break;
            case "u32": reader.ReadUInt32(); break;
            case "u64": reader.ReadUInt64(); break;
            case "i64": reader.ReadInt64(); break;
            case "guid": reader.ReadGuid(); break;
            case "bytes7": reader.ReadBytes(7); break;
            case "v4" or "v6" or "addr": reader.ReadAddress(); break;
            case "short3": reader.ReadShortBytes(3); break;
            case "short255": reader.ReadShortBytes(255); break;
            case "neg": reader.ReadBytes(-reader.Remaining - 1); break;
            case "end": reader.EnsureEnd(allowZeroPadding: false); break;
            case "endpad": reader.EnsureEnd(allowZeroPadding: true); break;
            default: throw new ArgumentOutOfRangeException(nameof(read));
        }
    }
}
