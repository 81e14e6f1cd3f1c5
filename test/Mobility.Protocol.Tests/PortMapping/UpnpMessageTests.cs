using System.Text;
using Mobility.Protocol.PortMapping;

namespace Mobility.Protocol.Tests.PortMapping;

/// <summary>UPnP IGD: the SSDP answer, the device description and the SOAP answers against valid and hostile input; the SSRF guard; the requests.</summary>
public sealed class UpnpMessageTests
{
    private static readonly IPAddress Gateway = IPAddress.Parse("192.168.1.1");
    private static readonly Uri Location = new("http://192.168.1.1:40123/rootDesc.xml");

    /// <summary>What miniupnpd 2.3.1 (IGD v2) describes, shortened: the WAN connection device nested two levels down.</summary>
    private const string Description = """
        <?xml version="1.0"?>
        <root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337">
          <specVersion><major>1</major><minor>1</minor></specVersion>
          <device>
            <deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType>
            <serviceList>
              <service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/ctl/L3F</controlURL></service>
            </serviceList>
            <deviceList><device>
              <deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType>
              <serviceList>
                <service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType><controlURL>/ctl/CmnIfCfg</controlURL></service>
              </serviceList>
              <deviceList><device>
                <deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType>
                <serviceList>
                  <service>
                    <serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>
                    <serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
                    <controlURL>/ctl/IPConn</controlURL>
                    <eventSubURL>/evt/IPConn</eventSubURL>
                    <SCPDURL>/WANIPCn.xml</SCPDURL>
                  </service>
                </serviceList>
              </device></deviceList>
            </device></deviceList>
          </device>
        </root>
        """;

    [Fact]
    public void An_m_search_asks_for_an_internet_gateway_device()
    {
        Assert.Equal(
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n",
            Encoding.ASCII.GetString(UpnpMessage.WriteSearch()));
    }

    [Fact]
    public void An_ssdp_answer_is_read_with_its_location_whatever_the_header_case()
    {
        var answer = UpnpMessage.ParseSsdpResponse(Ascii(
            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nst: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:x::urn:x\r\n" +
            "EXT:\r\nServer: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\nLocation: http://192.168.1.1:40123/rootDesc.xml\r\n\r\n"));
        Assert.Equal(Location, answer.Location);
        Assert.Equal(UpnpMessage.SearchTarget, answer.SearchTarget);
        Assert.Equal("Debian/12 UPnP/1.1 MiniUPnPd/2.3.1", answer.Server);
    }

    [Theory]
    [InlineData("")]
    [InlineData("NOTIFY * HTTP/1.1\r\nLOCATION: http://192.168.1.1/d.xml\r\n\r\n")]
    [InlineData("HTTP/1.1 404 Not Found\r\nLOCATION: http://192.168.1.1/d.xml\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nST: x\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nLOCATION: /d.xml\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nLOCATION: https://192.168.1.1/d.xml\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nLOCATION: file:///etc/passwd\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nLOCATION: http://192.168.1.1/a\r\nLOCATION: http://10.0.0.1/b\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nLOCATION: http://192.168.1.1/\u00ff\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nLOCATION: http://192.168.1.1/\0\r\n\r\n")]
    public void A_hostile_ssdp_answer_is_malformed(string text) =>
        Assert.Throws<MalformedMessageException>(() => UpnpMessage.ParseSsdpResponse(Encoding.Latin1.GetBytes(text)));

    [Fact]
    public void An_ssdp_answer_longer_than_a_datagram_needs_is_malformed() =>
        Assert.Throws<MalformedMessageException>(() => UpnpMessage.ParseSsdpResponse(Ascii(
            "HTTP/1.1 200 OK\r\nLOCATION: http://192.168.1.1/d.xml\r\nX: " + new string('a', UpnpMessage.MaxSsdpLength) + "\r\n\r\n")));

    [Theory]
    [InlineData("http://192.168.1.1:40123/rootDesc.xml", true)]
    [InlineData("http://192.168.1.1/ctl/IPConn", true)]
    [InlineData("http://192.168.1.2:40123/rootDesc.xml", false)]   // another host of the LAN
    [InlineData("http://127.0.0.1:40123/rootDesc.xml", false)]     // the daemon's own host
    [InlineData("http://169.254.169.254/latest/meta-data/", false)] // a cloud metadata service
    [InlineData("http://router.lan:40123/rootDesc.xml", false)]    // a name: resolved elsewhere
    [InlineData("https://192.168.1.1/rootDesc.xml", false)]
    [InlineData("http://user:pw@192.168.1.1/rootDesc.xml", false)]
    [InlineData("http://[::ffff:192.168.1.1]/rootDesc.xml", false)]
    [InlineData("ftp://192.168.1.1/rootDesc.xml", false)]
    public void Only_plain_http_to_the_gateways_own_address_may_be_fetched(string url, bool allowed) =>
        Assert.Equal(allowed, UpnpMessage.IsAtGateway(new Uri(url), Gateway));

