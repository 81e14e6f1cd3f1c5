using Mobility.Protocol.Tests.Records;

namespace Mobility.Protocol.Tests.Gns;

public class GnsDatagramTests
{
    private static readonly HostGuid SomeGuid = HostGuid.Parse(Test1Guid);

    // ---- Header --------------------------------------------------------------------------------

    [Fact]
    public void Lookup_by_guid_is_magic_version_type_request_id_then_guid()
    {
        var datagram = GnsDatagram.LookupGuid(0x01020304, SomeGuid, padTo: 0);

        Assert.Equal(Hex("4d47", "01", "01", "01020304", Test1Guid), datagram);
    }

    [Fact]
    public void Header_is_read_from_the_first_eight_bytes()
    {
        Assert.True(GnsDatagram.TryReadHeader(Hex("4d47", "07", "83", "fffffffe"), out var header));

        Assert.Equal(new GnsHeader(7, GnsMessageType.GuidListReply, 0xFFFFFFFE), header);
    }

    [Theory]
    [InlineData("")]
    [InlineData("4d470101000000")]          // 7 bytes
    [InlineData("4e470101000000000000")]    // wrong magic
    [InlineData("4d480101000000000000")]
    [InlineData("6d670101000000000000")]    // lowercase magic
    public void Datagram_that_is_too_short_or_lacks_the_magic_is_not_ours(string hex)
    {
        Assert.False(GnsDatagram.TryReadHeader(Convert.FromHexString(hex), out var header));
        Assert.Equal(default, header);
    }

    // ---- Requests ------------------------------------------------------------------------------

    [Fact]
    public void Lookup_by_guid_round_trips_and_is_padded_with_zeros()
    {
        var datagram = GnsDatagram.LookupGuid(7, SomeGuid);

        Assert.Equal(GnsDatagram.LookupPaddedSize, datagram.Length);
        Assert.DoesNotContain(datagram.AsSpan(28).ToArray(), b => b != 0);
        var request = GnsDatagram.ParseRequest(datagram);
        Assert.Equal(GnsMessageType.LookupGuid, request.Type);
        Assert.Equal(7U, request.RequestId);
        Assert.Equal(SomeGuid, request.Guid);
        Assert.Null(request.Name);
        Assert.Null(request.Address);
        Assert.Null(request.Record);
        Assert.Null(request.Removal);
    }

    [Fact]
    public void Lookup_by_name_round_trips_in_canonical_form()
    {
        var datagram = GnsDatagram.LookupName(uint.MaxValue, "LapTop");

        Assert.Equal(GnsDatagram.LookupPaddedSize, datagram.Length);
        Assert.Equal(Hex("4d47", "01", "02", "ffffffff", "06", "6c6170746f70"), datagram[..15]);
        var request = GnsDatagram.ParseRequest(datagram);
        Assert.Equal(GnsMessageType.LookupName, request.Type);
        Assert.Equal(uint.MaxValue, request.RequestId);
        Assert.Equal("laptop", request.Name);
    }

