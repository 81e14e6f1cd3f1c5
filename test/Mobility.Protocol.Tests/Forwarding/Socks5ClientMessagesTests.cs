using Mobility.Protocol.Forwarding;

namespace Mobility.Protocol.Tests.Forwarding;

/// <summary>The client side of the SOCKS5 messages (docs/protocol.md, "Forwarding"): what is written, what is read, raw bytes only.</summary>
public sealed class Socks5ClientMessagesTests
{
    [Fact]
    public void The_greeting_offers_only_no_authentication()
        => Assert.Equal((byte[])[5, 1, 0], Socks5Parser.Greeting());

    [Fact]
    public void A_domain_request_matches_the_documented_example()
    {
        var guid = new string('a', 40) + ".guid";
        var request = Socks5Parser.ConnectRequest(guid, 22);
        Assert.Equal((byte[])[5, 1, 0, 3, 45, .. System.Text.Encoding.ASCII.GetBytes(guid), 0, 22], request);

        // The server's parser reads exactly what the client writes.
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(request));
        Assert.True(Socks5Parser.TryReadRequest(ref reader, out var parsed));
        Assert.Equal(new Socks5Request(Socks5Command.Connect, guid, null, 22), parsed);
        Assert.Equal(0, reader.Remaining);
    }

    [Theory]
    [InlineData("203.0.113.9", 4)]
    [InlineData("::ffff:203.0.113.9", 4)]
    [InlineData("2001:db8::2", 16)]
    public void An_address_request_round_trips_through_the_server_parser(string text, int size)
    {
        var request = Socks5Parser.ConnectRequest(IPAddress.Parse(text), 443);
        Assert.Equal(4 + size + 2, request.Length);
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(request));
        Assert.True(Socks5Parser.TryReadRequest(ref reader, out var parsed));
        var expected = IPAddress.Parse(text);
        Assert.Equal(expected.IsIPv4MappedToIPv6 ? expected.MapToIPv4() : expected, parsed.Address);
        Assert.Equal(443, parsed.Port);
    }

    [Fact]
    public void A_reply_needs_all_its_bytes_and_reads_no_more()
    {
        byte[] reply = [5, 4, 0, 4, .. new byte[16], 0, 80, 0xAA];
        Assert.Equal(22, Socks5Parser.ReplyLength(reply));
        for (var cut = 0; cut < 22; cut++)
        {
            var partial = new SequenceReader<byte>(new ReadOnlySequence<byte>(reply, 0, cut));
            Assert.False(Socks5Parser.TryReadReply(ref partial, out _));
            Assert.Equal(0, partial.Consumed);
        }

        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(reply));
        Assert.True(Socks5Parser.TryReadReply(ref reader, out var code));
        Assert.Equal(Socks5Reply.HostUnreachable, code);
        Assert.Equal(1, reader.Remaining);
    }

    [Fact]
    public void The_documented_mobilityd_reply_is_ten_bytes()
    {
        var reply = Socks5Parser.Reply(Socks5Reply.Succeeded);
        Assert.Equal((byte[])[5, 0, 0, 1, 0, 0, 0, 0, 0, 0], reply);
        Assert.Equal(10, Socks5Parser.ReplyLength(reply));
    }

    [Theory]
    [InlineData(new byte[] { 4, 0, 0, 1, 0 })]
    [InlineData(new byte[] { 5, 0, 0, 2, 0 })]
    public void A_reply_with_a_wrong_version_or_address_type_is_malformed(byte[] prefix)
        => Assert.Throws<Socks5FormatException>(() => Socks5Parser.ReplyLength(prefix));

    [Fact]
    public void A_method_selection_with_a_wrong_version_is_malformed_even_alone()
    {
        Assert.Throws<Socks5FormatException>(() =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(new byte[] { 4 }));
            Socks5Parser.TryReadMethodSelection(ref reader, out _);
        });
        var ok = new SequenceReader<byte>(new ReadOnlySequence<byte>(new byte[] { 5, 0xFF }));
        Assert.True(Socks5Parser.TryReadMethodSelection(ref ok, out var method));
        Assert.Equal(Socks5Parser.NoAcceptableMethods, method);
    }

    [Fact]
    public void The_open_header_matches_the_documented_example()
        => Assert.Equal((byte[])[0x4d, 0x4f, 0x50, 0x4e, 0, 22], OpenHeader.Create(22));
}
