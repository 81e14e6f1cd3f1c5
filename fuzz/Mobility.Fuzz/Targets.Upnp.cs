using System.Text;
using Mobility.Protocol;
using Mobility.Protocol.PortMapping;

namespace Mobility.Fuzz;

public static partial class Targets
{
    private static readonly Type[] UpnpMalformed = [typeof(MalformedMessageException)];

    private static readonly Uri UpnpLocation = new("http://192.168.1.1:40123/rootDesc.xml");

    /// <summary>
    /// What mobilityd's UPnP client reads from its default gateway. The first byte picks the reader of the rest (its value
    /// modulo 3): 0 an SSDP answer, 1 a device description, 2 a SOAP answer of AddAnyPortMapping.
    /// </summary>
    private static FuzzTarget UpnpTarget() => new("upnp",
        "UpnpMessage.ParseSsdpResponse, ParseDescription, ParseSoapResponse (the first byte picks one, modulo 3)",
        UpnpMalformed,
        input =>
        {
            if (input.IsEmpty)
            {
                return FuzzOutcome.Accepted;
            }

            var rest = input[1..];
            switch (input[0] % 3)
            {
                case 0:
                    var answer = UpnpMessage.ParseSsdpResponse(rest);
                    Require(answer.Location.IsAbsoluteUri && answer.Location.Scheme == Uri.UriSchemeHttp, "An SSDP LOCATION that is not absolute http.");
                    break;
                case 1:
                    var service = UpnpMessage.ParseDescription(rest, UpnpLocation);
                    Require(service.ControlUrl.IsAbsoluteUri, "A control URL that is not absolute.");
                    Require(UpnpMessage.ServiceTypes.Contains(service.ServiceType), "A service that is not a WAN connection.");
                    break;
                default:
                    var result = UpnpMessage.ParseSoapResponse(rest, "AddAnyPortMapping");
                    Require(result.IsFault || result.FaultDescription is null, "A fault description without a fault.");
                    break;
            }

            return FuzzOutcome.Accepted;
        },
        UpnpSeeds);

    private static IEnumerable<FuzzSeed> UpnpSeeds()
    {
        yield return new("valid-ssdp", Selected(0,
            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
            "SERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://192.168.1.1:40123/rootDesc.xml\r\n\r\n"));
        yield return new("valid-description", Selected(1,
            "<?xml version=\"1.0\"?><root xmlns=\"urn:schemas-upnp-org:device-1-0\"><URLBase>http://192.168.1.1:40123/</URLBase><device><deviceList><device>" +
            "<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><controlURL>/ctl/IPConn</controlURL></service>" +
            "<service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType><controlURL>/ctl/PPP</controlURL></service>" +
            "</serviceList></device></deviceList></device></root>"));
        yield return new("valid-soap-answer", Selected(2,
            "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>" +
            "<u:AddAnyPortMappingResponse xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:2\"><NewReservedPort>7391</NewReservedPort>" +
            "</u:AddAnyPortMappingResponse></s:Body></s:Envelope>"));
        yield return new("valid-soap-fault", Selected(2,
            "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>" +
            "<detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription>" +
            "</UPnPError></detail></s:Fault></s:Body></s:Envelope>"));
        yield return new("edge-description-with-entities", Selected(1,
            "<?xml version=\"1.0\"?><!DOCTYPE root [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><root>&b;</root>"));
        yield return new("edge-ssdp-location-elsewhere", Selected(0, "HTTP/1.1 200 OK\r\nLOCATION: http://169.254.169.254/latest/meta-data/\r\n\r\n"));
    }

    private static byte[] Selected(byte reader, string text) => SeedKit.Concat([reader], Encoding.UTF8.GetBytes(text));
}