    [Fact]
    public void Lookup_by_name_accepts_an_uppercase_name_on_the_wire_and_normalizes_it()
    {
        var request = GnsDatagram.ParseRequest(Hex("4d47", "01", "02", "00000001", "03", "414243"));

        Assert.Equal("abc", request.Name);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a.b")]
    [InlineData("-a")]
    public void Lookup_by_invalid_name_cannot_be_built(string name)
    {
        Assert.Throws<ArgumentException>(() => GnsDatagram.LookupName(1, name));
    }

    [Theory]
    [InlineData("192.0.2.1", "04c0000201")]
    [InlineData("::ffff:192.0.2.1", "04c0000201")]
    [InlineData("2001:db8::1", "0620010db8000000000000000000000001")]
    public void Reverse_lookup_writes_the_address_with_its_family_and_round_trips(string address, string encoded)
    {
        var datagram = GnsDatagram.Reverse(9, IPAddress.Parse(address));

        Assert.Equal(GnsDatagram.ReversePaddedSize, datagram.Length);
        Assert.Equal(Hex("4d47", "01", "03", "00000009", encoded), datagram[..(8 + (encoded.Length / 2))]);
        var request = GnsDatagram.ParseRequest(datagram);
        Assert.Equal(GnsMessageType.Reverse, request.Type);
        Assert.Equal(Locator.Normalize(IPAddress.Parse(address)), request.Address);
    }

    [Fact]
    public void Update_carries_the_record_bytes_unchanged()
    {
        using var key = Test1Key();
        var record = Record(key);

        var datagram = GnsDatagram.Update(5, record);

        Assert.Equal(Concat(Hex("4d47", "01", "04", "00000005"), record.Encoded.ToArray()), datagram);
        var request = GnsDatagram.ParseRequest(datagram);
        Assert.Equal(GnsMessageType.Update, request.Type);
        Assert.Equal(record.Encoded.ToArray(), request.Record!.Encoded.ToArray());
        Assert.True(request.Record.Verify());
    }

    [Fact]
    public void Remove_carries_the_removal_bytes_unchanged()
    {
        using var key = Test1Key();
        var removal = GnsRemoval.Create(key, RemovalVersion, IssuedAt);

        var datagram = GnsDatagram.Remove(6, removal);

        Assert.Equal(Concat(Hex("4d47", "01", "05", "00000006"), removal.Encoded.ToArray()), datagram);
        var request = GnsDatagram.ParseRequest(datagram);
        Assert.Equal(GnsMessageType.Remove, request.Type);
        Assert.Equal(removal.Encoded.ToArray(), request.Removal!.Encoded.ToArray());
        Assert.True(request.Removal.Verify(key.PublicKey));
    }

    [Fact]
    public void Update_padded_with_zeros_is_accepted()
    {
        using var key = Test1Key();
        var datagram = GnsDatagram.Update(5, Record(key));

        var request = GnsDatagram.ParseRequest([.. datagram, 0, 0, 0]);

        Assert.True(request.Record!.Verify());
    }

    [Fact]
    public void Request_padding_must_be_zeros()
    {
        var datagram = GnsDatagram.LookupGuid(7, SomeGuid);
        datagram[^1] = 1;

        Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest(datagram));
    }

    [Fact]
    public void Padding_is_capped_at_the_largest_datagram()
    {
        Assert.Equal(GnsDatagram.MaxDatagramSize, GnsDatagram.LookupGuid(1, SomeGuid, padTo: 100_000).Length);
        Assert.Equal(GnsDatagram.MaxDatagramSize, GnsDatagram.LookupName(1, "a", padTo: 100_000).Length);
        Assert.Equal(GnsDatagram.MaxDatagramSize, GnsDatagram.Reverse(1, IPAddress.Loopback, padTo: 100_000).Length);
        Assert.Equal(28, GnsDatagram.LookupGuid(1, SomeGuid, padTo: -5).Length);
    }

