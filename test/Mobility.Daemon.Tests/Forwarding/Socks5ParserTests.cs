using System.Buffers;
using Mobility.Daemon.Forwarding;
using Mobility.Protocol.Forwarding;

namespace Mobility.Daemon.Tests.Forwarding;

/// <summary>Hostile-input tests of the SOCKS5 parser and the open header: raw bytes, no sockets.</summary>
public sealed class Socks5ParserTests
{
    private static bool Greeting(byte[] bytes, out Socks5Greeting greeting, out long consumed)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        var done = Socks5Parser.TryReadGreeting(ref reader, out greeting);
        consumed = reader.Consumed;
        return done;
    }

    private static bool Request(byte[] bytes, out Socks5Request request, out long consumed)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        var done = Socks5Parser.TryReadRequest(ref reader, out request);
        consumed = reader.Consumed;
        return done;
    }

    private static byte[] DomainRequest(string host, ushort port, byte command = 1)
        => [5, command, 0, 3, (byte)host.Length, .. System.Text.Encoding.ASCII.GetBytes(host), (byte)(port >> 8), (byte)port];

    [Fact]
    public void Greeting_with_no_auth_among_unknown_methods_is_accepted_and_consumed_exactly()
    {
        Assert.True(Greeting([5, 3, 0x80, 0x02, 0x00, 0xAA], out var greeting, out var consumed));
        Assert.True(greeting.OffersNoAuthentication);
        Assert.Equal(3, greeting.MethodCount);
        Assert.Equal(5, consumed);
    }

    [Fact]
    public void Greeting_with_only_unknown_methods_does_not_offer_no_auth()
    {
        Assert.True(Greeting([5, 2, 0x02, 0xFE], out var greeting, out _));
        Assert.False(greeting.OffersNoAuthentication);
    }

    [Fact]
    public void Every_truncation_of_a_greeting_asks_for_more_and_consumes_nothing()
    {
        byte[] full = [5, 255, .. Enumerable.Repeat((byte)0x01, 254), 0x00];
        for (var length = 0; length < full.Length; length++)
        {
            Assert.False(Greeting(full[..length], out _, out var consumed));
            Assert.Equal(0, consumed);
        }

        Assert.True(Greeting(full, out var greeting, out _));
        Assert.True(greeting.OffersNoAuthentication);
    }

    [Theory]
    [InlineData(new byte[] { 4, 1, 0 })]
    [InlineData(new byte[] { 0x16, 3, 1 })]
    [InlineData(new byte[] { 5, 0 })]
    public void Wrong_version_or_no_methods_is_malformed(byte[] bytes)
        => Assert.Throws<Socks5FormatException>(() => Greeting(bytes, out _, out _));

    [Fact]
    public void Domain_request_is_parsed()
    {
        const string host = "0123456789abcdef0123456789abcdef01234567.guid";
        Assert.True(Request(DomainRequest(host, 2222), out var request, out var consumed));
        Assert.Equal(Socks5Command.Connect, request.Command);
        Assert.Equal(host, request.Host);
        Assert.Null(request.Address);
        Assert.Equal(2222, request.Port);
        Assert.Equal(7 + host.Length, consumed);
    }

    [Fact]
    public void Ip_requests_are_parsed()
    {
        Assert.True(Request([5, 1, 0, 1, 127, 0, 0, 1, 0, 80], out var v4, out _));
        Assert.Equal(IPAddress.Loopback, v4.Address);
        Assert.Equal(80, v4.Port);
        Assert.True(Request([5, 1, 0, 4, .. IPAddress.IPv6Loopback.GetAddressBytes(), 1, 0], out var v6, out _));
        Assert.Equal(IPAddress.IPv6Loopback, v6.Address);
        Assert.Equal(256, v6.Port);
    }

    [Fact]
    public void Other_commands_are_parsed_so_that_they_can_be_refused()
    {
        Assert.True(Request(DomainRequest("example", 1, command: 2), out var bind, out _));
        Assert.Equal(Socks5Command.Bind, bind.Command);
        Assert.True(Request(DomainRequest("example", 1, command: 0x42), out var unknown, out _));
        Assert.Equal((Socks5Command)0x42, unknown.Command);
    }

    [Fact]
    public void Every_truncation_of_a_request_asks_for_more_and_consumes_nothing()
    {
        byte[][] requests = [DomainRequest(new string('a', 255), 9), [5, 1, 0, 1, 10, 0, 0, 1, 0, 22], [5, 1, 0, 4, .. new byte[16], 0, 22]];
        foreach (var full in requests)
        {
            for (var length = 0; length < full.Length; length++)
            {
                Assert.False(Request(full[..length], out _, out var consumed));
                Assert.Equal(0, consumed);
            }

            Assert.True(Request(full, out _, out var all));
            Assert.Equal(full.Length, all);
        }
    }

    [Theory]
    [InlineData(new byte[] { 4, 1, 0, 1 })]              // wrong version
    [InlineData(new byte[] { 5 | 0x40 })]                // wrong version, one byte
    [InlineData(new byte[] { 5, 1, 1, 1, 1, 2, 3, 4, 0, 80 })] // reserved byte set
    [InlineData(new byte[] { 5, 1, 0, 2, 1, 2, 3, 4, 0, 80 })] // unknown address type
    [InlineData(new byte[] { 5, 1, 0, 3, 0, 0, 80 })]    // empty domain
    [InlineData(new byte[] { 5, 1, 0, 3, 3, (byte)'a', 0, (byte)'b', 0, 80 })] // NUL in the domain
    [InlineData(new byte[] { 5, 1, 0, 3, 2, (byte)'/', (byte)'x', 0, 80 })]    // not a host name
    public void Malformed_requests_throw(byte[] bytes)
        => Assert.Throws<Socks5FormatException>(() => Request(bytes, out _, out _));

    [Fact]
    public void Random_bytes_never_throw_anything_but_the_format_exception()
    {
        var random = new Random(1928);
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = new byte[random.Next(0, 300)];
            random.NextBytes(bytes);
            if (i % 2 == 0 && bytes.Length > 0)
            {
                bytes[0] = 5;
            }

            try
            {
                if (Request(bytes, out _, out var consumed))
                {
                    Assert.InRange(consumed, 7, Socks5Parser.MaxRequestSize);
                }

                Greeting(bytes, out _, out var g);
                Assert.InRange(g, 0, Socks5Parser.MaxGreetingSize);
            }
            catch (Socks5FormatException)
            {
            }
        }
    }

    [Fact]
    public void Reply_is_a_ten_byte_ipv4_reply()
        => Assert.Equal(new byte[] { 5, 7, 0, 1, 0, 0, 0, 0, 0, 0 }, Socks5Parser.Reply(Socks5Reply.CommandNotSupported));

    [Fact]
    public void Open_header_round_trips_and_rejects_bad_magic_early()
    {
        var bytes = OpenHeader.Create(22);
        for (var length = 0; length < bytes.Length; length++)
        {
            var partial = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes, 0, length));
            Assert.False(OpenHeader.TryRead(ref partial, out _, out _));
        }

        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        Assert.True(OpenHeader.TryRead(ref reader, out var port, out var udp));
        Assert.Equal(22, port);
        Assert.False(udp);
        Assert.Throws<InvalidDataException>(() =>
        {
            var bad = new SequenceReader<byte>(new ReadOnlySequence<byte>("GET"u8.ToArray()));
            OpenHeader.TryRead(ref bad, out _, out _);
        });
        Assert.Throws<InvalidDataException>(() =>
        {
            var zero = new SequenceReader<byte>(new ReadOnlySequence<byte>(OpenHeader.Create(0)));
            OpenHeader.TryRead(ref zero, out _, out _);
        });
    }

    [Fact]
    public void Udp_open_header_is_mudp_with_the_same_layout_and_its_prefixes_ask_for_more()
    {
        var bytes = OpenHeader.Create(53, udp: true);
        Assert.Equal("MUDP"u8.ToArray(), bytes[..4]);
        Assert.Equal(new byte[] { 0, 53 }, bytes[4..]);
        for (var length = 0; length < bytes.Length; length++)
        {
            var partial = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes, 0, length));
            Assert.False(OpenHeader.TryRead(ref partial, out _, out _));
        }

        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        Assert.True(OpenHeader.TryRead(ref reader, out var port, out var udp));
        Assert.Equal((53, true), (port, udp));
        Assert.Equal(OpenHeader.Size, reader.Consumed);
        Assert.Throws<InvalidDataException>(() =>
        {
            var bad = new SequenceReader<byte>(new ReadOnlySequence<byte>("MUDX"u8.ToArray()));
            OpenHeader.TryRead(ref bad, out _, out _);
        });
    }
}

