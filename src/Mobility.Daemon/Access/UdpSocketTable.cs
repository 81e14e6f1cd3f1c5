using System.Net;
using System.Net.Sockets;

namespace Mobility.Daemon.Access;

/// <summary>
/// Who owns the local UDP socket a datagram came from: the kernel's UDP tables (/proc/net/udp and udp6,
/// the daemon's network namespace) list every UDP socket with its local endpoint, its remote endpoint
/// (zero unless connected) and the uid that created it. The sender's socket is bound to the datagram's
/// source port on its source address or on the wildcard address, and is connected to the datagram's
/// destination or not at all: the most specific such row answers. Two rows equally specific with different
/// owners (sockets sharing a port with SO_REUSEADDR), or none: unknown.
/// </summary>
internal static class UdpSocketTable
{
    /// <summary>The uid that owns the socket that sent from <paramref name="source"/> to <paramref name="destination"/>, or null when unknown.</summary>
    public static uint? FindOwner(IPEndPoint source, IPEndPoint destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        var ipv6 = Best(TcpSocketTable.Rows("/proc/net/udp6"), Map(source), Map(destination));
        if (source.AddressFamily != AddressFamily.InterNetwork)
        {
            return ipv6.Owner;
        }

        // A dual-stack IPv6 socket sends IPv4 from ::ffff:a.b.c.d (or the :: wildcard), listed in the IPv6 table.
        var ipv4 = Best(TcpSocketTable.Rows("/proc/net/udp"), source, destination);
        return ipv6.Score > ipv4.Score ? ipv6.Owner : ipv6.Score < ipv4.Score || ipv6.Owner == ipv4.Owner ? ipv4.Owner : null;
    }

    private static IPEndPoint Map(IPEndPoint endPoint) => new(endPoint.Address.MapToIPv6(), endPoint.Port);

    /// <summary>Scores a row: 2 for the exact source address (1 for the wildcard), plus 2 for connected to the destination (1 for unconnected).</summary>
    internal static (int Score, uint? Owner) Best(IEnumerable<(string Local, string Remote, uint? Owner)> rows, IPEndPoint source, IPEndPoint destination)
    {
        var any = source.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any;
        var exactLocal = TcpSocketTable.Format(source);
        var wildcardLocal = TcpSocketTable.Format(new IPEndPoint(any, source.Port));
        var connected = TcpSocketTable.Format(destination);
        var unconnected = TcpSocketTable.Format(new IPEndPoint(any, 0));
        (int Score, uint? Owner) best = (0, null);
        foreach (var (local, remote, owner) in rows)
        {
            var localScore = Same(local, exactLocal) ? 2 : Same(local, wildcardLocal) ? 1 : 0;
            var remoteScore = Same(remote, connected) ? 2 : Same(remote, unconnected) ? 1 : 0;
            var score = localScore > 0 && remoteScore > 0 ? localScore + remoteScore : 0;
            if (score > best.Score)
            {
                best = (score, owner);
            }
            else if (score > 0 && score == best.Score && owner != best.Owner)
            {
                best = (score, null);
            }
        }

        return best;
    }

    private static bool Same(string a, string b) => string.Equals(a, b, StringComparison.OrdinalIgnoreCase);
}
