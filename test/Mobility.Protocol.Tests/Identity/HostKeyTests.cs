namespace Mobility.Protocol.Tests.Identity;

public class HostKeyTests
{
    [Theory]
    [InlineData(Rfc8032Test1Seed, Rfc8032Test1PublicKey, "", Rfc8032Test1Signature)]
    [InlineData(Rfc8032Test2Seed, Rfc8032Test2PublicKey, "72", Rfc8032Test2Signature)]
    public void Key_from_seed_matches_rfc8032_public_key_and_deterministic_signature(
        string seed, string publicKey, string message, string signature)
    {
        using var key = HostKey.FromSeed(Convert.FromHexString(seed));
        var data = Convert.FromHexString(message);

        Assert.Equal(publicKey, Convert.ToHexStringLower(key.PublicKey));
        Assert.Equal(signature, Convert.ToHexStringLower(key.Sign(data)));
        var intoSpan = new byte[HostKey.SignatureSize];
        key.Sign(data, intoSpan);
        Assert.Equal(signature, Convert.ToHexStringLower(intoSpan));
        Assert.True(Signatures.Verify(Convert.FromHexString(publicKey), data, Convert.FromHexString(signature)));
    }

    [Fact]
    public void Key_guid_is_the_guid_of_its_public_key()
    {
        using var key = HostKey.Generate();

        Assert.Equal(HostGuid.FromPublicKey(key.PublicKey), key.Guid);
        Assert.Equal(HostKey.PublicKeySize, key.PublicKey.Length);
    }

    [Fact]
    public void Generated_keys_differ()
    {
        using var a = HostKey.Generate();
        using var b = HostKey.Generate();

        Assert.NotEqual(a.Guid, b.Guid);
        Assert.False(a.PublicKey.SequenceEqual(b.PublicKey));
    }

    [Fact]
    public void PublicKeyBytes_is_a_copy_the_caller_cannot_use_to_change_the_key()
    {
        using var key = Test1Key();
        var copy = key.PublicKeyBytes();

        copy[0] ^= 0xFF;

        Assert.Equal(Rfc8032Test1PublicKey, Convert.ToHexStringLower(key.PublicKey));
        Assert.Equal(HostGuid.Parse(Test1Guid), key.Guid);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    [InlineData(64)]
    public void Seed_of_wrong_length_is_refused(int length)
    {
        Assert.Throws<ArgumentException>(() => HostKey.FromSeed(new byte[length]));
    }

    [Fact]
    public void Signature_does_not_verify_for_another_message_or_another_key()
    {
        using var key = HostKey.Generate();
        using var other = HostKey.Generate();
        var data = "hello"u8.ToArray();
        var signature = key.Sign(data);

        Assert.True(Signatures.Verify(key.PublicKey, data, signature));
        Assert.False(Signatures.Verify(key.PublicKey, "hellO"u8, signature));
        Assert.False(Signatures.Verify(other.PublicKey, data, signature));
    }

    [Fact]
    public void Signature_with_any_bit_flipped_does_not_verify()
    {
        var publicKey = Convert.FromHexString(Rfc8032Test2PublicKey);
        var signature = Convert.FromHexString(Rfc8032Test2Signature);
        byte[] data = [0x72];
        for (var bit = 0; bit < signature.Length * 8; bit++)
        {
            var bad = (byte[])signature.Clone();
            bad[bit / 8] ^= (byte)(1 << (bit % 8));

            Assert.False(Signatures.Verify(publicKey, data, bad), $"bit {bit}");
        }
    }

    [Theory]
    [InlineData(31, 64)]
    [InlineData(33, 64)]
    [InlineData(0, 64)]
    [InlineData(32, 63)]
    [InlineData(32, 65)]
    [InlineData(32, 0)]
    public void Verify_of_key_or_signature_with_wrong_length_is_false_not_an_exception(int keyLength, int signatureLength)
    {
        var publicKey = new byte[keyLength];
        var signature = new byte[signatureLength];
        Convert.FromHexString(Rfc8032Test1PublicKey).AsSpan(0, Math.Min(32, keyLength)).CopyTo(publicKey);
        Convert.FromHexString(Rfc8032Test1Signature).AsSpan(0, Math.Min(64, signatureLength)).CopyTo(signature);

        Assert.False(Signatures.Verify(publicKey, [], signature));
    }

    [Fact]
    public void Verify_with_garbage_public_key_bytes_is_false()
    {
        var random = new Random(3);
        var signature = Convert.FromHexString(Rfc8032Test1Signature);
        for (var i = 0; i < 200; i++)
        {
            var key = new byte[32];
            random.NextBytes(key);
            Assert.False(Signatures.Verify(key, [], signature));
        }

        Assert.False(Signatures.Verify(new byte[32], [], signature));
        Assert.False(Signatures.Verify(Enumerable.Repeat((byte)0xFF, 32).ToArray(), [], signature));
    }

    [Fact]
    public void Signed_bytes_are_length_prefixed_context_then_body()
    {
        var composed = SigningContext.Compose("ctx"u8, [0xAA, 0xBB]);

        Assert.Equal(Hex("03", "637478", "aabb"), composed);
    }

    [Fact]
    public void Signing_contexts_are_distinct_printable_ascii_and_fit_a_length_byte()
    {
        string[] contexts =
        [
            SigningContext.Describe(SigningContext.GnsRecord),
            SigningContext.Describe(SigningContext.GnsRemove),
            SigningContext.Describe(SigningContext.Challenge),
            SigningContext.Describe(SigningContext.HandshakeClient),
            SigningContext.Describe(SigningContext.HandshakeServer),
        ];

        Assert.Equal(contexts.Length, contexts.Distinct(StringComparer.Ordinal).Count());
        Assert.All(contexts, c => Assert.InRange(c.Length, 1, 255));
        Assert.All(contexts, c => Assert.Matches("^mobility/[a-z-]+/v1$", c));
        Assert.Equal("mobility/gns-record/v1", contexts[0]);
        Assert.Equal("mobility/gns-remove/v1", contexts[1]);
    }

    [Fact]
    public void Same_body_composed_under_each_context_gives_different_signed_bytes()
    {
        var contexts = new[]
        {
            SigningContext.GnsRecord.ToArray(), SigningContext.GnsRemove.ToArray(), SigningContext.Challenge.ToArray(),
            SigningContext.HandshakeClient.ToArray(), SigningContext.HandshakeServer.ToArray(),
        };
        byte[] body = [1, 2, 3];
        var composed = contexts.Select(c => Convert.ToHexString(SigningContext.Compose(c, body))).ToList();

        Assert.Equal(composed.Count, composed.Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void Context_longer_than_255_bytes_cannot_be_composed()
    {
        Assert.Throws<OverflowException>(() => SigningContext.Compose(new byte[256], []));
    }
}
