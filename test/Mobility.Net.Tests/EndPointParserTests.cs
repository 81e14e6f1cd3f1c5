using Mobility.Net.EndPoints;

namespace Mobility.Net.Tests;

public sealed class EndPointParserTests
{
    [Theory]
    [InlineData("127.0.0.1:7000", "127.0.0.1", 7000)]
    [InlineData("[::1]:53", "::1", 53)]
    [InlineData("[2001:db8::1]:65535", "2001:db8::1", 65535)]
    [InlineData("0.0.0.0:1", "0.0.0.0", 1)]
    public void IPv4_and_bracketed_IPv6_with_a_port_parse(string text, string address, int port)
    {
        Assert.True(EndPointParser.TryParse(text, out var endPoint));
        Assert.Equal(new IPEndPoint(IPAddress.Parse(address), port), endPoint);
        Assert.Equal(endPoint, EndPointParser.Parse(text));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("127.0.0.1")]
    [InlineData("::1:80")]
    [InlineData("[::1]")]
    [InlineData("127.0.0.1:")]
    [InlineData("127.0.0.1:65536")]
    [InlineData("127.0.0.1:-1")]
    [InlineData("127.0.0.1:+80")]
    [InlineData("localhost:80")]
    [InlineData("1.2.3.4:80:90")]
    public void Anything_else_is_refused(string? text)
    {
        Assert.False(EndPointParser.TryParse(text, out var endPoint, allowPortZero: true));
        Assert.Null(endPoint);
        var error = Assert.Throws<FormatException>(() => EndPointParser.Parse(text, allowPortZero: true));
        Assert.Contains($"'{text}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("[::1]:7000", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Port_zero_only_where_the_caller_allows_it()
    {
        Assert.False(EndPointParser.TryParse("127.0.0.1:0", out _));
        Assert.True(EndPointParser.TryParse("127.0.0.1:0", out var bind, allowPortZero: true));
        Assert.Equal(0, bind.Port);
        Assert.Contains("port 1 to 65535", EndPointParser.Explain("127.0.0.1:0"), StringComparison.Ordinal);
        Assert.Contains("port 0 picks a free port", EndPointParser.Explain("x", allowPortZero: true), StringComparison.Ordinal);
    }

    [Fact]
    public void Oversized_text_is_refused_without_parsing()
        => Assert.False(EndPointParser.TryParse(new string('1', 10_000) + ":80", out _));
}
