using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Protocol.Dns;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// The host's resolver, to which the stub passes every name outside its zones untouched: the
/// <c>nameserver</c> lines of resolv.conf as it was before transparent mode changed it (its backup while
/// the stub is installed there, <see cref="ResolverIntegration"/>), leaving out the stub itself. Over the
/// transport the query came on; each server in turn, each for <see cref="TransparentOptions.UpstreamTimeout"/>.
/// </summary>
public sealed partial class DnsUpstream
{
    private readonly TransparentOptions _options;
    private readonly string _stateDir;
    private readonly ILogger<DnsUpstream> _logger;
    private volatile IPEndPoint[] _servers = [];

    public DnsUpstream(IOptions<MobilitydOptions> options, ILogger<DnsUpstream> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value.Transparent;
        _stateDir = Path.GetFullPath(options.Value.StateDir);
        _logger = logger;
        Reload();
    }

    public IReadOnlyList<IPEndPoint> Servers => _servers;

    /// <summary>Reads the servers again (the backup of resolv.conf when there is one, else resolv.conf).</summary>
    public void Reload()
    {
        var backup = ResolverIntegration.BackupPath(_stateDir);
        var path = File.Exists(backup) ? backup : _options.ResolvConf;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            text = "";
        }

        _servers = Parse(text, _options.DnsEndPoint).ToArray();
        Log.Upstream(_logger, path, _servers.Length == 0 ? "none (queries outside the zones are refused)" : string.Join(", ", (object[])_servers));
    }

    /// <summary>The <c>nameserver</c> addresses of a resolv.conf text (port 53), without <paramref name="stub"/>.</summary>
    public static IEnumerable<IPEndPoint> Parse(string resolvConf, IPEndPoint? stub)
    {
        ArgumentNullException.ThrowIfNull(resolvConf);
        foreach (var line in resolvConf.Split('\n'))
        {
            var fields = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 2 && fields[0] == "nameserver" && IPAddress.TryParse(fields[1].Split('%')[0], out var address))
            {
                var server = new IPEndPoint(address, 53);
                if (!server.Equals(stub))
                {
                    yield return server;
                }
            }
        }
    }

    /// <summary>
    /// Sends <paramref name="query"/> to the servers in turn and copies the first answer with the query's id
    /// into <paramref name="response"/>: its length, 0 when none answered, -1 when there is no server.
    /// </summary>
    public async ValueTask<int> ForwardAsync(ReadOnlyMemory<byte> query, Memory<byte> response, bool overTcp, CancellationToken cancellationToken)
    {
        var servers = _servers;
        if (servers.Length == 0)
        {
            return -1;
        }

        var id = BinaryPrimitives.ReadUInt16BigEndian(query.Span);
        foreach (var server in servers)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.UpstreamTimeout);
            try
            {
                var length = overTcp
                    ? await ExchangeTcpAsync(server, query, response, timeout.Token).ConfigureAwait(false)
                    : await ExchangeUdpAsync(server, query, response, id, timeout.Token).ConfigureAwait(false);
                if (length >= DnsLimits.HeaderSize && BinaryPrimitives.ReadUInt16BigEndian(response.Span) == id)
                {
                    return length;
                }
            }
            catch (Exception e) when (e is SocketException or IOException || e is OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                Log.UpstreamFailed(_logger, server, e.Message);
            }
        }

        return 0;
    }

    /// <summary>One datagram out; datagrams back are read until one carries the query's id (a connected socket takes only the server's).</summary>
    private static async Task<int> ExchangeUdpAsync(IPEndPoint server, ReadOnlyMemory<byte> query, Memory<byte> response, ushort id, CancellationToken cancellationToken)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        await socket.ConnectAsync(server, cancellationToken).ConfigureAwait(false);
        await socket.SendAsync(query, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        while (true)
        {
            var length = await socket.ReceiveAsync(response, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (length >= DnsLimits.HeaderSize && BinaryPrimitives.ReadUInt16BigEndian(response.Span) == id)
            {
                return length;
            }
        }
    }

    /// <summary>One framed query out, one framed answer back (RFC 1035 4.2.2).</summary>
    private static async Task<int> ExchangeTcpAsync(IPEndPoint server, ReadOnlyMemory<byte> query, Memory<byte> response, CancellationToken cancellationToken)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server, cancellationToken).ConfigureAwait(false);
        using var stream = new NetworkStream(socket, ownsSocket: false);
        var frame = new byte[2 + query.Length];
        BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)query.Length);
        query.CopyTo(frame.AsMemory(2));
        await stream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
        await stream.ReadExactlyAsync(response[..2], cancellationToken).ConfigureAwait(false);
        var length = BinaryPrimitives.ReadUInt16BigEndian(response.Span);
        if (length > response.Length)
        {
            throw new IOException($"The upstream answer of {length} octets does not fit.");
        }

        await stream.ReadExactlyAsync(response[..length], cancellationToken).ConfigureAwait(false);
        return length;
    }

    private static partial class Log
    {
        [LoggerMessage(8430, LogLevel.Information, "DNS stub: names outside .mob and .guid go to the resolvers of {Path}: {Servers}.")]
        public static partial void Upstream(ILogger logger, string path, string servers);

        [LoggerMessage(8431, LogLevel.Debug, "DNS stub: upstream {Server} did not answer: {Error}.")]
        public static partial void UpstreamFailed(ILogger logger, IPEndPoint server, string error);
    }
}
