using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Mobility.Gns.Client;
using Mobility.Net.EndPoints;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.GnsServers;

/// <summary>
/// The GNS datagram endpoints of <c>--gns</c>: one or more entries separated by commas, each
/// <c>IP:PORT</c>, <c>[IPv6]:PORT</c>, <c>NAME:PORT</c> or <c>NAME</c> (a DNS name; port
/// <see cref="GnsClientOptions.DefaultUdpPort"/>). Names are resolved when the daemon starts; every
/// address found is a candidate, tried as <see cref="GnsServerSelector"/> describes. Names are resolved again
/// later (<see cref="Resolver"/>: on every address change and when their TTL runs out).
/// </summary>
public sealed class GnsServerList
{
    /// <summary>Entries one option may hold: a handful of GNS addresses, not a list to scan.</summary>
    public const int MaxEntries = 16;

    private GnsServerList(IReadOnlyList<IPEndPoint> endPoints, IReadOnlyList<(string Host, int Port)> names)
    {
        EndPoints = endPoints;
        Names = names;
    }

    /// <summary>The entries given as addresses (IPv4-mapped IPv6 addresses normalised to IPv4).</summary>
    public IReadOnlyList<IPEndPoint> EndPoints { get; }

    /// <summary>The entries given as DNS names, with their ports.</summary>
    public IReadOnlyList<(string Host, int Port)> Names { get; }

    /// <summary>True when there is one address and no name: nothing to choose between.</summary>
    public bool IsSingleAddress => EndPoints.Count == 1 && Names.Count == 0;

