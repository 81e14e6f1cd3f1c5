using Mobility.Protocol.Challenge;

namespace Mobility.Protocol.Tests.Challenge;

public class ChallengeDatagramTests
{
    private static readonly IPEndPoint ReachedAt = new(IPAddress.Parse("127.0.0.2"), 7390);

    [Fact]
    public void Request_roundtrips_and_is_padded_to_the_fixed_size()
    {
        using var challenger = HostKey.Generate();
        using var expected = HostKey.Generate();
        var request = ChallengeRequest.Create(challenger.Guid, expected.Guid);

        var bytes = ChallengeDatagram.WriteRequest(request);
        var parsed = ChallengeDatagram.ParseRequest(bytes);

        Assert.Equal(ChallengeDatagram.RequestSize, bytes.Length);
        Assert.Equal("MC"u8.ToArray(), bytes[..2]);
        Assert.Equal(ChallengeDatagram.ProtocolVersion, bytes[2]);
        Assert.Equal((byte)ChallengeMessageType.Request, bytes[3]);
        Assert.True(bytes.AsSpan(ChallengeDatagram.RequestBodyEnd).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(request.Nonce.ToArray(), parsed.Nonce.ToArray());
        Assert.Equal(challenger.Guid, parsed.Challenger);
        Assert.Equal(expected.Guid, parsed.Expected);
    }

    [Fact]
    public void Two_requests_have_different_nonces()
    {
        var a = ChallengeRequest.Create(HostGuid.Empty, HostGuid.Empty);
        var b = ChallengeRequest.Create(HostGuid.Empty, HostGuid.Empty);
        Assert.NotEqual(a.Nonce.ToArray(), b.Nonce.ToArray());
    }

    [Theory]
    [InlineData("127.0.0.2", 7390)]
    [InlineData("2001:db8::1", 65535)]
    public void Response_roundtrips_verifies_and_fits_three_times_the_request(string address, int port)
    {
        using var challenger = HostKey.Generate();
        using var responder = HostKey.Generate();
        var request = ChallengeRequest.Create(challenger.Guid, responder.Guid);
        var reachedAt = new IPEndPoint(IPAddress.Parse(address), port);

        var bytes = ChallengeDatagram.WriteResponse(ChallengeResponse.Create(responder, request, reachedAt));
        var parsed = ChallengeDatagram.ParseResponse(bytes);

        Assert.True(bytes.Length <= ChallengeDatagram.AmplificationFactor * ChallengeDatagram.RequestSize);
        Assert.True(bytes.Length <= ChallengeDatagram.MaxResponseSize);
        Assert.True(parsed.Verify());
        Assert.Equal(responder.Guid, parsed.Responder);
        Assert.Equal(challenger.Guid, parsed.Challenger);
        Assert.Equal(reachedAt, parsed.ReachedAt);
        Assert.Equal(request.Nonce.ToArray(), parsed.Nonce.ToArray());
    }

    [Fact]
    public void Largest_response_is_within_the_amplification_budget()
        => Assert.True(ChallengeDatagram.MaxResponseSize <= ChallengeDatagram.AmplificationFactor * ChallengeDatagram.RequestSize);

    [Fact]
    public void Response_signature_covers_the_reached_at_address()
    {
        using var responder = HostKey.Generate();
        var request = ChallengeRequest.Create(HostGuid.Empty, responder.Guid);
        var bytes = ChallengeDatagram.WriteResponse(ChallengeResponse.Create(responder, request, ReachedAt));

        // The address bytes follow header, nonce, two GUIDs, key and the family byte.
        var addressOffset = ChallengeDatagram.HeaderSize + ChallengeDatagram.NonceSize + (2 * HostGuid.Size) + HostKey.PublicKeySize + 1;
        bytes[addressOffset + 3] = 3; // 127.0.0.2 -> 127.0.0.3: a relayed response claiming another address

        var parsed = ChallengeDatagram.ParseResponse(bytes);
        Assert.Equal(IPAddress.Parse("127.0.0.3"), parsed.ReachedAt.Address);
        Assert.False(parsed.Verify());
    }

    [Theory]
    [InlineData(4)]   // nonce
    [InlineData(36)]  // challenger GUID
    [InlineData(56)]  // responder GUID
    [InlineData(76)]  // public key
    [InlineData(113)] // port
    [InlineData(115)] // signature
    public void Flipping_any_signed_or_key_byte_fails_verification(int offset)
    {
        using var responder = HostKey.Generate();
        var request = ChallengeRequest.Create(HostGuid.Empty, responder.Guid);
        var bytes = ChallengeDatagram.WriteResponse(ChallengeResponse.Create(responder, request, ReachedAt));

        bytes[offset] ^= 0x01;

        Assert.False(ChallengeDatagram.ParseResponse(bytes).Verify());
    }

    [Fact]
    public void Response_signed_by_another_key_for_the_claimed_guid_fails()
    {
        using var holder = HostKey.Generate();
        using var impostor = HostKey.Generate();
        var request = ChallengeRequest.Create(HostGuid.Empty, holder.Guid);
        var bytes = ChallengeDatagram.WriteResponse(ChallengeResponse.Create(impostor, request, ReachedAt));
        // Claim the holder's GUID while keeping the impostor's key and signature.
        holder.Guid.WriteTo(bytes.AsSpan(ChallengeDatagram.HeaderSize + ChallengeDatagram.NonceSize + HostGuid.Size));

        var parsed = ChallengeDatagram.ParseResponse(bytes);
        Assert.Equal(holder.Guid, parsed.Responder);
        Assert.False(parsed.KeyMatchesResponder());
        Assert.False(parsed.Verify());
    }

    [Fact]
    public void Signature_is_domain_separated()
    {
        using var responder = HostKey.Generate();
        var request = ChallengeRequest.Create(HostGuid.Empty, responder.Guid);
        var signed = ChallengeResponse.SignedBytes(request.Nonce.Span, request.Challenger, responder.Guid, ReachedAt);
        Assert.Equal(SigningContext.Challenge.Length, signed[0]);
        Assert.True(signed.AsSpan(1, signed[0]).SequenceEqual(SigningContext.Challenge));
    }

    [Fact]
    public void Every_truncation_of_a_request_is_malformed()
    {
        var bytes = ChallengeDatagram.WriteRequest(ChallengeRequest.Create(HostGuid.Empty, HostGuid.Empty));
        for (var length = 0; length < bytes.Length; length++)
        {
            Assert.Throws<MalformedMessageException>(() => ChallengeDatagram.ParseRequest(bytes.AsSpan(0, length)));
        }
    }

    [Fact]
    public void Every_truncation_of_a_response_is_malformed()
    {
        using var responder = HostKey.Generate();
        var request = ChallengeRequest.Create(HostGuid.Empty, responder.Guid);
        var bytes = ChallengeDatagram.WriteResponse(ChallengeResponse.Create(responder, request, ReachedAt));
        for (var length = 0; length < bytes.Length; length++)
        {
            Assert.Throws<MalformedMessageException>(() => ChallengeDatagram.ParseResponse(bytes.AsSpan(0, length)));
        }
    }

    [Fact]
    public void Response_with_trailing_bytes_is_malformed()
    {
        using var responder = HostKey.Generate();
        var request = ChallengeRequest.Create(HostGuid.Empty, responder.Guid);
        var bytes = ChallengeDatagram.WriteResponse(ChallengeResponse.Create(responder, request, ReachedAt));
        Assert.Throws<MalformedMessageException>(() => ChallengeDatagram.ParseResponse([.. bytes, 0]));
    }

    [Fact]
    public void Request_with_non_zero_padding_is_malformed()
    {
        var bytes = ChallengeDatagram.WriteRequest(ChallengeRequest.Create(HostGuid.Empty, HostGuid.Empty));
        bytes[^1] = 1;
        Assert.Throws<MalformedMessageException>(() => ChallengeDatagram.ParseRequest(bytes));
    }

    [Fact]
    public void Oversized_datagrams_are_malformed()
    {
        var request = ChallengeDatagram.WriteRequest(ChallengeRequest.Create(HostGuid.Empty, HostGuid.Empty));
        var huge = new byte[ChallengeDatagram.MaxDatagramSize + 1];
        request.CopyTo(huge, 0);
        Assert.Throws<MalformedMessageException>(() => ChallengeDatagram.ParseRequest(huge));
        Assert.Throws<MalformedMessageException>(() => ChallengeDatagram.ParseResponse(huge));
    }

    [Fact]
    public void Wrong_magic_version_or_type_is_refused()
    {
        var bytes = ChallengeDatagram.WriteRequest(ChallengeRequest.Create(HostGuid.Empty, HostGuid.Empty));
        Assert.False(ChallengeDatagram.TryReadHeader("MG\u0001\u0001"u8, out _, out _));

        var wrongVersion = (byte[])bytes.Clone();
        wrongVersion[2] = 2;
        Assert.Throws<MalformedMessageException>(() => ChallengeDatagram.ParseRequest(wrongVersion));

        // A request is not a response and vice versa.
        Assert.Throws<MalformedMessageException>(() => ChallengeDatagram.ParseResponse(bytes));
    }

    [Fact]
    public void Unknown_address_family_and_mapped_addresses_are_malformed()
    {
        using var responder = HostKey.Generate();
        var request = ChallengeRequest.Create(HostGuid.Empty, responder.Guid);
        var bytes = ChallengeDatagram.WriteResponse(ChallengeResponse.Create(responder, request, ReachedAt));
        var familyOffset = ChallengeDatagram.HeaderSize + ChallengeDatagram.NonceSize + (2 * HostGuid.Size) + HostKey.PublicKeySize;
        bytes[familyOffset] = 5;
        Assert.Throws<MalformedMessageException>(() => ChallengeDatagram.ParseResponse(bytes));

        var mapped = ChallengeResponse.Create(responder, request, new IPEndPoint(IPAddress.Parse("::ffff:127.0.0.2"), 1));
        // Create normalizes mapped addresses to IPv4; forge the IPv6 form by hand.
        Assert.Equal(IPAddress.Parse("127.0.0.2"), mapped.ReachedAt.Address);
        var v6 = new IPEndPoint(IPAddress.Parse("::1"), 1);
        var v6Bytes = ChallengeDatagram.WriteResponse(ChallengeResponse.Create(responder, request, v6));
        IPAddress.Parse("::ffff:127.0.0.2").GetAddressBytes().CopyTo(v6Bytes, familyOffset + 1);
        Assert.Throws<MalformedMessageException>(() => ChallengeDatagram.ParseResponse(v6Bytes));
    }

    [Fact]
    public void Random_datagrams_never_escape_as_anything_but_malformed()
    {
        var random = new Random(12345);
        for (var i = 0; i < 5000; i++)
        {
            var bytes = new byte[random.Next(0, 600)];
            random.NextBytes(bytes);
            if (i % 2 == 0 && bytes.Length >= 4)
            {
                // Give half of them a valid header so the body parsers get exercised.
                bytes[0] = (byte)'M';
                bytes[1] = (byte)'C';
                bytes[2] = ChallengeDatagram.ProtocolVersion;
                bytes[3] = (byte)(i % 4 == 0 ? ChallengeMessageType.Request : ChallengeMessageType.Response);
            }

            try
            {
                var response = ChallengeDatagram.ParseResponse(bytes);
                Assert.False(response.Verify());
            }
            catch (MalformedMessageException)
            {
            }

            try
            {
                ChallengeDatagram.ParseRequest(bytes);
            }
            catch (MalformedMessageException)
            {
            }
        }
    }
}
