using Mobility.Protocol.Relay;

namespace Mobility.Protocol.Tests.Relay;

/// <summary>The relay protocol's messages byte by byte (docs/protocol.md, "Relay"), and hostile input.</summary>
public class RelayMessageTests
{
    private static readonly byte[] Nonce = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
    private static readonly byte[] SpliceId = Enumerable.Range(0, 16).Select(i => (byte)(0xA0 + i)).ToArray();
    private static readonly IPEndPoint RelayEndPoint = new(IPAddress.Parse("192.0.2.7"), 7395);

    /// <summary>
    /// Computed apart from this code with Python's cryptography: the RFC 8032 TEST 1 key signs
    /// <c>0x1a || "mobility/relay-register/v1" || nonce 00..1f || GUID || 04 c0 00 02 07 || 1c e3</c>.
    /// </summary>
    private const string PinnedProof =
        "4d524c590103" + Test1Guid + Rfc8032Test1PublicKey + "04c0000207" + "1ce3" +
        "3d361e471b519be20c2d1e31e18f50ca73758cc8a614fc1d8d7020ffc87c26e3dfcc07d83a7444b4a0b7a6b180eacbaabd66bc1e2a708ada66bd11d336af8201";

    private static (bool Ok, RelayMessage? Message, long Consumed) Read(byte[] bytes)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        var ok = RelayMessage.TryRead(ref reader, out var message);
        return (ok, ok ? message : null, reader.Consumed);
    }

    public static TheoryData<string, string> Pinned => new()
    {
        { "register", "4d524c590101" },
        { "challenge", "4d524c590102" + Convert.ToHexStringLower(Nonce) },
        { "result-ok", "4d524c59010400" },
        { "result-unknown-splice", "4d524c59010407" },
        { "splice-request", "4d524c590105" + Convert.ToHexStringLower(SpliceId) },
        { "ping", "4d524c590106" + "0102030405060708" },
        { "pong", "4d524c590107" + "0102030405060708" },
        { "dial", "4d524c590108" + Test1Guid },
        { "accept", "4d524c590109" + Test1Guid + Convert.ToHexStringLower(SpliceId) },
        { "proof", PinnedProof },
    };

    private static RelayMessage Build(string name)
    {
        var guid = HostGuid.Parse(Test1Guid);
        return name switch
        {
            "register" => RelayRegister.Instance,
            "challenge" => new RelayChallenge(Nonce),
            "result-ok" => new RelayResult(RelayStatus.Ok),
            "result-unknown-splice" => new RelayResult(RelayStatus.UnknownSplice),
            "splice-request" => new RelaySpliceRequest(SpliceId),
            "ping" => new RelayPing(0x0102030405060708),
            "pong" => new RelayPong(0x0102030405060708),
            "dial" => new RelayDial(guid),
            "accept" => new RelayAccept(guid, SpliceId),
            _ => RelayProof.Create(Test1Key(), Nonce, RelayEndPoint),
        };
    }

    [Theory]
    [MemberData(nameof(Pinned))]
    public void Messages_encode_to_the_pinned_bytes_and_read_back_leaving_what_follows(string name, string hex)
    {
        var message = Build(name);
        var bytes = message.Encode();
        Assert.Equal(hex, Convert.ToHexStringLower(bytes));
        Assert.Equal(bytes.Length, message.Size);

        // A spliced stream may follow the header in the same segment: it stays unread.
        var (ok, parsed, consumed) = Read([.. bytes, .. "SSH-2.0-"u8]);
        Assert.True(ok);
        Assert.Equal(bytes.Length, consumed);
        Assert.Equal(bytes, parsed!.Encode());
        Assert.Equal(message.Type, parsed.Type);
    }

    [Theory]
    [MemberData(nameof(Pinned))]
    public void A_truncated_message_asks_for_more_and_consumes_nothing(string name, string hex)
    {
        _ = name;
        var bytes = Convert.FromHexString(hex);
        for (var length = 0; length < bytes.Length; length++)
        {
            var (ok, _, consumed) = Read(bytes[..length]);
            Assert.False(ok);
            Assert.Equal(0, consumed);
        }
    }

    [Fact]
    public void The_proof_verifies_only_for_its_nonce_key_and_relay_endpoint()
    {
        var proof = (RelayProof)Read(Convert.FromHexString(PinnedProof)).Message!;
        Assert.True(proof.Verify(Nonce));
        Assert.Equal(RelayEndPoint, proof.Relay);

        var otherNonce = (byte[])Nonce.Clone();
        otherNonce[0] ^= 1;
        Assert.False(proof.Verify(otherNonce));
        Assert.False((proof with { Relay = new IPEndPoint(RelayEndPoint.Address, 7396) }).Verify(Nonce));

        // Someone else's key under the GUID, or the GUID of someone else's key: refused.
        using var other = HostKey.Generate();
        var forged = RelayProof.Create(other, Nonce, RelayEndPoint);
        Assert.True(forged.Verify(Nonce));
        Assert.False((forged with { Guid = proof.Guid }).Verify(Nonce));
        Assert.False((proof with { PublicKey = other.PublicKeyBytes() }).Verify(Nonce));
        var badSignature = (byte[])proof.Signature.Clone();
        badSignature[10] ^= 0x40;
        Assert.False((proof with { Signature = badSignature }).Verify(Nonce));
    }

    [Fact]
    public void A_proof_for_an_ipv6_relay_round_trips_and_an_ipv4_mapped_endpoint_is_sent_as_ipv4()
    {
        using var key = HostKey.Generate();
        var v6 = RelayProof.Create(key, Nonce, new IPEndPoint(IPAddress.Parse("2001:db8::7"), 443));
        var bytes = v6.Encode();
        Assert.Equal(RelayMessage.MaxSize, bytes.Length);
        Assert.True(((RelayProof)Read(bytes).Message!).Verify(Nonce));

        var mapped = RelayProof.Create(key, Nonce, new IPEndPoint(IPAddress.Parse("::ffff:192.0.2.7"), 7395));
        Assert.Equal(RelayEndPoint, mapped.Relay);
        Assert.Equal(129, mapped.Encode().Length);
    }

    public static TheoryData<string, string> Malformed => new()
    {
        { "bad magic at once", "4d52" + "00" },
        { "bad first byte", "00" },
        { "unknown version", "4d524c5902" },
        { "type 0", "4d524c590100" },
        { "type 10", "4d524c59010a" },
        { "unknown status", "4d524c59010408" },
        { "proof family 5", "4d524c590103" + Test1Guid + Rfc8032Test1PublicKey + "05" },
        {
            "proof ipv4-mapped as family 6", "4d524c590103" + Test1Guid + Rfc8032Test1PublicKey +
                                             "0600000000000000000000ffffc0000207" + "1ce3" + new string('0', 128)
        },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Hostile_bytes_are_malformed_as_soon_as_they_are_wrong(string why, string hex)
    {
        _ = why;
        var bytes = Convert.FromHexString(hex);
        Assert.Throws<MalformedMessageException>(() => Read(bytes));
    }

    [Fact]
    public void Random_bytes_are_refused_or_read_without_reading_past_the_largest_message()
    {
        var random = new Random(16);
        for (var i = 0; i < 2000; i++)
        {
            var bytes = new byte[random.Next(0, 200)];
            random.NextBytes(bytes);
            if (i % 2 == 0 && bytes.Length >= 6)
            {
                "MRLY"u8.CopyTo(bytes);
                bytes[4] = 1;
                bytes[5] = (byte)random.Next(0, 11);
            }

            try
            {
                var (ok, message, consumed) = Read(bytes);
                Assert.True(ok ? consumed == message!.Size && consumed <= RelayMessage.MaxSize : consumed == 0);
            }
            catch (MalformedMessageException)
            {
            }
        }
    }
}