    /// <summary>Parses <paramref name="text"/>; false with an error naming the bad entry.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out GnsServerList? list, [NotNullWhen(false)] out string? error)
    {
        list = null;
        var entries = (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (entries.Length == 0)
        {
            error = "no GNS endpoint given";
            return false;
        }

        if (entries.Length > MaxEntries)
        {
            error = $"at most {MaxEntries} GNS endpoints, not {entries.Length}";
            return false;
        }

        var endPoints = new List<IPEndPoint>();
        var names = new List<(string, int)>();
        foreach (var entry in entries)
        {
            if (EndPointParser.TryParse(entry, out var endPoint))
            {
                endPoints.Add(new IPEndPoint(Locator.Normalize(endPoint.Address), endPoint.Port));
            }
            else if (TryParseName(entry, out var host, out var port))
            {
                names.Add((host, port));
            }
            else
            {
                error = $"'{entry}' is not IP:PORT, [IPv6]:PORT, NAME:PORT or NAME";
                return false;
            }
        }

        list = new GnsServerList(endPoints.Distinct().ToArray(), names.Distinct().ToArray());
        error = null;
        return true;
    }

    /// <summary>
    /// Every candidate endpoint: the addresses as given, then each name's addresses in the order of
    /// RFC 8305 (section 4): IPv6 and IPv4 interleaved, IPv6 first. A name that does not resolve is
    /// skipped and added to <paramref name="unresolved"/> with the reason. Names go to the system's resolver.
    /// </summary>
    public async Task<IReadOnlyList<IPEndPoint>> ResolveAsync(ICollection<string>? unresolved, CancellationToken cancellationToken)
        => (await ResolveAsync(null, unresolved, cancellationToken).ConfigureAwait(false)).EndPoints;

    /// <summary>
    /// As <see cref="ResolveAsync(ICollection{string}?, CancellationToken)"/>, names resolved by <paramref name="resolver"/>
    /// (null: the system's resolver), with the smallest TTL of the names' answers (null when no name's TTL is known,
    /// or there are no names).
    /// </summary>
    public async Task<(IReadOnlyList<IPEndPoint> EndPoints, TimeSpan? Ttl)> ResolveAsync(GnsNameResolver? resolver, ICollection<string>? unresolved,
        CancellationToken cancellationToken)
    {
        var all = new List<IPEndPoint>(EndPoints);
        TimeSpan? least = null;
        foreach (var (host, port) in Names)
        {
            IReadOnlyList<IPAddress> addresses;
            try
            {
                if (resolver is null)
                {
                    addresses = await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    (addresses, var ttl) = await resolver.ResolveAsync(host, cancellationToken).ConfigureAwait(false);
                    least = ttl is { } t && (least is null || t < least) ? t : least;
                }
            }
            catch (SocketException e)
            {
                unresolved?.Add($"{host} ({e.Message})");
                continue;
            }

            if (addresses.Count == 0)
            {
                unresolved?.Add($"{host} (no address)");
            }

            all.AddRange(Interleave(addresses.Select(Locator.Normalize).Distinct()).Select(a => new IPEndPoint(a, port)));
        }

        return (all.Distinct().ToArray(), least);
    }

    /// <summary>
    /// What <see cref="GnsClientOptions.Resolve"/> calls to follow the names: every candidate now (<see cref="ResolveAsync(GnsNameResolver?, ICollection{string}?, CancellationToken)"/>
    /// with <paramref name="resolver"/>), each with its gRPC address (<see cref="GrpcFor"/> of <paramref name="grpc"/>), and the TTL.
    /// </summary>
    public Func<CancellationToken, Task<GnsResolution>> Resolver(GnsNameResolver resolver, Uri? grpc)
    {
        ArgumentNullException.ThrowIfNull(resolver);
        return async cancellationToken =>
        {
            var (endPoints, ttl) = await ResolveAsync(resolver, null, cancellationToken).ConfigureAwait(false);
            return new GnsResolution([.. endPoints.Select(e => new GnsEndPoint(e, GrpcFor(grpc, e, endPoints)))], ttl);
        };
    }

    /// <summary>
    /// The gRPC address of the GNS at <paramref name="udp"/>, one of <paramref name="candidates"/>: when
    /// <paramref name="grpc"/> (<c>--gns-grpc</c>) names one of the candidates' addresses, the same URL with
    /// <paramref name="udp"/>'s address (the same GNS over another address or family); otherwise (a DNS name, or
    /// another host) <paramref name="grpc"/> as given.
    /// </summary>
    public static Uri? GrpcFor(Uri? grpc, IPEndPoint udp, IReadOnlyList<IPEndPoint> candidates)
    {
        ArgumentNullException.ThrowIfNull(udp);
        ArgumentNullException.ThrowIfNull(candidates);
        if (grpc is null || grpc.HostNameType is not (UriHostNameType.IPv4 or UriHostNameType.IPv6)
            || !IPAddress.TryParse(grpc.Host.Trim('[', ']'), out var host))
        {
            return grpc;
        }

        host = Locator.Normalize(host);
        return candidates.Any(c => Locator.Normalize(c.Address).Equals(host))
            ? new UriBuilder(grpc) { Host = Locator.Normalize(udp.Address).ToString() }.Uri
            : grpc;
    }

    /// <summary>IPv6 and IPv4 addresses alternated, IPv6 first, each family in its given order.</summary>
    internal static IEnumerable<IPAddress> Interleave(IEnumerable<IPAddress> addresses)
    {
        var v6 = new Queue<IPAddress>(addresses.Where(a => a.AddressFamily == AddressFamily.InterNetworkV6));
        var v4 = new Queue<IPAddress>(addresses.Where(a => a.AddressFamily == AddressFamily.InterNetwork));
        while (v6.Count > 0 || v4.Count > 0)
        {
            if (v6.TryDequeue(out var six))
            {
                yield return six;
            }

            if (v4.TryDequeue(out var four))
            {
                yield return four;
            }
        }
    }

    private static bool TryParseName(string entry, out string host, out int port)
    {
        host = entry;
        port = GnsClientOptions.DefaultUdpPort;
        var colon = entry.LastIndexOf(':');
        if (colon >= 0)
        {
            host = entry[..colon];
            if (!int.TryParse(entry.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > ushort.MaxValue)
            {
                return false;
            }
        }

        // A DNS name (RFC 1123 labels, the last not all digits: RFC 3696); anything with brackets or more
        // colons, or only digits and dots, was meant as an address.
        return host.Length is > 0 and <= 253
               && !host.Split('.')[^1].All(char.IsAsciiDigit)
               && Uri.CheckHostName(host) == UriHostNameType.Dns
               && host.Split('.').All(label => label.Length is > 0 and <= 63 && label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-') && label[0] != '-' && label[^1] != '-');
    }
}
