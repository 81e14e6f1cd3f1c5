using Mobility.Net.Processes;

namespace Mobility.Net.Tests;

public sealed class ReadyLineTests
{
    private const string Daemon = "mobilityd ready guid=00112233445566778899aabbccddeeff00112233 control=127.0.0.3:7390,[::1]:7390 http=- socket=/t/api.sock grpc=http://127.0.0.1:7382 transport=0.0.0.0:7391 socks=-";

    [Fact]
    public void The_first_line_with_the_prefix_is_found_among_others()
    {
        var ready = ReadyLine.Find("starting\r\n" + Daemon + "\r\nmobilityd ready guid=other\n", "mobilityd ready");
        Assert.Equal(Daemon, ready.Text);
        Assert.Equal("00112233445566778899aabbccddeeff00112233", ready["guid"]);
        Assert.Equal("/t/api.sock", ready.Require("socket"));
        Assert.Null(ready["gns"]);
    }

    [Fact]
    public void Endpoints_and_urls_are_parsed_and_a_dash_is_off()
    {
        var ready = ReadyLine.Find(Daemon, "mobilityd ready");
        Assert.Equal(new IPEndPoint(IPAddress.Parse("127.0.0.3"), 7390), ready.EndPoint("control"));
        Assert.Equal(new IPEndPoint(IPAddress.Any, 7391), ready.EndPoint("transport"));
        Assert.Null(ready.EndPoint("socks"));
        Assert.Null(ready.EndPoint("gns"));
        Assert.Equal(new Uri("http://127.0.0.1:7382"), ready.Url("grpc"));
        Assert.Null(ready.Url("http"));
    }

    [Fact]
    public void A_missing_line_or_field_or_a_bad_endpoint_is_a_clear_error()
    {
        Assert.False(ReadyLine.TryFind("gns listening udp=1.2.3.4:5", "mobilityd ready", out _));
        Assert.Contains("No 'mobilityd ready ...' line", Assert.Throws<FormatException>(() => ReadyLine.Find(null, "mobilityd ready")).Message, StringComparison.Ordinal);
        var ready = ReadyLine.Find("gns listening udp=nonsense", "gns listening");
        Assert.Contains("udp=", Assert.Throws<FormatException>(() => ready.EndPoint("udp")).Message, StringComparison.Ordinal);
        Assert.Contains("no grpc=", Assert.Throws<FormatException>(() => ready.Require("grpc")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_prefix_alone_is_not_a_longer_word()
        => Assert.False(ReadyLine.TryFind("mobilityd readyish guid=x", "mobilityd ready", out _));
}
