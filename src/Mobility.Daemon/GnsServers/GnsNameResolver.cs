using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Mobility.Daemon.Transparent;
using Mobility.Protocol.Dns;

namespace Mobility.Daemon.GnsServers;

/// <summary>
/// Resolves the names of <c>--gns</c> (A and AAAA) and learns how long the answer holds: the queries go over UDP to
/// <see cref="Servers"/> (<c>--gns-resolver</c>), or else to the nameservers of /etc/resolv.conf, and the smallest TTL
/// of the records is the answer's. A name no DNS server answers with an address (none configured, none answers, or
/// a name only /etc/hosts knows) is then asked of the system's resolver, whose answers carry no TTL; with
/// <c>--gns-resolver</c> there is no such fallback.
/// </summary>
public sealed class GnsNameResolver
{
    /// <summary>How long one query waits for its answer before the next server (or the next round) is asked.</summary>
    public TimeSpan QueryTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Rounds over the servers; a lost datagram costs one <see cref="QueryTimeout"/>, not the name.</summary>
    public int Rounds { get; init; } = 2;

    /// <summary>The DNS servers asked; empty: those of <see cref="ResolvConf"/>, then the system's resolver.</summary>
    public IReadOnlyList<IPEndPoint> Servers { get; init; } = [];

    /// <summary>The resolv.conf read (on every resolution, so a network change that rewrites it is followed) when <see cref="Servers"/> is empty.</summary>
    public string ResolvConf { get; init; } = "/etc/resolv.conf";

    /// <summary>The addresses of <paramref name="host"/> (empty when it has none) and their TTL (null when not known).</summary>
    public async Task<(IReadOnlyList<IPAddress> Addresses, TimeSpan? Ttl)> ResolveAsync(string host, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(host);
        var servers = Servers.Count > 0 ? Servers : ReadResolvConf();
        if (servers.Count > 0)
        {
            var name = DnsName.Parse(host);
            var answers = await Task.WhenAll(
                QueryAsync(servers, name, DnsType.AAAA, cancellationToken),
                QueryAsync(servers, name, DnsType.A, cancellationToken)).ConfigureAwait(false);
            var addresses = answers.Where(a => a is not null).SelectMany(a => a!.Addresses).ToArray();
            if (addresses.Length > 0 || Servers.Count > 0)
            {
                var ttls = answers.Where(a => a?.Ttl is not null).Select(a => a!.Ttl!.Value).ToArray();
                return (addresses, ttls.Length == 0 ? null : TimeSpan.FromSeconds(ttls.Min()));
            }
        }

        try
        {
            return (await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false), null);
        }
        catch (SocketException)
        {
            return ([], null);
        }
    }

    private IReadOnlyList<IPEndPoint> ReadResolvConf()
    {
        try
        {
            return [.. DnsUpstream.Parse(File.ReadAllText(ResolvConf), null)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>The first answer of any of <paramref name="servers"/> to the query (each asked in turn, <see cref="Rounds"/> times), or null.</summary>
    private async Task<DnsAddressAnswer?> QueryAsync(IReadOnlyList<IPEndPoint> servers, DnsName name, DnsType type, CancellationToken cancellationToken)
    {
        var id = (ushort)RandomNumberGenerator.GetInt32(ushort.MaxValue + 1);
        var query = new byte[DnsLimits.HeaderSize + name.WireLength + 4];
        DnsAddressLookup.WriteQuery(id, name, type, query);
        var buffer = new byte[DnsLimits.MaxMessageSize];
        for (var round = 0; round < Rounds; round++)
        {
            foreach (var server in servers)
            {
                using var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(QueryTimeout);
                try
                {
                    await socket.ConnectAsync(server, timeout.Token).ConfigureAwait(false);
                    await socket.SendAsync(query, timeout.Token).ConfigureAwait(false);
                    while (true)
                    {
                        var length = await socket.ReceiveAsync(buffer, timeout.Token).ConfigureAwait(false);
                        try
                        {
                            // A stray or malformed datagram is dropped; the wait goes on until the timeout.
                            if (DnsAddressLookup.ReadAnswer(buffer.AsSpan(0, length), id, name, type) is { } answer)
                            {
                                return answer;
                            }
                        }
                        catch (DnsFormatException)
                        {
                        }
                    }
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    // No answer in time: the next server.
                }
                catch (SocketException)
                {
                    // Unreachable (no route, refused): the next server.
                }
            }
        }

        return null;
    }
}
