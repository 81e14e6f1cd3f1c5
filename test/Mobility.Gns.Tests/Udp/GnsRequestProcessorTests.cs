using Mobility.Gns.Udp;
using Mobility.Protocol.Gns;

namespace Mobility.Gns.Tests.Udp;

/// <summary>The datagram protocol end to end without sockets: request bytes in, reply bytes out.</summary>
public sealed class GnsRequestProcessorTests : IAsyncLifetime
{
    private readonly GnsFixture _gns = new();
    private readonly HostKey _key = HostKey.Generate();
    private readonly HostKey _other = HostKey.Generate();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _gns.DisposeAsync();
        _key.Dispose();
        _other.Dispose();
    }

    private async Task<GnsResponse> Send(byte[] request, IPEndPoint? source = null)
    {
        var reply = await _gns.SendAsync(request, source);
        Assert.True(reply.Length > 0, "expected a reply");
        Assert.True(reply.Length <= GnsDatagram.ReplyBudget(request.Length), $"reply {reply.Length} over budget of {request.Length}-byte request");
        return GnsDatagram.ParseResponse(reply);
    }

    private static void AssertError(GnsResponse response, GnsErrorCode code)
    {
        Assert.Equal(GnsMessageType.Error, response.Type);
        Assert.Equal(code, response.ErrorCode);
    }

    [Fact]
    public async Task Registered_record_is_returned_by_guid_lookup_byte_for_byte()
    {
        var record = Records.Make(_key, 1, "alpha", addresses: "192.0.2.10");
        var ack = await Send(GnsDatagram.Update(7, record));
        Assert.Equal(GnsMessageType.UpdateAck, ack.Type);
        Assert.Equal(7u, ack.RequestId);
        Assert.Equal(1ul, ack.Version);

        var reply = await Send(GnsDatagram.LookupGuid(8, _key.Guid));
        Assert.Equal(GnsMessageType.RecordReply, reply.Type);
        Assert.Equal(8u, reply.RequestId);
        Assert.Equal(record.Encoded.ToArray(), reply.Record!.Encoded.ToArray());
        Assert.True(reply.Record.Verify());
    }

    [Fact]
    public async Task Update_ack_carries_the_source_address_and_port_the_server_saw()
    {
        var source = new IPEndPoint(IPAddress.Parse("203.0.113.9"), 50999);
        var ack = await Send(GnsDatagram.Update(1, Records.Make(_key, 1)), source);
        Assert.Equal(source, ack.Observed);
    }

    [Fact]
    public async Task Update_ack_reports_an_ipv4_mapped_source_as_ipv4()
    {
        var source = new IPEndPoint(IPAddress.Parse("::ffff:203.0.113.9"), 50999);
        var ack = await Send(GnsDatagram.Update(1, Records.Make(_key, 1)), source);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("203.0.113.9"), 50999), ack.Observed);
    }

    [Fact]
    public async Task Reflect_reports_the_source_and_marks_the_reply_for_the_other_port_only_when_there_is_one()
    {
        var source = new IPEndPoint(IPAddress.Parse("::ffff:203.0.113.9"), 40001);
        var plain = await Send(GnsDatagram.Reflect(1, GnsDatagram.ReflectFromOtherPort), source);
        Assert.Equal(GnsMessageType.ReflectReply, plain.Type);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("203.0.113.9"), 40001), plain.Observed);
        Assert.Equal(0, plain.OtherPort);
        Assert.Equal(0, plain.ReflectFlags); // no other port: answered from this one, and says so

        var reply = new byte[GnsDatagram.MaxDatagramSize];
        var request = GnsDatagram.Reflect(2, GnsDatagram.ReflectFromOtherPort);
        var length = await _gns.Processor.ProcessAsync(request, reply, source, CancellationToken.None, otherPort: 7354).WithTimeout();
        Assert.True(GnsDatagram.IsReflectFromOtherPort(reply.AsSpan(0, length)));
        Assert.Equal(7354, GnsDatagram.ParseResponse(reply.AsSpan(0, length)).OtherPort);
    }

    [Fact]
    public async Task Unpadded_reflect_from_ipv6_gets_too_large_within_its_budget()
    {
        var source = new IPEndPoint(IPAddress.Parse("2001:db8::9"), 40001);
        AssertError(await Send(GnsDatagram.Reflect(1, padTo: 0), source), GnsErrorCode.TooLarge);
        Assert.Equal(GnsMessageType.ReflectReply, (await Send(GnsDatagram.Reflect(2), source)).Type);
    }

    [Fact]
    public async Task Name_lookup_ignores_case_and_unknown_name_is_not_found()
    {
        await Send(GnsDatagram.Update(1, Records.Make(_key, 1, "Printer-3")));
        var reply = await Send(GnsDatagram.LookupName(2, "PRINTER-3"));
        Assert.Equal(_key.Guid, reply.Record!.Guid);
        AssertError(await Send(GnsDatagram.LookupName(3, "scanner")), GnsErrorCode.NotFound);
    }

    [Fact]
    public async Task Lookup_of_unknown_guid_is_not_found()
        => AssertError(await Send(GnsDatagram.LookupGuid(1, _other.Guid)), GnsErrorCode.NotFound);

    [Fact]
    public async Task Reverse_lists_the_guids_whose_records_carry_the_address()
    {
        await Send(GnsDatagram.Update(1, Records.Make(_key, 1, addresses: "192.0.2.50")));
        await Send(GnsDatagram.Update(2, Records.Make(_other, 1, addresses: ["192.0.2.50", "192.0.2.51"])));
        var reply = await Send(GnsDatagram.Reverse(3, IPAddress.Parse("192.0.2.50")));
        Assert.Equal(GnsMessageType.GuidListReply, reply.Type);
        Assert.Equal(new[] { _key.Guid, _other.Guid }.Order(), reply.Guids.Order());
        Assert.False(reply.Truncated);
        var none = await Send(GnsDatagram.Reverse(4, IPAddress.Parse("192.0.2.99")));
        Assert.Empty(none.Guids);
    }

    [Fact]
    public async Task Reverse_with_more_guids_than_fit_is_truncated_with_the_flag()
    {
        // As many unattested claims as one address holds (Gns:Claims:MaxUnattestedPerAddress).
        var keys = Enumerable.Range(0, new Claims.ClaimLimits().MaxUnattestedPerAddress).Select(_ => HostKey.Generate()).ToList();
        foreach (var k in keys)
        {
            await Send(GnsDatagram.Update(1, Records.Make(k, 1, addresses: "192.0.2.77")));
        }

        // An unpadded reverse request (25 bytes) allows a 75-byte reply: room for three GUIDs.
        var request = GnsDatagram.Reverse(5, IPAddress.Parse("192.0.2.77"), padTo: 0);
        var reply = await Send(request);
        Assert.True(reply.Truncated);
        Assert.Equal(((3 * request.Length) - GnsDatagram.HeaderSize - 2) / HostGuid.Size, reply.Guids.Length);

        var padded = await Send(GnsDatagram.Reverse(6, IPAddress.Parse("192.0.2.77")));
        Assert.Equal(keys.Count, padded.Guids.Length);
        Assert.False(padded.Truncated);
        keys.ForEach(k => k.Dispose());
    }

    [Fact]
    public async Task Remove_signed_by_the_owner_leaves_nothing_to_look_up()
    {
        await Send(GnsDatagram.Update(1, Records.Make(_key, 3, "gone")));
        var ack = await Send(GnsDatagram.Remove(2, GnsRemoval.Create(_key, 4)));
        Assert.Equal(GnsMessageType.RemoveAck, ack.Type);
        Assert.Equal(4ul, ack.Version);
        AssertError(await Send(GnsDatagram.LookupGuid(3, _key.Guid)), GnsErrorCode.NotFound);
        AssertError(await Send(GnsDatagram.LookupName(4, "gone")), GnsErrorCode.NotFound);
    }

    [Fact]
    public async Task Remove_signed_by_another_key_is_rejected_and_the_record_stays()
    {
        await Send(GnsDatagram.Update(1, Records.Make(_key, 3)));
        var forged = GnsRemoval.Create(_other, 4).Encoded.ToArray();
        _key.Guid.WriteTo(forged.AsSpan(1));   // claims the victim's GUID, signed by another key
        var request = GnsDatagram.Remove(2, GnsRemoval.Decode(forged));
        AssertError(await Send(request), GnsErrorCode.BadSignature);
        Assert.NotNull(await _gns.Store.GetAsync(_key.Guid).WithTimeout());
    }

    [Fact]
    public async Task Remove_of_unknown_guid_is_not_found()
        => AssertError(await Send(GnsDatagram.Remove(1, GnsRemoval.Create(_key, 1))), GnsErrorCode.NotFound);

    [Fact]
    public async Task Older_record_or_another_record_of_the_stored_version_is_rejected_as_stale()
    {
        var v5 = Records.Make(_key, 5, "five");
        await Send(GnsDatagram.Update(1, v5));
        AssertError(await Send(GnsDatagram.Update(2, Records.Make(_key, 5, "other"))), GnsErrorCode.StaleVersion);
        AssertError(await Send(GnsDatagram.Update(3, Records.Make(_key, 4))), GnsErrorCode.StaleVersion);
        Assert.Equal(v5.Encoded.ToArray(), (await _gns.Store.GetAsync(_key.Guid).WithTimeout())!.Encoded.ToArray());
    }

    [Fact]
    public async Task Retransmitted_identical_update_gets_a_normal_ack_with_the_observed_address()
    {
        var v5 = Records.Make(_key, 5);
        await Send(GnsDatagram.Update(1, v5), new IPEndPoint(IPAddress.Parse("203.0.113.9"), 50999));
        var retry = new IPEndPoint(IPAddress.Parse("203.0.113.9"), 51000);
        var ack = await Send(GnsDatagram.Update(2, v5), retry);
        Assert.Equal(GnsMessageType.UpdateAck, ack.Type);
        Assert.Equal(5ul, ack.Version);
        Assert.Equal(retry, ack.Observed);
        Assert.Equal(v5.Encoded.ToArray(), (await _gns.Store.GetAsync(_key.Guid).WithTimeout())!.Encoded.ToArray());
    }

    [Fact]
    public async Task Record_replayed_after_removal_is_rejected_as_stale()
    {
        var v1 = Records.Make(_key, 1);
        await Send(GnsDatagram.Update(1, v1));
        await Send(GnsDatagram.Remove(2, GnsRemoval.Create(_key, 2)));
        AssertError(await Send(GnsDatagram.Update(3, v1)), GnsErrorCode.StaleVersion);
    }

    [Fact]
    public async Task Name_held_by_another_guid_is_refused()
    {
        await Send(GnsDatagram.Update(1, Records.Make(_key, 1, "shared")));
        AssertError(await Send(GnsDatagram.Update(2, Records.Make(_other, 1, "shared"))), GnsErrorCode.NameTaken);
    }

    [Fact]
    public async Task Record_with_guid_not_derived_from_its_key_is_rejected_with_bad_signature()
    {
        var bytes = Records.Make(_key, 1).Encoded.ToArray();
        _other.Guid.WriteTo(bytes.AsSpan(1));
        AssertError(await Send(UpdateOf(bytes)), GnsErrorCode.BadSignature);
        Assert.Null(await _gns.Store.GetVersionAsync(_other.Guid).WithTimeout());
    }

    [Fact]
    public async Task Record_carrying_another_hosts_key_and_guid_but_not_signed_by_it_is_rejected()
    {
        // GUID and key of the victim, signature of the attacker: GUID = hash(key) holds, the signature does not.
        var bytes = Records.Make(_other, 1).Encoded.ToArray();
        _key.Guid.WriteTo(bytes.AsSpan(1));
        _key.PublicKey.CopyTo(bytes.AsSpan(1 + HostGuid.Size));
        AssertError(await Send(UpdateOf(bytes)), GnsErrorCode.BadSignature);
        Assert.Null(await _gns.Store.GetVersionAsync(_key.Guid).WithTimeout());
    }

    [Fact]
    public async Task Record_with_any_single_flipped_bit_is_never_stored()
    {
        var encoded = Records.Make(_key, 1, "flip", addresses: ["192.0.2.1", "2001:db8::1"]).Encoded.ToArray();
        for (var i = 0; i < encoded.Length; i++)
        {
            var bytes = (byte[])encoded.Clone();
            bytes[i] ^= 0x01;
            var reply = GnsDatagram.ParseResponse(await _gns.SendAsync(UpdateOf(bytes)));
            Assert.Equal(GnsMessageType.Error, reply.Type);
            Assert.Contains(reply.ErrorCode, new[] { GnsErrorCode.BadSignature, GnsErrorCode.Malformed });
        }

        Assert.Null(await _gns.Store.GetVersionAsync(_key.Guid).WithTimeout());
    }

    [Fact]
    public async Task Ttl_over_the_maximum_is_refused_as_invalid()
    {
        var ttl = (uint)_gns.Options.MaxTtl.TotalSeconds + 1;
        AssertError(await Send(GnsDatagram.Update(1, Records.Make(_key, 1, ttl: ttl))), GnsErrorCode.InvalidRecord);
        var atMax = await Send(GnsDatagram.Update(1, Records.Make(_key, 1, ttl: ttl - 1)));
        Assert.Equal(GnsMessageType.UpdateAck, atMax.Type);
    }

    [Fact]
    public async Task Record_issued_beyond_the_clock_skew_is_refused_until_its_time_comes()
    {
        var issued = _gns.Time.GetUtcNow() + _gns.Options.MaxClockSkew + TimeSpan.FromMinutes(1);
        var record = Records.Make(_key, 1, issuedAt: issued);
        AssertError(await Send(GnsDatagram.Update(1, record)), GnsErrorCode.InvalidRecord);
        _gns.Time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(GnsMessageType.UpdateAck, (await Send(GnsDatagram.Update(2, record))).Type);
    }

    [Fact]
    public async Task Largest_record_fits_a_padded_lookup_but_an_unpadded_one_gets_too_large()
    {
        var big = Records.Largest(_key, 1);
        await Send(GnsDatagram.Update(1, big));
        var padded = await Send(GnsDatagram.LookupGuid(2, _key.Guid));
        Assert.Equal(big.Encoded.ToArray(), padded.Record!.Encoded.ToArray());
        AssertError(await Send(GnsDatagram.LookupGuid(3, _key.Guid, padTo: 0)), GnsErrorCode.TooLarge);
        AssertError(await Send(GnsDatagram.LookupName(4, big.Name!, padTo: 0)), GnsErrorCode.TooLarge);
    }

    [Fact]
    public async Task Reply_never_exceeds_three_times_the_request_for_any_request_type_and_size()
    {
        var big = Records.Largest(_key, 1);
        await Send(GnsDatagram.Update(1, big));
        var keys = Enumerable.Range(0, 70).Select(_ => HostKey.Generate()).ToList();
        foreach (var k in keys)
        {
            await Send(GnsDatagram.Update(1, Records.Make(k, 1, addresses: "2001:db8::1")));
        }

        var random = new Random(1234);
        var version = 2ul;
        for (var i = 0; i < 400; i++)
        {
            var pad = random.Next(0, GnsDatagram.MaxDatagramSize + 1);
            byte[] request = (i % 6) switch
            {
                0 => GnsDatagram.LookupGuid((uint)i, _key.Guid, pad),
                1 => GnsDatagram.LookupName((uint)i, big.Name!, pad),
                2 => GnsDatagram.Reverse((uint)i, IPAddress.Parse("2001:db8::1"), pad),
                3 => Padded(GnsDatagram.Update((uint)i, Records.Make(_other, version++)), pad),
                4 => Padded(GnsDatagram.Remove((uint)i, GnsRemoval.Create(_other, version++)), pad),
                _ => Padded(GnsDatagram.LookupGuid((uint)i, HostGuid.FromPublicKey(new byte[32]), 0), pad),
            };
            var reply = await _gns.SendAsync(request);
            Assert.InRange(reply.Length, 1, GnsDatagram.ReplyBudget(request.Length));
            GnsDatagram.ParseResponse(reply);
        }

        keys.ForEach(k => k.Dispose());
    }

    [Fact]
    public async Task Update_truncated_at_every_offset_gets_a_malformed_reply_or_is_dropped()
    {
        var update = GnsDatagram.Update(9, Records.Make(_key, 1, "cut", addresses: ["192.0.2.1", "2001:db8::5"]));
        for (var length = 0; length < update.Length; length++)
        {
            var reply = await _gns.SendAsync(update[..length]);
            if (length < GnsDatagram.HeaderSize)
            {
                Assert.Empty(reply);
                continue;
            }

            Assert.InRange(reply.Length, 1, GnsDatagram.ReplyBudget(length));
            AssertError(GnsDatagram.ParseResponse(reply), GnsErrorCode.Malformed);
        }

        Assert.Null(await _gns.Store.GetVersionAsync(_key.Guid).WithTimeout());
    }

    [Fact]
    public async Task Random_datagrams_never_throw_and_never_get_a_reply_over_budget()
    {
        var random = new Random(42);
        for (var i = 0; i < 3000; i++)
        {
            var bytes = new byte[random.Next(0, 1600)];
            random.NextBytes(bytes);
            if (i % 2 == 0 && bytes.Length >= GnsDatagram.HeaderSize)
            {
                // Half of them look like GNS requests so parsing goes deep.
                bytes[0] = (byte)'M';
                bytes[1] = (byte)'G';
                bytes[2] = GnsDatagram.ProtocolVersion;
                bytes[3] = (byte)random.Next(1, 6);
            }

            var reply = await _gns.SendAsync(bytes);
            Assert.True(reply.Length <= GnsDatagram.ReplyBudget(bytes.Length));
            if (reply.Length > 0)
            {
                GnsDatagram.ParseResponse(reply);
            }
        }
    }

    [Fact]
    public async Task Oversized_datagram_gets_a_malformed_reply_within_the_largest_datagram()
    {
        var request = Padded(GnsDatagram.LookupGuid(1, _key.Guid, 0), 5000);
        var reply = await _gns.SendAsync(request);
        Assert.InRange(reply.Length, 1, GnsDatagram.MaxDatagramSize);
        AssertError(GnsDatagram.ParseResponse(reply), GnsErrorCode.Malformed);
    }

    [Fact]
    public async Task Unknown_protocol_version_gets_unsupported_version()
    {
        var request = GnsDatagram.LookupGuid(77, _key.Guid);
        request[2] = 9;
        var reply = await Send(request);
        AssertError(reply, GnsErrorCode.UnsupportedVersion);
        Assert.Equal(77u, reply.RequestId);
    }

    [Fact]
    public async Task Unknown_request_type_gets_malformed()
    {
        var request = GnsDatagram.LookupGuid(1, _key.Guid);
        request[3] = 0x42;
        AssertError(await Send(request), GnsErrorCode.Malformed);
    }

    [Theory]
    [InlineData((byte)GnsMessageType.Error)]
    [InlineData((byte)GnsMessageType.RecordReply)]
    [InlineData((byte)GnsMessageType.UpdateAck)]
    [InlineData((byte)0x80)]
    public async Task Reply_type_datagrams_are_dropped_so_two_servers_cannot_be_made_to_loop(byte type)
    {
        var request = GnsDatagram.LookupGuid(1, _key.Guid);
        request[3] = type;
        Assert.Empty(await _gns.SendAsync(request));
        Assert.Equal(GnsDatagramKind.Drop, GnsRequestProcessor.Classify(request));
    }

    [Fact]
    public async Task Absurd_count_and_length_fields_are_malformed()
    {
        var update = GnsDatagram.Update(1, Records.Make(_key, 1));
        // Name length is at header + 1 + 20 + 32 + 8 + 8 + 4; the locator count follows the (empty) name.
        var nameLengthAt = GnsDatagram.HeaderSize + 1 + HostGuid.Size + HostKey.PublicKeySize + 8 + 8 + 4;
        var badName = (byte[])update.Clone();
        badName[nameLengthAt] = 255;
        AssertError(await Send(badName), GnsErrorCode.Malformed);

        var badCount = (byte[])update.Clone();
        badCount[nameLengthAt + 1] = 255;
        AssertError(await Send(badCount), GnsErrorCode.Malformed);

        var lookupName = GnsDatagram.LookupName(1, "abc");
        lookupName[GnsDatagram.HeaderSize] = 250;
        AssertError(await Send(lookupName), GnsErrorCode.Malformed);
    }

    [Fact]
    public async Task Hostile_datagrams_are_logged_at_debug_only()
    {
        var random = new Random(7);
        for (var i = 0; i < 200; i++)
        {
            var bytes = new byte[random.Next(8, 300)];
            random.NextBytes(bytes);
            bytes[0] = (byte)'M';
            bytes[1] = (byte)'G';
            await _gns.SendAsync(bytes);
        }

        var forged = Records.Make(_other, 1).Encoded.ToArray();
        _key.Guid.WriteTo(forged.AsSpan(1));
        await _gns.SendAsync(UpdateOf(forged));

        Assert.NotEmpty(_gns.ProcessorLog.Entries);
        Assert.All(_gns.ProcessorLog.Entries, e => Assert.True(e.Level <= LogLevel.Debug, e.Message));
        Assert.All(_gns.ServiceLog.Entries, e => Assert.True(e.Level <= LogLevel.Debug, e.Message));
    }

    [Fact]
    public async Task Store_failure_gets_an_internal_error_reply_not_an_exception()
    {
        await _gns.Store.DisposeAsync();
        AssertError(await Send(GnsDatagram.LookupGuid(1, _key.Guid)), GnsErrorCode.Internal);
    }

    private static byte[] UpdateOf(byte[] recordBytes)
    {
        var datagram = new byte[GnsDatagram.HeaderSize + recordBytes.Length];
        var template = GnsDatagram.LookupGuid(1, HostGuid.Empty, 0);
        template.AsSpan(0, GnsDatagram.HeaderSize).CopyTo(datagram);
        datagram[3] = (byte)GnsMessageType.Update;
        recordBytes.CopyTo(datagram.AsSpan(GnsDatagram.HeaderSize));
        return datagram;
    }

    private static byte[] Padded(byte[] datagram, int size)
    {
        if (size <= datagram.Length)
        {
            return datagram;
        }

        var padded = new byte[size];
        datagram.CopyTo(padded, 0);
        return padded;
    }
}
