using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security;
using System.Text;
using System.Xml;

namespace Mobility.Protocol.PortMapping;

/// <summary>One SSDP answer to an M-SEARCH: where the device description is, and what the device said it is.</summary>
public sealed record SsdpResponse(Uri Location, string SearchTarget, string Server);

/// <summary>The WAN connection service of an Internet Gateway Device: its type (WANIPConnection:1 or :2, WANPPPConnection:1) and control URL.</summary>
public sealed record UpnpService(string ServiceType, Uri ControlUrl)
{
    /// <summary>IGD v2's WANIPConnection:2 has AddAnyPortMapping (the gateway picks a free port when ours is taken).</summary>
    public bool IsVersion2 => ServiceType.EndsWith(":2", StringComparison.Ordinal);
}

/// <summary>A SOAP answer: the action's output arguments, or the UPnP error of a fault (<see cref="FaultCode"/> not null).</summary>
public sealed record SoapResult(IReadOnlyDictionary<string, string> Values, int? FaultCode, string? FaultDescription)
{
    public bool IsFault => FaultCode is not null;
}

/// <summary>
/// UPnP IGD port mapping (docs/protocol.md, "UPnP IGD"): the SSDP M-SEARCH mobilityd sends to its default gateway and the
/// reader of the answer, the reader of the device description (XML without DTDs or entities, bounded), and the SOAP
/// requests of WANIPConnection (GetExternalIPAddress, AddPortMapping, AddAnyPortMapping, DeletePortMapping) with the
/// reader of their answers and faults. Every reader throws <see cref="MalformedMessageException"/> for what it cannot
/// read and nothing else. No I/O: the daemon's <c>UpnpClient</c> sends and receives.
/// </summary>
public static class UpnpMessage
{
    public const int SsdpPort = 1900;

    /// <summary>The largest SSDP answer read (an answer is one datagram of a few hundred bytes).</summary>
    public const int MaxSsdpLength = 2048;

    /// <summary>The largest device description read (miniupnpd's is about 3 KiB, routers' up to some 20 KiB).</summary>
    public const int MaxDescriptionLength = 64 * 1024;

    /// <summary>The largest SOAP answer read.</summary>
    public const int MaxSoapLength = 16 * 1024;

    /// <summary>How deep the description's elements may nest (devices inside devices: a handful in real gateways).</summary>
    public const int MaxDepth = 32;

    private static readonly UTF8Encoding Utf8Lenient = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    public const string SearchTarget = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";

    /// <summary>The WAN connection services, best first.</summary>
    public static readonly IReadOnlyList<string> ServiceTypes =
    [
        "urn:schemas-upnp-org:service:WANIPConnection:2",
        "urn:schemas-upnp-org:service:WANIPConnection:1",
        "urn:schemas-upnp-org:service:WANPPPConnection:1",
    ];

    /// <summary>UPnP error 718 ConflictInMappingEntry: the external port is mapped to another host.</summary>
    public const int ConflictInMappingEntry = 718;

    /// <summary>UPnP error 725 OnlyPermanentLeasesSupported: the gateway takes only a lease of 0 (IGD v1).</summary>
    public const int OnlyPermanentLeasesSupported = 725;

    public static readonly IPAddress SsdpMulticast = IPAddress.Parse("239.255.255.250");

    /// <summary>An M-SEARCH for an Internet Gateway Device (UPnP Device Architecture 1.1, section 1.3.2), answers within 1 s.</summary>
    public static byte[] WriteSearch() => Encoding.ASCII.GetBytes(
        "M-SEARCH * HTTP/1.1\r\n" +
        $"HOST: {SsdpMulticast}:{SsdpPort}\r\n" +
        "MAN: \"ssdp:discover\"\r\n" +
        "MX: 1\r\n" +
        $"ST: {SearchTarget}\r\n" +
        "\r\n");

    /// <summary>
    /// Reads an SSDP answer: <c>HTTP/1.1 200 OK</c>, header lines, a LOCATION that is an absolute http URL. ST and SERVER
    /// are empty when absent. Whether the location may be fetched is <see cref="IsAtGateway"/>'s question.
    /// </summary>
    public static SsdpResponse ParseSsdpResponse(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length > MaxSsdpLength)
        {
            throw new MalformedMessageException($"SSDP answer: {datagram.Length} bytes (at most {MaxSsdpLength}).");
        }