/// <summary>The forwarding options are validated at start like every other option.</summary>
public sealed class ForwardingOptionsTests
{
    [Theory]
    [InlineData("--transport", "nonsense")]
    [InlineData("--socks", "127.0.0.1")]
    [InlineData("--Forwarding:MaxRelays", "0")]
    [InlineData("--Forwarding:Exposed:0", "70000")]
    public void Bad_forwarding_options_are_refused_at_start(string flag, string value)
    {
        var parsed = Hosting.CommandLine.Parse(["--state-dir", "/tmp/x", "--gns", "127.0.0.1:1", flag, value]);
        var configuration = Microsoft.Extensions.Configuration.MemoryConfigurationBuilderExtensions.AddInMemoryCollection(
            new Microsoft.Extensions.Configuration.ConfigurationBuilder(), parsed.Settings).Build();
        Assert.Throws<Hosting.CommandLineException>(() => Hosting.MobilitydHost.BindAndValidate(configuration));
    }

    [Fact]
    public void Socks_off_and_an_explicit_transport_are_valid()
    {
        var options = new MobilitydOptions { Gns = "127.0.0.1:1", Socks = "off", Transport = "127.0.0.1:0" };
        Assert.True(new MobilitydOptionsValidator().Validate(null, options).Succeeded);
    }
}