    [Fact]
    public void The_description_gives_the_best_wan_connection_service_and_its_absolute_control_url() =>
        AssertService(Description, "urn:schemas-upnp-org:service:WANIPConnection:2", true, "http://192.168.1.1:40123/ctl/IPConn");

    [Fact]
    public void A_ppp_connection_is_taken_when_there_is_no_ip_connection_and_urlbase_is_honoured()
    {
        var xml = """
            <root xmlns="urn:schemas-upnp-org:device-1-0"><URLBase>http://192.168.1.1:5000/base/</URLBase><device><serviceList>
            <service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType><controlURL>ppp</controlURL></service>
            </serviceList></device></root>
            """;
        AssertService(xml, "urn:schemas-upnp-org:service:WANPPPConnection:1", false, "http://192.168.1.1:5000/base/ppp");
    }

    [Fact]
    public void A_control_url_elsewhere_is_read_but_the_guard_refuses_it()
    {
        var xml = Description.Replace("<controlURL>/ctl/IPConn</controlURL>", "<controlURL>http://169.254.169.254/latest</controlURL>", StringComparison.Ordinal);
        var service = UpnpMessage.ParseDescription(Utf8(xml), Location);
        Assert.False(UpnpMessage.IsAtGateway(service.ControlUrl, Gateway));
    }

    [Theory]
    [InlineData("""<?xml version="1.0"?><!DOCTYPE root [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><root>&b;</root>""")] // entity expansion
    [InlineData("""<?xml version="1.0"?><!DOCTYPE root [<!ENTITY x SYSTEM "file:///etc/passwd">]><root><controlURL>&x;</controlURL></root>""")] // external entity
    [InlineData("""<!DOCTYPE root SYSTEM "http://192.168.1.2/evil.dtd"><root/>""")]
    [InlineData("<root><device><serviceList></serviceList></device></root>")] // no WAN connection service
    [InlineData("<root><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType></service></root>")] // no control URL
    [InlineData("<root><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><controlURL><b/>x</controlURL></service></root>")]
    [InlineData("<root><service>")] // truncated
    [InlineData("not xml at all")]
    [InlineData("")]
    public void A_hostile_description_is_malformed(string xml) =>
        Assert.Throws<MalformedMessageException>(() => UpnpMessage.ParseDescription(Utf8(xml), Location));

    [Fact]
    public void A_description_nested_too_deep_or_too_large_is_malformed()
    {
        var deep = string.Concat(Enumerable.Repeat("<d>", 200)) + string.Concat(Enumerable.Repeat("</d>", 200));
        Assert.Throws<MalformedMessageException>(() => UpnpMessage.ParseDescription(Utf8("<root>" + deep + "</root>"), Location));
        var large = "<root><x>" + new string('a', UpnpMessage.MaxDescriptionLength) + "</x></root>";
        Assert.Throws<MalformedMessageException>(() => UpnpMessage.ParseDescription(Utf8(large), Location));
    }

    [Fact]
    public void A_soap_answer_gives_the_output_arguments()
    {
        var xml = """
            <?xml version="1.0"?>
            <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>
            <u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewExternalIPAddress>9.9.101.2</NewExternalIPAddress>
            </u:GetExternalIPAddressResponse></s:Body></s:Envelope>
            """;
        var result = UpnpMessage.ParseSoapResponse(Utf8(xml), "GetExternalIPAddress");
        Assert.False(result.IsFault);
        Assert.Equal(IPAddress.Parse("9.9.101.2"), UpnpMessage.ParseIPv4(result.Values["NewExternalIPAddress"]));
    }

    [Fact]
    public void A_soap_fault_gives_the_upnp_error_code_and_description()
    {
        var xml = """
            <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>
            <detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail>
            </s:Fault></s:Body></s:Envelope>
            """;
        var result = UpnpMessage.ParseSoapResponse(Utf8(xml), "AddPortMapping");
        Assert.Equal(UpnpMessage.ConflictInMappingEntry, result.FaultCode);
        Assert.Equal("ConflictInMappingEntry", result.FaultDescription);
    }

