using System.Net;

namespace Mobility.Gns.Client;

/// <summary>
/// One address of a GNS: its datagram endpoint and its gRPC base address (null when the client uses no gRPC).
/// A GNS reachable over IPv4 and IPv6 has one of these per address (<see cref="GnsClientOptions.Alternates"/>).
/// </summary>
public sealed record GnsEndPoint(IPEndPoint Udp, Uri? Grpc)
{
    public override string ToString() => Grpc is null ? Udp.ToString() : $"{Udp} (gRPC {Grpc})";
}