        foreach (var b in datagram)
        {
            if (b is 0 or > 0x7e || (b < 0x20 && b is not (byte)'\r' and not (byte)'\n' and not (byte)'\t'))
            {
                throw new MalformedMessageException("SSDP answer: not printable ASCII.");
            }
        }

        var lines = Encoding.ASCII.GetString(datagram).Split('\n');
        var status = lines[0].TrimEnd('\r').Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || status[1] != "200")
        {
            throw new MalformedMessageException("SSDP answer: not an HTTP/1.x 200 status line.");
        }

        string? location = null, st = null, server = null;
        foreach (var raw in lines.Skip(1))
        {
            var line = raw.TrimEnd('\r');
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                continue;
            }

            var value = line[(colon + 1)..].Trim();
            switch (line[..colon].Trim().ToUpperInvariant())
            {
                case "LOCATION":
                    location = location is null ? value : throw new MalformedMessageException("SSDP answer: two LOCATION headers.");
                    break;
                case "ST":
                    st = value;
                    break;
                case "SERVER":
                    server = value;
                    break;
            }
        }

        if (location is null)
        {
            throw new MalformedMessageException("SSDP answer: no LOCATION header.");
        }

        if (!Uri.TryCreate(location, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            throw new MalformedMessageException("SSDP answer: LOCATION is not an absolute http URL.");
        }

        return new SsdpResponse(uri, st ?? "", server ?? "");
    }

    /// <summary>
    /// The SSRF guard: a URL a gateway hands out (LOCATION, URLBase, controlURL) is fetched only when it is plain http to
    /// the gateway's own address written as an IP literal (no name to resolve elsewhere), with no user information.
    /// </summary>
    public static bool IsAtGateway(Uri url, IPAddress gateway)
    {
        ArgumentNullException.ThrowIfNull(url);
        ArgumentNullException.ThrowIfNull(gateway);
        return url.IsAbsoluteUri && url.Scheme == Uri.UriSchemeHttp && url.HostNameType == UriHostNameType.IPv4 && url.UserInfo.Length == 0
            && IPAddress.TryParse(url.Host, out var host) && host.Equals(gateway) && url.Port is > 0 and <= 65535;
    }

    /// <summary>
    /// Reads a device description and returns the best WAN connection service (<see cref="ServiceTypes"/>' order), its
    /// control URL made absolute against URLBase or <paramref name="location"/>. DTDs are refused, entities never expanded,
    /// the size and the nesting are bounded.
    /// </summary>
    public static UpnpService ParseDescription(ReadOnlySpan<byte> xml, Uri location)
    {
        ArgumentNullException.ThrowIfNull(location);
        if (xml.Length > MaxDescriptionLength)
        {
            throw new MalformedMessageException($"Device description: {xml.Length} bytes (at most {MaxDescriptionLength}).");
        }

        var found = new List<(string Type, string Control)>();
        string? urlBase = null;
        ReadXml(xml, MaxDescriptionLength, reader =>
        {
            if (reader.LocalName == "URLBase" && reader.Depth == 1)
            {
                urlBase = reader.ReadElementContentAsString().Trim();
                return true;
            }

            if (reader.LocalName != "service")
            {
                return false;
            }

            string? type = null, control = null;
            ReadChildren(reader, name => name is "serviceType" or "controlURL", (name, value) =>
            {
                if (name == "serviceType")
                {
                    type = value;
                }
                else
                {
                    control = value;
                }
            });
            if (type is not null && control is not null)
            {
                found.Add((type, control));
            }

            return false;
        });

        foreach (var wanted in ServiceTypes)
        {
            if (found.FirstOrDefault(f => f.Type == wanted) is { Control: { } control })
            {
                var baseUri = location;
                if (!string.IsNullOrEmpty(urlBase) && Uri.TryCreate(urlBase, UriKind.Absolute, out var parsedBase))
                {
                    baseUri = parsedBase;
                }

                if (!Uri.TryCreate(baseUri, control, out var controlUrl))
                {
                    throw new MalformedMessageException("Device description: a controlURL that is not a URL.");
                }

                return new UpnpService(wanted, controlUrl);
            }
        }

        throw new MalformedMessageException("Device description: no WANIPConnection or WANPPPConnection service.");
    }

    /// <summary>The SOAP request of <paramref name="action"/> with its arguments in order, and the SOAPACTION header's value.</summary>
    public static (byte[] Body, string SoapAction) WriteSoapRequest(string serviceType, string action, IReadOnlyList<KeyValuePair<string, string>> arguments)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        ArgumentNullException.ThrowIfNull(action);
        ArgumentNullException.ThrowIfNull(arguments);
        var body = new StringBuilder()
            .Append("<?xml version=\"1.0\"?>\r\n")
            .Append("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\">")
            .Append("<s:Body><u:").Append(action).Append(" xmlns:u=\"").Append(SecurityElement.Escape(serviceType)).Append("\">");
        foreach (var (name, value) in arguments)
        {
            body.Append('<').Append(name).Append('>').Append(SecurityElement.Escape(value)).Append("</").Append(name).Append('>');
        }

        body.Append("</u:").Append(action).Append("></s:Body></s:Envelope>\r\n");
        return (Encoding.UTF8.GetBytes(body.ToString()), $"\"{serviceType}#{action}\"");
    }

    /// <summary>GetExternalIPAddress: no arguments; the answer's NewExternalIPAddress.</summary>
    public static (byte[] Body, string SoapAction) WriteGetExternalIPAddress(string serviceType) =>
        WriteSoapRequest(serviceType, "GetExternalIPAddress", []);

    /// <summary>
    /// AddPortMapping (IGD v1 and v2) or AddAnyPortMapping (v2 only: the gateway may grant another external port, in its
    /// answer's NewReservedPort): the external port <paramref name="externalPort"/> to <paramref name="client"/>'s
    /// <paramref name="internalPort"/>. A lease of 0 asks for a permanent mapping (IGD v1; v2 gateways make it a week).
    /// </summary>
    public static (byte[] Body, string SoapAction) WriteAddPortMapping(string serviceType, bool any, MappedTransport transport, ushort externalPort,
        ushort internalPort, IPAddress client, uint leaseSeconds, string description)
    {
        ArgumentNullException.ThrowIfNull(client);
        return WriteSoapRequest(serviceType, any ? "AddAnyPortMapping" : "AddPortMapping",
        [
            new("NewRemoteHost", ""),
            new("NewExternalPort", externalPort.ToString(CultureInfo.InvariantCulture)),
            new("NewProtocol", TransportName(transport)),
            new("NewInternalPort", internalPort.ToString(CultureInfo.InvariantCulture)),
            new("NewInternalClient", client.ToString()),
            new("NewEnabled", "1"),
            new("NewPortMappingDescription", description),
            new("NewLeaseDuration", leaseSeconds.ToString(CultureInfo.InvariantCulture)),
        ]);
    }

    /// <summary>DeletePortMapping of the external port <paramref name="port"/>.</summary>
    public static (byte[] Body, string SoapAction) WriteDeletePortMapping(string serviceType, MappedTransport transport, ushort port) =>
        WriteSoapRequest(serviceType, "DeletePortMapping",
        [
            new("NewRemoteHost", ""),
            new("NewExternalPort", port.ToString(CultureInfo.InvariantCulture)),
            new("NewProtocol", TransportName(transport)),
        ]);

    public static string TransportName(MappedTransport transport) => transport == MappedTransport.Udp ? "UDP" : "TCP";

    /// <summary>
    /// Reads a SOAP answer: the output arguments of <c>&lt;u:ACTIONResponse&gt;</c> (child elements with text only), or a
    /// fault's UPnPError errorCode and errorDescription. Anything else (no body, another action's response, a fault
    /// without an error code) is malformed.
    /// </summary>
    public static SoapResult ParseSoapResponse(ReadOnlySpan<byte> xml, string action)
    {
        ArgumentNullException.ThrowIfNull(action);
        if (xml.Length > MaxSoapLength)
        {
            throw new MalformedMessageException($"SOAP answer: {xml.Length} bytes (at most {MaxSoapLength}).");
        }

        Dictionary<string, string>? values = null;
        string? errorCode = null, errorDescription = null;
        var fault = false;
        ReadXml(xml, MaxSoapLength, reader =>
        {
            if (reader.LocalName == action + "Response" && values is null)
            {
                var read = new Dictionary<string, string>(StringComparer.Ordinal);
                ReadChildren(reader, _ => true, (name, value) => read.TryAdd(name, value));
                values = read;
                return false;
            }

            switch (reader.LocalName)
            {
                case "Fault":
                    fault = true;
                    return false;
                case "errorCode" when fault:
                    errorCode = reader.ReadElementContentAsString().Trim();
                    return true;
                case "errorDescription" when fault:
                    errorDescription = reader.ReadElementContentAsString().Trim();
                    return true;
                default:
                    return false;
            }
        });

        if (fault)
        {
            if (!int.TryParse(errorCode, NumberStyles.None, CultureInfo.InvariantCulture, out var code))
            {
                throw new MalformedMessageException("SOAP fault: no numeric UPnP errorCode.");
            }

            return new SoapResult(new Dictionary<string, string>(), code, errorDescription ?? "");
        }

        return values is null
            ? throw new MalformedMessageException($"SOAP answer: no {action}Response.")
            : new SoapResult(values, null, null);
    }

    /// <summary>
    /// The text of each child element of the element <paramref name="reader"/> stands on that <paramref name="wanted"/>
    /// names (others are skipped); a wanted child with elements inside is malformed. Leaves the reader on the element's end.
    /// </summary>
    private static void ReadChildren(XmlReader reader, Func<string, bool> wanted, Action<string, string> child)
    {
        using var subtree = reader.ReadSubtree();
        subtree.Read();
        var more = subtree.Read();
        while (more)
        {
            if (subtree.NodeType == XmlNodeType.Element && subtree.Depth == 1)
            {
                var name = subtree.LocalName;
                if (wanted(name))
                {
                    child(name, subtree.ReadElementContentAsString().Trim());
                }
                else
                {
                    subtree.Skip();
                }

                more = !subtree.EOF;
                continue;
            }

            more = subtree.Read();
        }
    }

    /// <summary>
    /// Reads <paramref name="xml"/> element by element with DTDs prohibited (an entity cannot be declared, so none is
    /// expanded), no resolver, a character limit and a depth limit; <paramref name="element"/> sees each start element
    /// and returns true when it consumed it (the reader already stands on the next node). The bytes are decoded here as
    /// UTF-8 (UPnP's encoding; an invalid byte becomes U+FFFD, and only ASCII URLs and names are read), so the XML
    /// reader never switches encodings on the document's say: System.Xml's switch threw ArgumentOutOfRangeException on
    /// a fuzzed declaration behind a stray byte.
    /// </summary>
    private static void ReadXml(ReadOnlySpan<byte> xml, int maxCharacters, Func<XmlReader, bool> element)
    {
        var settings = new XmlReaderSettings
        {
            DtdProcessing = DtdProcessing.Prohibit,
            XmlResolver = null,
            MaxCharactersInDocument = maxCharacters,
            IgnoreComments = true,
            IgnoreProcessingInstructions = true,
            IgnoreWhitespace = true,
        };
        try
        {
            var text = Utf8Lenient.GetString(xml);
            using var reader = XmlReader.Create(new StringReader(text.StartsWith('\uFEFF') ? text[1..] : text), settings);
            var consumed = false;
            while (consumed || reader.Read())
            {
                consumed = false;
                if (reader.Depth > MaxDepth)
                {
                    throw new MalformedMessageException($"XML nested deeper than {MaxDepth}.");
                }

                if (reader.NodeType == XmlNodeType.Element && !reader.IsEmptyElement)
                {
                    consumed = element(reader);
                }
            }
        }
        catch (XmlException e)
        {
            throw new MalformedMessageException($"XML: {e.Message}");
        }
        catch (Exception e) when (e is InvalidOperationException or DecoderFallbackException)
        {
            throw new MalformedMessageException($"XML: {e.Message}");
        }
    }

    /// <summary>An IPv4 address in its dotted form, or null (GetExternalIPAddress answers it as text).</summary>
    public static IPAddress? ParseIPv4(string? text) =>
        IPAddress.TryParse(text, out var address) && address.AddressFamily == AddressFamily.InterNetwork && text!.Count(c => c == '.') == 3 ? address : null;
}
