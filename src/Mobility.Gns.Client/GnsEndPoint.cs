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

/// <summary>
/// What <see cref="GnsClientOptions.Resolve"/> answers: every address of the GNS now (empty when nothing resolved),
/// and how long the answer holds (the smallest TTL of the DNS records behind it), or null when that is not known.
/// </summary>
public sealed record GnsResolution(IReadOnlyList<GnsEndPoint> EndPoints, TimeSpan? Ttl);