    [Theory]
    [InlineData("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:DeletePortMappingResponse xmlns:u=\"x\"/></s:Body></s:Envelope>")] // another action
    [InlineData("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><s:Fault><detail><errorCode>seven</errorCode></detail></s:Fault></s:Body></s:Envelope>")]
    [InlineData("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><s:Fault/></s:Body></s:Envelope>")]
    [InlineData("""<!DOCTYPE s [<!ENTITY a "x">]><AddPortMappingResponse>&a;</AddPortMappingResponse>""")]
    [InlineData("<AddPortMappingResponse><NewReservedPort>1")]
    [InlineData("")]
    public void A_hostile_soap_answer_is_malformed(string xml) =>
        Assert.Throws<MalformedMessageException>(() => UpnpMessage.ParseSoapResponse(Utf8(xml), "AddPortMapping"));

    [Fact]
    public void A_declaration_that_would_switch_encodings_behind_a_stray_byte_is_malformed_not_a_crash()
    {
        // Found by the upnp fuzz target: System.Xml's own encoding switch threw ArgumentOutOfRangeException on it.
        var xml = Convert.FromHexString("3c3f786d6c2076657273696f6e3d22312e30a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7223f3e3c7365200048415450");
        Assert.Throws<MalformedMessageException>(() => UpnpMessage.ParseSoapResponse(xml, "AddAnyPortMapping"));
        Assert.Throws<MalformedMessageException>(() => UpnpMessage.ParseDescription(xml, Location));
    }

    [Theory]
    [InlineData("\uFEFF<?xml version=\"1.0\" encoding=\"utf-8\"?>")]
    [InlineData("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>")]
    [InlineData("<?xml version=\"1.0\" encoding=\"utf-16\"?>")]
    public void A_soap_answer_is_read_as_utf8_whatever_its_declaration_or_byte_order_mark(string declaration)
    {
        var xml = declaration + """
            <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">
            <NewExternalIPAddress>9.9.101.2</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>
            """;
        var result = UpnpMessage.ParseSoapResponse(Utf8(xml), "GetExternalIPAddress");
        Assert.Equal("9.9.101.2", result.Values["NewExternalIPAddress"]);
    }

    [Fact]
    public void A_soap_answer_larger_than_its_limit_is_malformed() =>
        Assert.Throws<MalformedMessageException>(() => UpnpMessage.ParseSoapResponse(
            Utf8("<AddPortMappingResponse><x>" + new string('a', UpnpMessage.MaxSoapLength) + "</x></AddPortMappingResponse>"), "AddPortMapping"));

    [Fact]
    public void Add_port_mapping_names_every_argument_in_order_and_escapes_text()
    {
        var (body, action) = UpnpMessage.WriteAddPortMapping("urn:schemas-upnp-org:service:WANIPConnection:1", false, MappedTransport.Udp, 7390, 7390,
            IPAddress.Parse("192.168.1.2"), 7200, "a<b&c");
        Assert.Equal("\"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\"", action);
        Assert.Contains(
            "<u:AddPortMapping xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\"><NewRemoteHost></NewRemoteHost><NewExternalPort>7390</NewExternalPort>" +
            "<NewProtocol>UDP</NewProtocol><NewInternalPort>7390</NewInternalPort><NewInternalClient>192.168.1.2</NewInternalClient><NewEnabled>1</NewEnabled>" +
            "<NewPortMappingDescription>a&lt;b&amp;c</NewPortMappingDescription><NewLeaseDuration>7200</NewLeaseDuration></u:AddPortMapping>",
            Encoding.UTF8.GetString(body), StringComparison.Ordinal);

        var (delete, deleteAction) = UpnpMessage.WriteDeletePortMapping("urn:schemas-upnp-org:service:WANIPConnection:2", MappedTransport.Tcp, 40001);
        Assert.Equal("\"urn:schemas-upnp-org:service:WANIPConnection:2#DeletePortMapping\"", deleteAction);
        Assert.Contains("<NewExternalPort>40001</NewExternalPort><NewProtocol>TCP</NewProtocol>", Encoding.UTF8.GetString(delete), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("9.9.101.2", "9.9.101.2")]
    [InlineData("", null)]
    [InlineData("2001:db8::1", null)]
    [InlineData("167772161", null)] // a number is not a dotted address
    public void The_external_address_must_be_dotted_ipv4(string text, string? expected) =>
        Assert.Equal(expected, UpnpMessage.ParseIPv4(text)?.ToString());

    private static void AssertService(string xml, string type, bool version2, string controlUrl)
    {
        var service = UpnpMessage.ParseDescription(Utf8(xml), Location);
        Assert.Equal((type, version2, new Uri(controlUrl)), (service.ServiceType, service.IsVersion2, service.ControlUrl));
    }

    private static byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);
}