    [Fact]
    public void Request_of_exactly_1232_bytes_is_accepted_and_of_1233_refused()
    {
        var largest = GnsDatagram.LookupGuid(1, SomeGuid, padTo: GnsDatagram.MaxDatagramSize);
        Assert.Equal(SomeGuid, GnsDatagram.ParseRequest(largest).Guid);

        byte[] tooLarge = [.. largest, 0];
        var e = Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest(tooLarge));
        Assert.Contains("1232", e.Message, StringComparison.Ordinal);
    }

    // ---- Amplification budget ------------------------------------------------------------------

    [Theory]
    [InlineData(0, 0)]
    [InlineData(8, 24)]
    [InlineData(28, 84)]
    [InlineData(177, 531)]
    [InlineData(410, 1230)]
    [InlineData(411, 1232)]
    [InlineData(1232, 1232)]
    public void Reply_budget_is_three_times_the_request_capped_at_1232(int request, int budget)
    {
        Assert.Equal(budget, GnsDatagram.ReplyBudget(request));
    }

    [Fact]
    public void Largest_possible_record_fits_the_budget_of_a_padded_lookup_by_guid()
    {
        using var key = HostKey.Generate();
        var largest = GnsRecordTests.Largest(key);
        var lookup = GnsDatagram.LookupGuid(1, largest.Guid);
        var reply = new byte[GnsDatagram.ReplyBudget(lookup.Length)];

        Assert.True(GnsDatagram.TryWriteRecord(reply, 1, largest, out var written));

        Assert.Equal(GnsDatagram.HeaderSize + GnsRecord.MaxEncodedSize, written);
        Assert.True(written <= 3 * lookup.Length);
        Assert.True(GnsDatagram.ParseResponse(reply.AsSpan(0, written)).Record!.Verify());
    }

    [Fact]
    public void Largest_possible_record_fits_the_budget_of_a_padded_lookup_by_its_63_character_name()
    {
        using var key = HostKey.Generate();
        var largest = GnsRecordTests.Largest(key);
        var lookup = GnsDatagram.LookupName(1, largest.Name!);
        var reply = new byte[GnsDatagram.ReplyBudget(lookup.Length)];

        Assert.True(GnsDatagram.TryWriteRecord(reply, 1, largest, out var written));
        Assert.True(written <= 3 * lookup.Length);
    }

    [Fact]
    public void Padded_lookup_size_is_the_smallest_that_holds_the_largest_record_reply()
    {
        var largestReply = GnsDatagram.HeaderSize + GnsRecord.MaxEncodedSize;

        Assert.True(GnsDatagram.AmplificationFactor * GnsDatagram.LookupPaddedSize >= largestReply);
        Assert.True(GnsDatagram.AmplificationFactor * (GnsDatagram.LookupPaddedSize - 1) < largestReply);
    }

    [Fact]
    public void Record_reply_that_does_not_fit_is_not_written()
    {
        using var key = Test1Key();
        var record = Record(key);
        var unpadded = GnsDatagram.LookupGuid(1, record.Guid, padTo: 0);
        var reply = new byte[GnsDatagram.ReplyBudget(unpadded.Length)];

        Assert.False(GnsDatagram.TryWriteRecord(reply, 1, record, out var written));
        Assert.Equal(0, written);
        Assert.DoesNotContain(reply, b => b != 0);
    }

    [Fact]
    public void Guid_list_to_a_padded_reverse_lookup_fills_the_budget_and_says_it_is_truncated()
    {
        var reverse = GnsDatagram.Reverse(1, IPAddress.Parse("192.0.2.1"));
        var budget = GnsDatagram.ReplyBudget(reverse.Length);
        var guids = Guids(100);
        var reply = new byte[budget];

        var written = GnsDatagram.WriteGuidList(reply, 1, guids);

        Assert.True(written <= budget);
        Assert.True(written + HostGuid.Size > budget, "room was left for another GUID");
        var response = GnsDatagram.ParseResponse(reply.AsSpan(0, written));
        Assert.True(response.Truncated);
        Assert.True(response.Guids.Length >= 59, $"{response.Guids.Length} GUIDs");
        Assert.Equal(guids.Take(response.Guids.Length), response.Guids);
    }

    // ---- Replies -------------------------------------------------------------------------------

    [Fact]
    public void Record_reply_round_trips()
    {
        using var key = Test1Key();
        var record = Record(key);
        var reply = new byte[GnsDatagram.MaxDatagramSize];

        Assert.True(GnsDatagram.TryWriteRecord(reply, 0xA0B0C0D0, record, out var written));

        Assert.Equal(Concat(Hex("4d47", "01", "81", "a0b0c0d0"), record.Encoded.ToArray()), reply[..written]);
        var response = GnsDatagram.ParseResponse(reply.AsSpan(0, written));
        Assert.Equal(GnsMessageType.RecordReply, response.Type);
        Assert.Equal(0xA0B0C0D0, response.RequestId);
        Assert.Equal(record.Encoded.ToArray(), response.Record!.Encoded.ToArray());
    }

    [Theory]
    [InlineData(0, false, false)]
    [InlineData(0, true, true)]
    [InlineData(1, false, false)]
    [InlineData(3, false, false)]
    [InlineData(3, true, true)]
    public void Guid_list_that_fits_round_trips_with_the_more_flag_as_given(int count, bool moreExist, bool truncated)
    {
        var guids = Guids(count);
        var reply = new byte[GnsDatagram.MaxDatagramSize];

        var written = GnsDatagram.WriteGuidList(reply, 3, guids, moreExist);

        Assert.Equal(8 + 2 + (20 * count), written);
        Assert.Equal(Hex("4d47", "01", "83", "00000003", truncated ? "01" : "00", count.ToString("x2", null)), reply[..10]);
        var response = GnsDatagram.ParseResponse(reply.AsSpan(0, written));
        Assert.Equal(GnsMessageType.GuidListReply, response.Type);
        Assert.Equal(guids, response.Guids);
        Assert.Equal(truncated, response.Truncated);
    }

    [Fact]
    public void Guid_list_of_more_than_255_is_cut_to_255_and_marked_truncated()
    {
        var guids = Guids(300);
        var reply = new byte[10 + (255 * 20) + 100];

        var written = GnsDatagram.WriteGuidList(reply, 3, guids);

        Assert.Equal(10 + (255 * 20), written);
        Assert.Equal(0xFF, reply[9]);
        Assert.Equal(1, reply[8]);
    }

    [Theory]
    [InlineData(10, 0)]
    [InlineData(29, 0)]
    [InlineData(30, 1)]
    [InlineData(69, 2)]
    public void Guid_list_holds_as_many_whole_guids_as_fit(int destination, int expected)
    {
        var reply = new byte[destination];

        var written = GnsDatagram.WriteGuidList(reply, 3, Guids(5));

        Assert.Equal(10 + (20 * expected), written);
        var response = GnsDatagram.ParseResponse(reply.AsSpan(0, written));
        Assert.Equal(expected, response.Guids.Length);
        Assert.True(response.Truncated);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    [InlineData(9)]
    public void Guid_list_destination_without_room_for_the_counts_is_an_argument_error(int destination)
    {
        Assert.Throws<ArgumentException>(() => GnsDatagram.WriteGuidList(new byte[destination], 3, Guids(1)));
    }

    [Theory]
    [InlineData("203.0.113.5", 61000, "04cb007105")]
    [InlineData("::ffff:203.0.113.5", 61000, "04cb007105")]
    [InlineData("2001:db8::7", 1, "0620010db8000000000000000000000007")]
    public void Update_ack_carries_version_and_observed_endpoint(string address, int port, string encodedAddress)
    {
        var reply = new byte[GnsDatagram.MaxDatagramSize];

        var written = GnsDatagram.WriteUpdateAck(reply, 4, 0x0102030405060708, new IPEndPoint(IPAddress.Parse(address), port));

        Assert.Equal(Hex("4d47", "01", "84", "00000004", "0102030405060708", encodedAddress, port.ToString("x4", null)), reply[..written]);
        var response = GnsDatagram.ParseResponse(reply.AsSpan(0, written));
        Assert.Equal(GnsMessageType.UpdateAck, response.Type);
        Assert.Equal(0x0102030405060708UL, response.Version);
        Assert.Equal(new IPEndPoint(Locator.Normalize(IPAddress.Parse(address)), port), response.Observed);
    }

    [Fact]
    public void Remove_ack_carries_the_version()
    {
        var reply = new byte[GnsDatagram.MaxDatagramSize];

        var written = GnsDatagram.WriteRemoveAck(reply, 5, ulong.MaxValue);

        Assert.Equal(Hex("4d47", "01", "85", "00000005", "ffffffffffffffff"), reply[..written]);
        var response = GnsDatagram.ParseResponse(reply.AsSpan(0, written));
        Assert.Equal(GnsMessageType.RemoveAck, response.Type);
        Assert.Equal(ulong.MaxValue, response.Version);
    }

    [Fact]
    public void Error_reply_carries_code_and_utf8_message()
    {
        var reply = new byte[GnsDatagram.MaxDatagramSize];

        var written = GnsDatagram.WriteError(reply, 6, GnsErrorCode.StaleVersion, "vieux: é");

        Assert.Equal(Hex("4d47", "01", "ff", "00000006", "03", "09", "76696575783a20c3a9"), reply[..written]);
        var response = GnsDatagram.ParseResponse(reply.AsSpan(0, written));
        Assert.Equal(GnsMessageType.Error, response.Type);
        Assert.Equal(GnsErrorCode.StaleVersion, response.ErrorCode);
        Assert.Equal("vieux: é", response.ErrorMessage);
    }

    [Fact]
    public void Error_reply_without_message_has_an_empty_text()
    {
        var reply = new byte[64];

        var written = GnsDatagram.WriteError(reply, 6, GnsErrorCode.NotFound, null);

        Assert.Equal(Hex("4d47", "01", "ff", "00000006", "01", "00"), reply[..written]);
        Assert.Equal("", GnsDatagram.ParseResponse(reply.AsSpan(0, written)).ErrorMessage);
    }

    [Fact]
    public void Error_reply_of_another_protocol_version_is_still_readable()
    {
        var reply = new byte[64];

        var written = GnsDatagram.WriteError(reply, 6, GnsErrorCode.UnsupportedVersion, "v1 only", version: 9);

        Assert.Equal(9, reply[2]);
        var response = GnsDatagram.ParseResponse(reply.AsSpan(0, written));
        Assert.Equal(GnsErrorCode.UnsupportedVersion, response.ErrorCode);
        Assert.Equal("v1 only", response.ErrorMessage);
    }

    [Fact]
    public void Error_message_is_cut_to_200_bytes()
    {
        var reply = new byte[GnsDatagram.MaxDatagramSize];

        var written = GnsDatagram.WriteError(reply, 6, GnsErrorCode.Internal, new string('x', 1000));

        Assert.Equal(8 + 2 + GnsDatagram.MaxErrorMessageBytes, written);
        Assert.Equal(new string('x', 200), GnsDatagram.ParseResponse(reply.AsSpan(0, written)).ErrorMessage);
    }

    public static TheoryData<string> Texts() => new()
    {
        "plain ascii text that goes on and on",
        "déjà vu, à la carte, façade",             // 2-byte sequences
        "€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€",     // 3-byte sequences
        "𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞",     // 4-byte sequences (surrogate pairs)
        "a€𝄞é" + new string('日', 80),              // mixed, longer than 200 bytes
    };

    [Theory]
    [MemberData(nameof(Texts))]
    public void Error_message_is_cut_on_a_character_boundary_and_never_exceeds_the_destination(string text)
    {
        var utf8 = Encoding.UTF8.GetBytes(text);
        for (var size = 10; size <= 10 + 220; size++)
        {
            var reply = new byte[size + 16];
            reply.AsSpan().Fill(0xEE);

            var written = GnsDatagram.WriteError(reply.AsSpan(0, size), 1, GnsErrorCode.Malformed, text);

            Assert.True(written <= size, $"wrote {written} into {size}");
            Assert.DoesNotContain(reply.AsSpan(size).ToArray(), b => b != 0xEE);
            var message = GnsDatagram.ParseResponse(reply.AsSpan(0, written)).ErrorMessage!;
            Assert.DoesNotContain('\uFFFD', message);
            Assert.StartsWith(message, text, StringComparison.Ordinal);
            var room = Math.Min(size - 10, GnsDatagram.MaxErrorMessageBytes);
            var used = Encoding.UTF8.GetByteCount(message);
            Assert.True(used <= room);
            if (used < utf8.Length)
            {
                // The next whole character would not have fitted: nothing was cut that could stay.
                var next = Encoding.UTF8.GetByteCount(text.AsSpan(message.Length, char.IsHighSurrogate(text[message.Length]) ? 2 : 1));
                Assert.True(used + next > room, $"size {size}: {used} + {next} <= {room}");
            }
        }
    }

    [Fact]
    public void Every_error_code_has_a_description_and_unknown_codes_show_their_number()
    {
        foreach (var code in Enum.GetValues<GnsErrorCode>())
        {
            Assert.DoesNotContain("error ", GnsDatagram.Describe(code), StringComparison.Ordinal);
        }

        Assert.Equal("error 200", GnsDatagram.Describe((GnsErrorCode)200));
    }

    [Fact]
    public void Error_codes_and_message_types_have_their_documented_values()
    {
        // docs/protocol.md, "GNS datagrams": these numbers are on the wire and must never change.
        Assert.Equal(
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            new[]
            {
                GnsErrorCode.NotFound, GnsErrorCode.BadSignature, GnsErrorCode.StaleVersion, GnsErrorCode.Malformed,
                GnsErrorCode.TooLarge, GnsErrorCode.RateLimited, GnsErrorCode.NameTaken, GnsErrorCode.UnsupportedVersion,
                GnsErrorCode.Internal, GnsErrorCode.InvalidRecord, GnsErrorCode.Unavailable,
            }.Select(c => (int)c));
        Assert.Equal(
            [0x01, 0x02, 0x03, 0x04, 0x05, 0x81, 0x83, 0x84, 0x85, 0xFF],
            new[]
            {
                GnsMessageType.LookupGuid, GnsMessageType.LookupName, GnsMessageType.Reverse, GnsMessageType.Update,
                GnsMessageType.Remove, GnsMessageType.RecordReply, GnsMessageType.GuidListReply, GnsMessageType.UpdateAck,
                GnsMessageType.RemoveAck, GnsMessageType.Error,
            }.Select(t => (int)t));
    }

    [Fact]
    public void Unknown_error_code_is_passed_through_to_the_caller()
    {
        var response = GnsDatagram.ParseResponse(Hex("4d47", "01", "ff", "00000001", "c8", "00"));

        Assert.Equal((GnsErrorCode)200, response.ErrorCode);
    }

    // ---- Reflect -------------------------------------------------------------------------------

    [Fact]
    public void Reflect_is_a_flags_byte_padded_to_sixteen_bytes()
    {
        Assert.Equal(Hex("4d47", "01", "06", "0000002a", "01", "00000000000000"), GnsDatagram.Reflect(42, GnsDatagram.ReflectFromOtherPort));
        Assert.Equal(Hex("4d47", "01", "06", "0000002a", "00"), GnsDatagram.Reflect(42, padTo: 0));

        var request = GnsDatagram.ParseRequest(GnsDatagram.Reflect(42, GnsDatagram.ReflectFromOtherPort));
        Assert.Equal(GnsMessageType.Reflect, request.Type);
        Assert.Equal(GnsDatagram.ReflectFromOtherPort, request.ReflectFlags);
    }

    [Fact]
    public void Reflect_reply_pins_flags_observed_endpoint_and_other_port()
    {
        var buffer = new byte[GnsDatagram.MaxDatagramSize];
        var written = GnsDatagram.WriteReflectReply(buffer, 42, GnsDatagram.ReflectFromOtherPort,
            new IPEndPoint(IPAddress.Parse("::ffff:198.51.100.7"), 40000), 7354);

        Assert.Equal(Hex("4d47", "01", "86", "0000002a", "01", "04", "c6336407", "9c40", "1cba"), buffer[..written]);
        Assert.Equal(written, GnsDatagram.ReflectReplySize(IPAddress.Parse("198.51.100.7")));
        Assert.True(GnsDatagram.IsReflectFromOtherPort(buffer.AsSpan(0, written)));
        var reply = GnsDatagram.ParseResponse(buffer.AsSpan(0, written));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("198.51.100.7"), 40000), reply.Observed);
        Assert.Equal(7354, reply.OtherPort);
        Assert.Equal(GnsDatagram.ReflectFromOtherPort, reply.ReflectFlags);
    }

    [Fact]
    public void Largest_reflect_reply_fits_three_times_a_padded_reflect()
    {
        Assert.Equal(30, GnsDatagram.ReflectReplySize(IPAddress.Parse("2001:db8::1")));
        Assert.True(GnsDatagram.ReplyBudget(GnsDatagram.ReflectPaddedSize) >= 30);
        Assert.True(GnsDatagram.ReplyBudget(GnsDatagram.HeaderSize + 1) < 30); // an unpadded reflect gets TooLarge for IPv6
    }

    [Theory]
    [InlineData("4d470106000000010200")] // unknown flag in the request
    [InlineData("4d4701060000000101ff")] // non-zero byte after the content
    [InlineData("4d47010600000001")] // no flags byte
    public void Reflect_with_unknown_flags_or_garbage_is_malformed(string hex)
        => Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest(Convert.FromHexString(hex)));

    [Theory]
    [InlineData("4d4701860000000102040000000000010000")] // unknown flag in the reply
    [InlineData("4d4701860000000100040000000000010000ff")] // a byte after the other port
    [InlineData("4d470186000000010004000000000001")] // no other port
    [InlineData("4d4701860000000100050000000000010000")] // unknown address family
    public void Reflect_reply_that_is_not_exactly_its_fields_is_malformed(string hex)
        => Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseResponse(Convert.FromHexString(hex)));

    [Fact]
    public void Reflect_flags_outside_the_one_defined_bit_are_refused_by_the_encoder()
        => Assert.Throws<ArgumentException>(() => GnsDatagram.Reflect(1, 0x02));

    internal static HostGuid[] Guids(int count)
        => Enumerable.Range(0, count).Select(i => HostGuid.FromPublicKey(RecordBytes.U32((uint)i).Concat(new byte[28]).ToArray())).ToArray();
}
