namespace Mobility.Gns.Dns.Tests.Protocol;

/// <summary>The query parser against well-formed and hostile input: anything wrong is a DnsFormatException, never another error.</summary>
public sealed class DnsMessageReaderTests
{
    [Fact]
    public void A_query_with_EDNS_is_read_with_its_case_flags_and_advertised_size()
    {
        var query = DnsMessageReader.ReadQuery(Query.Build("Host.GNS.test", DnsType.AAAA, id: 77, edns: true, udpSize: 4096, dnssecOk: true));

        Assert.Equal(77, query.Id);
        Assert.Equal("Host.GNS.test.", query.Name.ToString());
        Assert.Equal((ushort)DnsType.AAAA, query.Type);
        Assert.True(query.RecursionDesired);
        Assert.Equal(new EdnsInfo(4096, 0, true), query.Edns);
    }

    [Fact]
    public void A_message_shorter_than_a_header_or_a_response_is_not_answered()
    {
        Assert.False(Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(new byte[11])).Answerable);
        var response = Query.Build("a.gns.test", DnsType.A, flags: 0x8100);
        Assert.False(Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(response)).Answerable);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(65535)]
    public void A_question_count_other_than_one_is_FORMERR_with_the_query_id(ushort count)
    {
        var e = Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(Query.Build("a.gns.test", DnsType.A, id: 9, qdCount: count)));

        Assert.True(e.Answerable);
        Assert.Equal((ushort)9, e.Id);
    }

    [Fact]
    public void Every_truncation_of_a_valid_query_is_malformed()
    {
        var bytes = Query.Build("host.gns.test", DnsType.A, edns: true);
        for (var length = 0; length < bytes.Length; length++)
        {
            Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(bytes.AsSpan(0, length)));
        }
    }

    [Fact]
    public void Trailing_octets_after_the_last_record_are_malformed()
        => Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery([.. Query.Build("a.gns.test", DnsType.A), 0]));

    [Fact]
    public void A_label_of_64_octets_uses_a_reserved_label_type_and_is_malformed()
    {
        var bytes = Header(1).Concat(new byte[] { 64 }).Concat(new byte[64]).Concat(new byte[] { 0, 0, 1, 0, 1 }).ToArray();

        Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(bytes));
    }

    [Fact]
    public void A_name_longer_than_255_octets_is_malformed()
    {
        var name = string.Join('.', Enumerable.Repeat(new string('a', 63), 4)) + ".x";

        Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(Query.Build(name, DnsType.A)));
    }

    [Fact]
    public void A_compression_pointer_in_the_question_has_nothing_before_it_to_point_to()
    {
        // Pointer to itself (offset 12) and to the header (offset 0).
        Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(Header(1).Concat(new byte[] { 0xC0, 12, 0, 1, 0, 1 }).ToArray()));
        Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(Header(1).Concat(new byte[] { 0xC0, 0, 0, 1, 0, 1 }).ToArray()));
    }

    [Fact]
    public void Compression_pointers_that_loop_or_point_forward_are_malformed()
    {
        // At 12: label "a" then a pointer to 19 (forward). At 19: pointer back to 12 would loop.
        var message = new List<byte>(Header(1, arCount: 0));
        message.AddRange([1, (byte)'a', 0xC0, 19, 0, 1, 0, 1]);
        message.AddRange([0xC0, 12]);
        Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(message.ToArray()));

        // A name in the additional section pointing back to a label that points to itself again.
        var loop = new List<byte>(Header(1, arCount: 1));
        loop.AddRange(Query.Name("x.gns.test"));
        loop.AddRange([0, 1, 0, 1]);
        var at = loop.Count;
        loop.AddRange([1, (byte)'b', 0xC0, (byte)at, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
        Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(loop.ToArray()));
    }

    [Fact]
    public void A_backward_compression_pointer_in_the_additional_section_is_followed()
    {
        var message = new List<byte>(Header(1, arCount: 1));
        message.AddRange(Query.Name("x.gns.test"));
        message.AddRange([0, 1, 0, 1]);
        message.AddRange([0xC0, 14, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1]);

        Assert.Equal("x.gns.test.", DnsMessageReader.ReadQuery(message.ToArray()).Name.ToString());
        var offset = DnsLimits.HeaderSize + 16;
        Assert.Equal("gns.test.", DnsMessageReader.ReadName(message.ToArray(), ref offset).ToString());
        Assert.Equal(DnsLimits.HeaderSize + 18, offset);
    }

    [Fact]
    public void An_announced_RDATA_length_past_the_end_is_malformed_before_anything_is_read()
    {
        var message = new List<byte>(Header(1, arCount: 1));
        message.AddRange(Query.Name("x.gns.test"));
        message.AddRange([0, 1, 0, 1, 0, 0, 41, 4, 208, 0, 0, 0, 0, 0xFF, 0xFF]);

        Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(message.ToArray()));
    }

    [Fact]
    public void Two_OPT_records_a_non_root_OPT_owner_and_an_overrunning_option_are_malformed()
    {
        var opt = new byte[] { 0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0 };
        var twice = Header(1, arCount: 2).Concat(Query.Name("x.gns.test")).Concat(new byte[] { 0, 1, 0, 1 }).Concat(opt).Concat(opt).ToArray();
        Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(twice));

        var named = Header(1, arCount: 1).Concat(Query.Name("x.gns.test")).Concat(new byte[] { 0, 1, 0, 1 })
            .Concat(new byte[] { 1, (byte)'o', 0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0 }).ToArray();
        Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(named));

        var overrun = Header(1, arCount: 1).Concat(Query.Name("x.gns.test")).Concat(new byte[] { 0, 1, 0, 1 })
            .Concat(new byte[] { 0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 6, 0, 10, 0, 9, 1, 2 }).ToArray();
        Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(overrun));
    }

    [Fact]
    public void Answer_or_authority_records_or_too_many_additional_records_in_a_query_are_malformed()
    {
        var query = Query.Build("x.gns.test", DnsType.A);
        foreach (var (at, value) in new[] { (7, 1), (9, 1), (11, 200) })
        {
            var copy = (byte[])query.Clone();
            copy[at] = (byte)value;
            Assert.Throws<DnsFormatException>(() => DnsMessageReader.ReadQuery(copy));
        }
    }

    [Fact]
    public void A_non_query_opcode_is_returned_for_a_NOTIMP_answer()
    {
        var query = DnsMessageReader.ReadQuery(Query.Build("x.gns.test", DnsType.A, flags: 5 << 11));

        Assert.Equal(5, query.Opcode);
    }

    [Fact]
    public void Random_bytes_and_random_mutations_of_a_query_are_malformed_or_a_query_and_nothing_else()
    {
        var random = new Random(4242);
        var valid = Query.Build("host.gns.test", DnsType.AAAA, edns: true);
        for (var i = 0; i < 20_000; i++)
        {
            byte[] bytes;
            if (i % 2 == 0)
            {
                bytes = new byte[random.Next(0, 300)];
                random.NextBytes(bytes);
            }
            else
            {
                bytes = (byte[])valid.Clone();
                for (var m = random.Next(1, 4); m > 0; m--)
                {
                    bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                }
            }

            try
            {
                var query = DnsMessageReader.ReadQuery(bytes);
                Assert.True(query.Name.WireLength <= DnsLimits.MaxNameLength);
            }
            catch (DnsFormatException)
            {
            }
        }
    }

    private static byte[] Header(ushort qdCount, ushort arCount = 0)
    {
        var header = new byte[DnsLimits.HeaderSize];
        BinaryPrimitives.WriteUInt16BigEndian(header, 1);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(4), qdCount);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(10), arCount);
        return header;
    }
}
