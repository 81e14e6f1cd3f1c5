namespace Mobility.Protocol.Tests.Hostile;

/// <summary>
/// Raw bytes a peer could send: every truncation, mutations and random datagrams, oversized
/// datagrams, absurd counts, unknown numbers and trailing garbage. Each parser either throws
/// <see cref="MalformedMessageException"/> or returns something valid (<see cref="Check"/>).
/// </summary>
public class GnsHostileInputTests
{
    private const int Iterations = 20_000;

    /// <summary>A hang (an endless loop on some input) fails the test instead of stalling the run.</summary>
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(2);

    private static readonly byte[] RequestTypes = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
    private static readonly byte[] ReplyTypes = [0x81, 0x83, 0x84, 0x85, 0x86, 0xFF];

    public static TheoryData<string> RequestNames() => [.. Corpus.All.Requests.Select(m => m.Name)];

    public static TheoryData<string> ResponseNames() => [.. Corpus.All.Responses.Select(m => m.Name)];

    public static TheoryData<string> RecordNames() => [.. Corpus.All.Records.Select(m => m.Name)];

    // ---- Truncation ----------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(RequestNames))]
    public void Every_truncation_of_a_request_is_malformed_until_only_padding_is_missing(string name)
    {
        var message = Corpus.All.Requests.Single(m => m.Name == name);
        var whole = Check.Describe(GnsDatagram.ParseRequest(message.Bytes));

        for (var length = 0; length < message.Bytes.Length; length++)
        {
            var prefix = message.Bytes[..length];
            if (length < message.ContentLength)
            {
                Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest(prefix));
            }
            else
            {
                Assert.Equal(whole, Check.Describe(GnsDatagram.ParseRequest(prefix)));
            }
        }
    }

    [Theory]
    [MemberData(nameof(ResponseNames))]
    public void Every_truncation_of_a_reply_is_malformed(string name)
    {
        var message = Corpus.All.Responses.Single(m => m.Name == name);
        Check.Response(GnsDatagram.ParseResponse(message.Bytes));

        for (var length = 0; length < message.Bytes.Length; length++)
        {
            var prefix = message.Bytes[..length];
            Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseResponse(prefix));
        }
    }

    [Theory]
    [MemberData(nameof(RecordNames))]
    public void Every_truncation_of_a_record_is_malformed(string name)
    {
        var message = Corpus.All.Records.Single(m => m.Name == name);
        Check.Record(GnsRecord.Decode(message.Bytes));

        for (var length = 0; length < message.Bytes.Length; length++)
        {
            var prefix = message.Bytes[..length];
            Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(prefix));
        }
    }

    [Fact]
    public void Every_truncation_of_a_removal_is_malformed()
    {
        var bytes = Corpus.All.Removals[0].Bytes;
        Check.Removal(GnsRemoval.Decode(bytes));

        for (var length = 0; length < bytes.Length; length++)
        {
            var prefix = bytes[..length];
            Assert.Throws<MalformedMessageException>(() => GnsRemoval.Decode(prefix));
        }
    }

    // ---- Random and mutated bytes --------------------------------------------------------------

    [Fact]
    public Task Random_datagrams_are_malformed_or_valid_requests() => WithinDeadline(() =>
    {
        var random = new Random(20261127);
        var parsed = 0;
        for (var i = 0; i < Iterations; i++)
        {
            var input = RandomDatagram(random, random.Next(4) == 0 ? ReplyTypes : RequestTypes);
            parsed += Check.MalformedOrValid($"random #{i}", input, b => GnsDatagram.ParseRequest(b), Check.Request) ? 1 : 0;
        }

        // Mostly refused, but some lookups get through: the valid path was exercised too.
        Assert.InRange(parsed, 1, Iterations / 2);
    });

    [Fact]
    public Task Random_datagrams_are_malformed_or_valid_replies() => WithinDeadline(() =>
    {
        var random = new Random(20261128);
        var parsed = 0;
        for (var i = 0; i < Iterations; i++)
        {
            var input = RandomDatagram(random, random.Next(4) == 0 ? RequestTypes : ReplyTypes);
            parsed += Check.MalformedOrValid($"random #{i}", input, b => GnsDatagram.ParseResponse(b), Check.Response) ? 1 : 0;
        }

        Assert.InRange(parsed, 1, Iterations / 2);
    });

    [Fact]
    public Task Random_bytes_are_malformed_or_valid_records_and_removals() => WithinDeadline(() =>
    {
        var random = new Random(20261129);
        for (var i = 0; i < Iterations; i++)
        {
            var input = new byte[random.Next(4) == 0 ? random.Next(0, 20) : random.Next(100, 600)];
            random.NextBytes(input);
            if (input.Length > 0 && random.Next(4) != 0)
            {
                input[0] = 1; // format version, so the reader gets past the first byte
            }

            Check.MalformedOrValid($"random #{i}", input, b => GnsRecord.Decode(b), Check.Record);
            Check.MalformedOrValid($"random #{i}", input, b => GnsRemoval.Decode(b), Check.Removal);
        }
    });

    [Fact]
    public Task Mutated_requests_are_malformed_or_valid() => WithinDeadline(() =>
    {
        var random = new Random(1);
        var corpus = Corpus.All.Requests;
        var parsed = 0;
        for (var i = 0; i < Iterations; i++)
        {
            var input = Mutate(random, corpus[random.Next(corpus.Count)].Bytes);
            parsed += Check.MalformedOrValid($"mutation #{i}", input, b => GnsDatagram.ParseRequest(b), Check.Request) ? 1 : 0;
        }

        Assert.InRange(parsed, Iterations / 50, Iterations - 1);
    });

    [Fact]
    public Task Mutated_replies_are_malformed_or_valid() => WithinDeadline(() =>
    {
        var random = new Random(2);
        var corpus = Corpus.All.Responses;
        var parsed = 0;
        for (var i = 0; i < Iterations; i++)
        {
            var input = Mutate(random, corpus[random.Next(corpus.Count)].Bytes);
            parsed += Check.MalformedOrValid($"mutation #{i}", input, b => GnsDatagram.ParseResponse(b), Check.Response) ? 1 : 0;
        }

        Assert.InRange(parsed, Iterations / 50, Iterations - 1);
    });

    [Fact]
    public Task Valid_prefix_with_a_random_tail_is_malformed_or_valid() => WithinDeadline(() =>
    {
        var random = new Random(3);
        var all = Corpus.All;
        for (var i = 0; i < Iterations; i++)
        {
            var request = Splice(random, all.Requests[random.Next(all.Requests.Count)].Bytes);
            Check.MalformedOrValid($"splice #{i}", request, b => GnsDatagram.ParseRequest(b), Check.Request);
            var reply = Splice(random, all.Responses[random.Next(all.Responses.Count)].Bytes);
            Check.MalformedOrValid($"splice #{i}", reply, b => GnsDatagram.ParseResponse(b), Check.Response);
            var record = Splice(random, all.Records[random.Next(all.Records.Count)].Bytes);
            Check.MalformedOrValid($"splice #{i}", record, b => GnsRecord.Decode(b), Check.Record);
            var removal = Splice(random, all.Removals[0].Bytes);
            Check.MalformedOrValid($"splice #{i}", removal, b => GnsRemoval.Decode(b), Check.Removal);
        }
    });

    [Fact]
    public Task Mutated_record_that_still_decodes_never_verifies() => WithinDeadline(() =>
    {
        var random = new Random(4);
        var records = Corpus.All.Records;
        var decoded = 0;
        for (var i = 0; i < Iterations; i++)
        {
            var original = records[random.Next(records.Count)].Bytes;
            var input = Mutate(random, original);
            GnsRecord? record = null;
            Check.MalformedOrValid($"mutation #{i}", input, b => GnsRecord.Decode(b), r => record = r);
            if (record is not null && !input.AsSpan().SequenceEqual(original))
            {
                decoded++;
                Assert.False(record.Verify(), $"mutation #{i} verifies: {Convert.ToHexStringLower(input)}");
            }
        }

        Assert.True(decoded > Iterations / 10, $"only {decoded} mutations decoded");
    });

    [Fact]
    public Task Mutated_removal_that_still_decodes_never_verifies() => WithinDeadline(() =>
    {
        var random = new Random(5);
        var original = Corpus.All.Removals[0].Bytes;
        var publicKey = Convert.FromHexString(Rfc8032Test1PublicKey);
        for (var i = 0; i < Iterations / 4; i++)
        {
            var input = Mutate(random, original);
            GnsRemoval? removal = null;
            Check.MalformedOrValid($"mutation #{i}", input, b => GnsRemoval.Decode(b), r => removal = r);
            if (removal is not null && !input.AsSpan().SequenceEqual(original))
            {
                Assert.False(removal.Verify(publicKey), $"mutation #{i} verifies: {Convert.ToHexStringLower(input)}");
            }
        }
    });

    // ---- Oversized -----------------------------------------------------------------------------

    [Theory]
    [InlineData(1233)]
    [InlineData(1500)]
    [InlineData(9000)]
    [InlineData(65507)]
    [InlineData(1 << 20)]
    public void Datagram_larger_than_1232_bytes_is_malformed_whatever_it_holds(int size)
    {
        var request = new byte[size];
        GnsDatagram.LookupGuid(1, HostGuid.Parse(Test1Guid), padTo: 0).CopyTo(request, 0);
        var reply = new byte[size];
        Corpus.All.Responses.Single(m => m.Name == "remove ack").Bytes.CopyTo(reply, 0);

        Assert.Contains("1232", Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest(request)).Message, StringComparison.Ordinal);
        Assert.Contains("1232", Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseResponse(reply)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Megabyte_of_garbage_after_a_record_or_removal_is_malformed()
    {
        byte[] record = [.. Corpus.All.Records[0].Bytes, .. new byte[1 << 20]];
        byte[] removal = [.. Corpus.All.Removals[0].Bytes, .. Enumerable.Repeat((byte)0xFF, 1 << 20)];

        Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(record));
        Assert.Throws<MalformedMessageException>(() => GnsRemoval.Decode(removal));
    }

    // ---- Absurd counts and lengths -------------------------------------------------------------

    [Theory]
    [InlineData("ff", 0)]       // announces 255, holds nothing
    [InlineData("ff", 255)]     // announces 255, holds 255 letters: over the 63 limit
    [InlineData("40", 64)]      // 64: one over the limit
    [InlineData("3f", 62)]      // announces 63, holds 62
    [InlineData("00", 0)]       // empty name
    public void Lookup_by_name_with_a_bad_name_length_is_malformed(string length, int present)
    {
        byte[] datagram = [.. Hex("4d47", "01", "02", "00000001", length), .. Enumerable.Repeat((byte)'a', present)];

        Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest(datagram));
    }

    [Theory]
    [InlineData(255)]
    [InlineData(64)]
    public void Record_with_an_over_long_name_length_is_malformed(int length)
    {
        var record = RecordWith(nameLength: (byte)length, tail: [.. Enumerable.Repeat((byte)'a', length), 0, .. new byte[64]]);

        Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(record));
        Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest([.. Hex("4d47", "01", "04", "00000001"), .. record]));
    }

    [Theory]
    [InlineData(255, 0)]
    [InlineData(255, 16)]
    [InlineData(17, 17)]
    [InlineData(16, 15)]
    [InlineData(2, 1)]
    public void Record_whose_locator_count_exceeds_the_limit_or_its_locators_is_malformed(int announced, int present)
    {
        var locators = Enumerable.Repeat(Hex("01", "04", "c0000201", "0050"), present).SelectMany(b => b);
        var record = RecordWith(nameLength: 0, tail: [(byte)announced, .. locators, .. new byte[64]]);

        Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(record));
    }

    [Theory]
    [InlineData(255, 0)]
    [InlineData(255, 1)]
    [InlineData(255, 60)]   // 255 x 20 bytes could never fit in 1232
    [InlineData(2, 1)]
    [InlineData(1, 0)]
    public void Guid_list_whose_count_exceeds_its_body_is_malformed(int announced, int present)
    {
        byte[] datagram = [.. Hex("4d47", "01", "83", "00000001", "00"), (byte)announced, .. new byte[20 * present]];

        Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseResponse(datagram));
    }

    [Theory]
    [InlineData(255, 255)]
    [InlineData(201, 201)]
    [InlineData(255, 3)]
    [InlineData(10, 9)]
    public void Error_whose_text_length_is_over_200_or_over_its_body_is_malformed(int announced, int present)
    {
        byte[] datagram = [.. Hex("4d47", "01", "ff", "00000001", "01"), (byte)announced, .. Enumerable.Repeat((byte)'x', present)];

        Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseResponse(datagram));
    }

    [Fact]
    public void Error_text_that_is_not_utf8_is_read_with_replacement_characters()
    {
        var response = GnsDatagram.ParseResponse(Hex("4d47", "01", "ff", "00000001", "04", "03", "61ff62"));

        Assert.Equal("a\uFFFDb", response.ErrorMessage);
    }

    // ---- Unknown versions, types, formats, kinds, families, flags -----------------------------

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(255)]
    public void Request_of_another_protocol_version_is_malformed(byte version)
    {
        foreach (var message in Corpus.All.Requests)
        {
            var bytes = (byte[])message.Bytes.Clone();
            bytes[2] = version;

            var e = Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest(bytes));
            Assert.Contains("version", e.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(255)]
    public void Reply_of_another_protocol_version_is_malformed_unless_it_is_an_error(byte version)
    {
        foreach (var message in Corpus.All.Responses)
        {
            var bytes = (byte[])message.Bytes.Clone();
            bytes[2] = version;

            if (bytes[3] == (byte)GnsMessageType.Error)
            {
                Check.Response(GnsDatagram.ParseResponse(bytes));
            }
            else
            {
                Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseResponse(bytes));
            }
        }
    }

    [Fact]
    public void Request_of_any_type_but_the_six_request_types_is_malformed()
    {
        for (var type = 0; type < 256; type++)
        {
            if (RequestTypes.Contains((byte)type))
            {
                continue;
            }

            foreach (var message in Corpus.All.Requests.Concat(Corpus.All.Responses))
            {
                var bytes = (byte[])message.Bytes.Clone();
                bytes[3] = (byte)type;

                Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest(bytes));
            }
        }
    }

    [Fact]
    public void Reply_of_any_type_but_the_six_reply_types_is_malformed()
    {
        for (var type = 0; type < 256; type++)
        {
            if (ReplyTypes.Contains((byte)type))
            {
                continue;
            }

            foreach (var message in Corpus.All.Responses.Concat(Corpus.All.Requests))
            {
                var bytes = (byte[])message.Bytes.Clone();
                bytes[3] = (byte)type;

                Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseResponse(bytes));
            }
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(255)]
    public void Record_or_removal_of_an_unknown_format_is_malformed(byte format)
    {
        foreach (var message in Corpus.All.Records.Concat(Corpus.All.Removals))
        {
            var bytes = (byte[])message.Bytes.Clone();
            bytes[0] = format;

            Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(bytes));
            Assert.Throws<MalformedMessageException>(() => GnsRemoval.Decode(bytes));
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(0x81)]
    [InlineData(255)]
    public void Record_with_an_unknown_locator_kind_is_malformed(byte kind)
    {
        var record = RecordWith(nameLength: 0, tail: [1, kind, .. Hex("04", "c0000201", "0050"), .. new byte[64]]);

        Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(record));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    [InlineData(10)]
    [InlineData(41)]
    [InlineData(255)]
    public void Address_of_an_unknown_family_is_malformed_wherever_it_appears(byte family)
    {
        var padding = new byte[32];
        var record = RecordWith(nameLength: 0, tail: [1, 1, family, .. padding, .. new byte[64]]);
        byte[] reverse = [.. Hex("4d47", "01", "03", "00000001"), family, .. padding];
        byte[] ack = [.. Hex("4d47", "01", "84", "00000001", "0000000000000001"), family, .. padding];

        Assert.Throws<MalformedMessageException>(() => GnsRecord.Decode(record));
        Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest(reverse));
        Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseResponse(ack));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(0x80)]
    [InlineData(0xFF)]
    public void Guid_list_with_unknown_flags_is_malformed(byte flags)
    {
        byte[] datagram = [.. Hex("4d47", "01", "83", "00000001"), flags, 0];

        Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseResponse(datagram));
    }

    // ---- Trailing garbage ----------------------------------------------------------------------

    [Theory]
    [InlineData(0x01)]
    [InlineData(0x80)]
    [InlineData(0xFF)]
    public void Request_with_a_non_zero_byte_after_its_content_is_malformed(byte garbage)
    {
        foreach (var message in Corpus.All.Requests)
        {
            byte[] appended = [.. message.Bytes, garbage];
            var inPadding = (byte[])message.Bytes.Clone();
            inPadding[^1] = message.ContentLength < message.Bytes.Length ? garbage : inPadding[^1];

            Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest(appended));
            if (message.ContentLength < message.Bytes.Length)
            {
                Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseRequest(inPadding));
            }
        }
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0x01)]
    [InlineData(0xFF)]
    public void Reply_with_any_byte_after_its_content_is_malformed(byte garbage)
    {
        foreach (var message in Corpus.All.Responses)
        {
            byte[] appended = [.. message.Bytes, garbage];

            Assert.Throws<MalformedMessageException>(() => GnsDatagram.ParseResponse(appended));
        }
    }

    // ---- Generators ----------------------------------------------------------------------------

    private static Task WithinDeadline(Action action) => Task.Run(action).WaitAsync(Deadline);

    /// <summary>Record bytes up to and including the TTL (from the test vector), then a name length and <paramref name="tail"/>.</summary>
    private static byte[] RecordWith(byte nameLength, byte[] tail)
        => [.. Corpus.All.Records[0].Bytes.AsSpan(0, 73), nameLength, .. tail];

    private static byte[] RandomDatagram(Random random, byte[] types)
    {
        var length = random.Next(4) switch
        {
            0 => random.Next(0, 16),
            1 => random.Next(16, 64),
            2 => random.Next(64, 600),
            _ => random.Next(600, 1300),
        };
        var bytes = new byte[length];
        random.NextBytes(bytes);
        if (length >= 2 && random.Next(8) != 0)
        {
            bytes[0] = (byte)'M';
            bytes[1] = (byte)'G';
        }

        if (length >= 3 && random.Next(4) != 0)
        {
            bytes[2] = GnsDatagram.ProtocolVersion;
        }

        if (length >= 4 && random.Next(8) != 0)
        {
            bytes[3] = types[random.Next(types.Length)];
        }

        if (length > 9 && random.Next(2) == 0)
        {
            // Short counts and lengths, so that more datagrams are consistent with their size.
            bytes[8] = (byte)random.Next(0, 8);
            bytes[9] = (byte)random.Next(0, 8);
            bytes.AsSpan(10 + random.Next(Math.Max(1, length - 10))).Clear();
        }

        return bytes;
    }

    private static readonly byte[] Interesting = [0x00, 0x01, 0x02, 0x04, 0x06, 0x10, 0x11, 0x3F, 0x40, 0x7F, 0x80, 0xC8, 0xFE, 0xFF];

    private static byte[] Mutate(Random random, byte[] original)
    {
        var bytes = new List<byte>(original);
        var mutations = random.Next(1, 5);
        for (var m = 0; m < mutations; m++)
        {
            var at = random.Next(bytes.Count + 1);
            switch (random.Next(8))
            {
                case 0 when at < bytes.Count:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1 when at < bytes.Count:
                    bytes[at] = Interesting[random.Next(Interesting.Length)];
                    break;
                case 2 when at < bytes.Count:
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 3:
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
                case 4:
                    bytes.InsertRange(at, Enumerable.Range(0, random.Next(1, 9)).Select(_ => (byte)random.Next(256)));
                    break;
                case 5:
                    bytes.RemoveRange(at, random.Next(0, Math.Min(20, bytes.Count - at) + 1));
                    break;
                case 6:
                    var length = random.Next(0, Math.Min(40, bytes.Count - at) + 1);
                    bytes.InsertRange(random.Next(bytes.Count + 1), bytes.GetRange(at, length));
                    break;
                default:
                    bytes.AddRange(random.Next(2) == 0
                        ? new byte[random.Next(1, 32)]
                        : Enumerable.Range(0, random.Next(1, 32)).Select(_ => (byte)random.Next(256)));
                    break;
            }
        }

        return [.. bytes];
    }

    private static byte[] Splice(Random random, byte[] original)
    {
        var keep = random.Next(original.Length + 1);
        var tail = new byte[random.Next(0, 200)];
        random.NextBytes(tail);
        return [.. original.AsSpan(0, keep), .. tail];
    }
}
