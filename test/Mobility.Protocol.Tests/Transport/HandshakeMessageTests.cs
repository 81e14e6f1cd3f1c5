namespace Mobility.Protocol.Tests.Transport;

public class HandshakeMessageTests
{
    private static readonly HostKey Key = HostKey.Generate();
    private static readonly byte[] ResumeKey = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();

    public static TheoryData<string> Kinds => new() { "ClientHello", "ServerHello", "ClientFinish", "Reject", "Resume", "ResumeAck", "Join", "JoinAck" };

    internal static HandshakeMessage Sample(string kind) => kind switch
    {
        "ClientHello" => new ClientHello(HandshakeFlags.AuthenticateOnly, Key.Guid, Key.PublicKeyBytes(), Filled(32, 1), Filled(32, 2),
            new UInt128(0x0102030405060708, 0x090a0b0c0d0e0f10), HostKey.Generate().Guid, 4 << 20),
        "ServerHello" => new ServerHello(HandshakeFlags.None, Key.Guid, Key.PublicKeyBytes(), Filled(32, 3), Filled(32, 4), 1 << 20, Filled(64, 5)),
        "ClientFinish" => new ClientFinish(Filled(64, 6)),
        "Reject" => new HandshakeReject(RejectReason.UnknownConnection),
        "Resume" => ResumeRequest.Create(ResumeKey, Key.Guid, HostKey.Generate().Guid, 42, 7, 1234),
        "ResumeAck" => ResumeAck.Create(ResumeKey, 42, 7, 99),
        "Join" => ResumeRequest.Create(ResumeKey, Key.Guid, HostKey.Generate().Guid, 42, 8, 1234, standby: true),
        "JoinAck" => ResumeAck.Create(ResumeKey, 42, 8, 99, standby: true),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    private static byte[] Filled(int size, byte value) => Enumerable.Repeat(value, size).ToArray();

    private static (bool Ok, HandshakeMessage? Message, long Consumed) Read(byte[] bytes)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        var ok = HandshakeMessage.TryRead(ref reader, out var message);
        return (ok, message, reader.Consumed);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Every_message_round_trips(string kind)
    {
        var message = Sample(kind);
        var bytes = message.ToArray();
        Assert.Equal(HandshakeMessage.SizeOf(message.Type), bytes.Length);
        var (ok, parsed, consumed) = Read([.. bytes, 0xEE]);
        Assert.True(ok);
        Assert.Equal(bytes.Length, consumed);
        Assert.Equal(bytes, parsed!.ToArray());
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Truncation_at_every_offset_asks_for_more_and_consumes_nothing(string kind)
    {
        var bytes = Sample(kind).ToArray();
        for (var length = 0; length < bytes.Length; length++)
        {
            var (ok, _, consumed) = Read(bytes[..length]);
            Assert.False(ok, $"accepted a message cut at {length}");
            Assert.Equal(0, consumed);
        }
    }

    [Fact]
    public void Bad_magic_is_rejected_on_the_first_byte()
    {
        Assert.Throws<MalformedMessageException>(() => Read("S"u8.ToArray()));
        Assert.Throws<MalformedMessageException>(() => Read("SSH-2.0-OpenSSH_9.2\r\n"u8.ToArray()));
        Assert.Throws<MalformedMessageException>(() => Read("GET / HTTP/1.1\r\n"u8.ToArray()));
    }

    [Fact]
    public void Another_version_is_reported_after_the_preamble()
    {
        var bytes = Sample("ClientHello").ToArray();
        bytes[4] = 2;
        var (ok, message, consumed) = Read(bytes);
        Assert.True(ok);
        Assert.Equal(new UnsupportedVersion(2), message);
        Assert.Equal(TransportConstants.PreambleSize, consumed);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(255)]
    public void Unknown_type_is_malformed(byte type)
    {
        var bytes = Sample("ClientFinish").ToArray();
        bytes[5] = type;
        Assert.Throws<MalformedMessageException>(() => Read(bytes));
    }

    [Fact]
    public void Unknown_flags_and_out_of_range_windows_are_malformed()
    {
        var hello = Sample("ClientHello").ToArray();
        var flags = (byte[])hello.Clone();
        flags[6] = 0x80;
        Assert.Throws<MalformedMessageException>(() => Read(flags));

        var window = (byte[])hello.Clone();
        window.AsSpan(hello.Length - 4).Fill(0xFF);
        Assert.Throws<MalformedMessageException>(() => Read(window));
        window.AsSpan(hello.Length - 4).Clear();
        Assert.Throws<MalformedMessageException>(() => Read(window));

        var reject = Sample("Reject").ToArray();
        reject[^1] = 200;
        Assert.Throws<MalformedMessageException>(() => Read(reject));
    }

    [Fact]
    public void Random_bytes_never_throw_anything_but_malformed()
    {
        var random = new Random(1234);
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = new byte[random.Next(0, 260)];
            random.NextBytes(bytes);
            if (i % 2 == 0 && bytes.Length >= 6)
            {
                // Half the cases get a valid preamble so the bodies are exercised too.
                "MOBT"u8.CopyTo(bytes);
                bytes[4] = TransportConstants.Version;
                bytes[5] = (byte)random.Next(0, 8);
            }

            try
            {
                Read(bytes);
            }
            catch (MalformedMessageException)
            {
            }
        }
    }

    [Fact]
    public void A_join_is_a_resume_body_under_types_10_and_11_and_relabelling_either_breaks_its_mac()
    {
        var join = (ResumeRequest)Sample("Join");
        var ack = (ResumeAck)Sample("JoinAck");
        Assert.Equal(HandshakeMessageType.Join, join.Type);
        Assert.Equal(10, join.ToArray()[5]);
        Assert.Equal(11, ack.ToArray()[5]);
        Assert.Equal(ResumeRequest.EncodedSize, join.Size);
        Assert.True(join.VerifyMac(ResumeKey));
        Assert.True(ack.VerifyMac(ResumeKey));

        var asResume = join.ToArray();
        asResume[5] = (byte)HandshakeMessageType.Resume;
        var resume = Assert.IsType<ResumeRequest>(Read(asResume).Message);
        Assert.False(resume.Standby);
        Assert.False(resume.VerifyMac(ResumeKey));

        var asResumeAck = ack.ToArray();
        asResumeAck[5] = (byte)HandshakeMessageType.ResumeAck;
        Assert.False(Assert.IsType<ResumeAck>(Read(asResumeAck).Message).VerifyMac(ResumeKey));
    }

    [Fact]
    public void Resume_mac_verifies_only_with_the_right_key_and_unchanged_bytes()
    {
        var resume = (ResumeRequest)Sample("Resume");
        Assert.True(resume.VerifyMac(ResumeKey));
        var wrongKey = (byte[])ResumeKey.Clone();
        wrongKey[0] ^= 1;
        Assert.False(resume.VerifyMac(wrongKey));

        var bytes = resume.ToArray();
        for (var i = 0; i < bytes.Length; i++)
        {
            var tampered = (byte[])bytes.Clone();
            tampered[i] ^= 0x01;
            HandshakeMessage? parsed;
            try
            {
                var (ok, message, _) = Read(tampered);
                parsed = ok ? message : null;
            }
            catch (MalformedMessageException)
            {
                continue;
            }

            Assert.False(parsed is ResumeRequest r && r.VerifyMac(ResumeKey), $"tampering byte {i} went unnoticed");
        }

        var ack = (ResumeAck)Sample("ResumeAck");
        Assert.True(ack.VerifyMac(ResumeKey));
        Assert.False(ack.VerifyMac(wrongKey));
        Assert.False(new ResumeAck(ack.Token, ack.Counter + 1, ack.ReceivedOffset, ack.Mac).VerifyMac(ResumeKey));
    }

    /// <summary>
    /// The bytes docs/protocol.md gives for the MAC of a Resume, Join, ResumeAck and JoinAck, computed here apart from
    /// the code that seals and checks them (one helper does both, so a change to it would go unseen by a round trip).
    /// </summary>
    [Theory]
    [InlineData("Resume", "mobility/transport-resume/v1", 78)]
    [InlineData("Join", "mobility/transport-resume/v1", 78)]
    [InlineData("ResumeAck", "mobility/transport-resume-ack/v1", 38)]
    [InlineData("JoinAck", "mobility/transport-resume-ack/v1", 38)]
    public void A_resume_messages_mac_is_hmac_sha256_under_the_resume_key_over_its_context_and_every_byte_before_it(string kind, string context, int macOffset)
    {
        var bytes = Sample(kind).ToArray();
        Assert.Equal(macOffset + TransportConstants.MacSize, bytes.Length);
        byte[] macced = [(byte)context.Length, .. Encoding.ASCII.GetBytes(context), .. bytes[..macOffset]];
        Assert.Equal(System.Security.Cryptography.HMACSHA256.HashData(ResumeKey, macced), bytes[macOffset..]);
    }

    [Fact]
    public void Both_sides_derive_the_same_secrets_and_transcripts_separate_them()
    {
        using var client = new EphemeralKey();
        using var server = new EphemeralKey();
        var transcript = HandshakeTranscript.Hash([1, 2, 3], [4, 5]);
        using var a = client.DeriveSecrets(server.PublicKey, transcript);
        using var b = server.DeriveSecrets(client.PublicKey, transcript);
        Assert.Equal(a.ClientToServerKey, b.ClientToServerKey);
        Assert.Equal(a.ServerToClientKey, b.ServerToClientKey);
        Assert.Equal(a.ResumeKey, b.ResumeKey);
        Assert.NotEqual(a.ClientToServerKey, a.ServerToClientKey);
        Assert.NotEqual(a.ClientToServerKey, a.ResumeKey);
        using var c = client.DeriveSecrets(server.PublicKey, HandshakeTranscript.Hash([1, 2, 3], [4, 6]));
        Assert.NotEqual(a.ResumeKey, c.ResumeKey);
    }

    [Fact]
    public void A_low_order_peer_key_is_malformed()
    {
        using var key = new EphemeralKey();
        Assert.Throws<MalformedMessageException>(() => key.DeriveSecrets(new byte[32], new byte[32]));
    }
}
