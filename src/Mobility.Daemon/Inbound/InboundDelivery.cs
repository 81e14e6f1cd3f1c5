using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Transparent;
using Mobility.Protocol.Identity;

namespace Mobility.Daemon.Inbound;

/// <summary>
/// Opens the local end of a peer's stream or UDP session on an exposed port (docs/transparent.md, "Inbound").
/// With the source <see cref="InboundSource.Virtual"/> the socket is IP_TRANSPARENT and bound to the peer's
/// virtual address before it connects, so the application sees the peer's stable identity, whatever
/// address the peer moves to: TCP to 127.0.0.1 from the peer's virtual IPv4 address (this host's pool
/// mapping, <see cref="VirtualAddressMap"/>, kept across restarts), and to ::1 from its IPv6 address
/// (derived from the GUID) when nothing listens on 127.0.0.1 or the pool has no address for it; UDP
/// from the IPv4 address when there is one, else the IPv6 one. The address comes from the GUID the
/// transport handshake proved: a peer cannot choose it. The first such delivery checks that
/// IP_TRANSPARENT is permitted (CAP_NET_ADMIN) and installs <see cref="InboundRoutes"/>; when either
/// fails, every delivery uses the local source and one warning says why. The routes are removed at
/// stop; &lt;StateDir&gt;/<see cref="MarkerFile"/> exists while they are installed, so a start after a
/// crash removes what was left. <see cref="InboundSource.Local"/> connects from 127.0.0.1, as before.
/// </summary>
public sealed partial class InboundDelivery : IHostedService
{
    /// <summary>Holds the pool the IPv4 route was added for, so that the right one is removed after a crash.</summary>
    public const string MarkerFile = "inbound-routes";

    private const int SolIp = 0;
    private const int IpTransparent = 19;
    private const int SolIpv6 = 41;
    private const int Ipv6Transparent = 75;

    private readonly VirtualAddressMap _map;
    private readonly SocketMark _mark;
    private readonly string _marker;
    private readonly Action<Socket> _setTransparent;
    private readonly ILogger<InboundDelivery> _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private Readiness? _ready;

    public InboundDelivery(IOptions<MobilitydOptions> options, VirtualAddressMap map, SocketMark mark, ILogger<InboundDelivery> logger)
        : this(options, map, mark, logger, SetTransparent)
    {
    }

    /// <param name="setTransparent">Sets IP_TRANSPARENT (IPV6_TRANSPARENT) on a socket; a SocketException means "not permitted". Tests pass one that refuses.</param>
    internal InboundDelivery(IOptions<MobilitydOptions> options, VirtualAddressMap map, SocketMark mark, ILogger<InboundDelivery> logger,
        Action<Socket> setTransparent)
    {
        ArgumentNullException.ThrowIfNull(options);
        _map = map;
        _mark = mark;
        _logger = logger;
        _setTransparent = setTransparent;
        _marker = Path.Combine(Path.GetFullPath(options.Value.StateDir), MarkerFile);
    }

    /// <summary>The families the virtual source can use, decided by the first delivery with it (null until then).</summary>
    private sealed record Readiness(bool Ipv4, bool Ipv6);

    /// <summary>The source a port's delivery uses now: <see cref="InboundSource.Auto"/> is virtual while transparent mode is on (its mark is applied), local otherwise.</summary>
    public static InboundSource Choose(InboundSource requested, bool transparentOn)
        => requested == InboundSource.Auto ? (transparentOn ? InboundSource.Virtual : InboundSource.Local) : requested;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (File.Exists(_marker))
        {
            Log.Recovering(_logger, _marker);
            await RemoveRoutesAsync(File.ReadAllText(_marker).Trim(), cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_ready is { } ready && (ready.Ipv4 || ready.Ipv6))
            {
                await RemoveRoutesAsync(_map.Pool.ToString(), cancellationToken).ConfigureAwait(false);
            }

            // Nothing is installed again after stop: a delivery that comes late is local.
            Volatile.Write(ref _ready, new Readiness(false, false));
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// A TCP socket connected to the application on <paramref name="port"/> for a stream from <paramref name="peer"/>.
    /// Throws <see cref="SocketException"/> (or <see cref="OperationCanceledException"/>) when the application cannot be reached.
    /// </summary>
    public async Task<Socket> ConnectAsync(HostGuid peer, ushort port, InboundSource requested, CancellationToken cancellationToken)
    {
        if (await VirtualSourcesAsync(requested, cancellationToken).ConfigureAwait(false) is { } ready)
        {
            if (ready.Ipv4 && Ipv4Of(peer) is { } ipv4 && Bind(SocketType.Stream, ipv4, peer, port) is { } socket4)
            {
                try
                {
                    return await ConnectAsync(socket4, IPAddress.Loopback, port, cancellationToken).ConfigureAwait(false);
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused && ready.Ipv6)
                {
                    // Nothing on 127.0.0.1:port: the application may listen on ::1 only.
                }
            }

            if (ready.Ipv6 && Bind(SocketType.Stream, VirtualAddressPool.Ipv6Of(peer), peer, port) is { } socket6)
            {
                return await ConnectAsync(socket6, IPAddress.IPv6Loopback, port, cancellationToken).ConfigureAwait(false);
            }
        }

        return await ConnectAsync(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp), IPAddress.Loopback, port,
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A UDP socket connected to the application's UDP <paramref name="port"/> for a session from <paramref name="peer"/>.</summary>
    public async Task<Socket> OpenUdpAsync(HostGuid peer, ushort port, InboundSource requested, CancellationToken cancellationToken)
    {
        Socket? socket = null;
        if (await VirtualSourcesAsync(requested, cancellationToken).ConfigureAwait(false) is { } ready)
        {
            if (ready.Ipv4 && Ipv4Of(peer) is { } ipv4)
            {
                socket = Bind(SocketType.Dgram, ipv4, peer, port);
            }

            if (socket is null && ready.Ipv6)
            {
                socket = Bind(SocketType.Dgram, VirtualAddressPool.Ipv6Of(peer), peer, port);
            }
        }

        if (socket is null)
        {
            socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        }

        try
        {
            socket.Connect(new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Loopback : IPAddress.Loopback, port));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<Socket> ConnectAsync(Socket socket, IPAddress loopback, ushort port, CancellationToken cancellationToken)
    {
        try
        {
            socket.NoDelay = true;
            await socket.ConnectAsync(new IPEndPoint(loopback, port), cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A socket bound to <paramref name="source"/> (a virtual address) with IP_TRANSPARENT; null (logged) when the kernel refuses it.</summary>
    private Socket? Bind(SocketType type, IPAddress source, HostGuid peer, ushort port)
    {
        var socket = new Socket(source.AddressFamily, type, type == SocketType.Stream ? ProtocolType.Tcp : ProtocolType.Udp);
        try
        {
            _setTransparent(socket);
            socket.Bind(new IPEndPoint(source, 0));
            Log.Delivering(_logger, port, peer.ToString(), source);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            Log.Skipped(_logger, $"cannot bind {source}, trying the next source", e.Message);
            return null;
        }
    }

    /// <summary>The peer's virtual IPv4 address, or null when the pool has none for it now.</summary>
    private IPAddress? Ipv4Of(HostGuid peer)
    {
        try
        {
            return _map.Resolve(peer).Ipv4;
        }
        catch (VirtualAddressesFullException e)
        {
            Log.Skipped(_logger, $"no virtual IPv4 address for {peer}", e.Message);
            return null;
        }
    }

    /// <summary>What the virtual source can use, or null when this delivery is local (chosen so, or not permitted).</summary>
    private async ValueTask<Readiness?> VirtualSourcesAsync(InboundSource requested, CancellationToken cancellationToken)
    {
        if (Choose(requested, _mark.Enabled) != InboundSource.Virtual)
        {
            return null;
        }

        var ready = Volatile.Read(ref _ready) ?? await PrepareAsync(cancellationToken).ConfigureAwait(false);
        return ready.Ipv4 || ready.Ipv6 ? ready : null;
    }

    /// <summary>Once: is IP_TRANSPARENT permitted, then the routes of each family. A failure is one warning; deliveries are local from then on.</summary>
    private async Task<Readiness> PrepareAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_ready is { } done)
            {
                return done;
            }

            // Not cut short by this connection's timeout: a half-done install would count as a failure until the restart
            // (each command has ExternalCommand's own limit).
            var ready = await InstallAsync(CancellationToken.None).ConfigureAwait(false);
            Volatile.Write(ref _ready, ready);
            return ready;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<Readiness> InstallAsync(CancellationToken cancellationToken)
    {
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            try
            {
                _setTransparent(probe);
            }
            catch (SocketException e)
            {
                Log.Unavailable(_logger, $"IP_TRANSPARENT: {e.Message}; it needs CAP_NET_ADMIN");
                return new Readiness(false, false);
            }
        }

        var pool = _map.Pool.ToString();
        try
        {
            Internal.AtomicFile.Write(_marker, pool + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Unavailable(_logger, e.Message);
            return new Readiness(false, false);
        }

        var ipv4 = await TryInstallAsync(InboundRoutes.DeleteIpv4(pool), InboundRoutes.AddIpv4(_map.Pool), warn: true, cancellationToken).ConfigureAwait(false);
        // A host without IPv6 (no ::1) cannot add the IPv6 route: IPv4 alone, said at Debug.
        var ipv6 = Socket.OSSupportsIPv6
                   && await TryInstallAsync(InboundRoutes.DeleteIpv6(), InboundRoutes.AddIpv6(), warn: false, cancellationToken).ConfigureAwait(false);
        if (!ipv4 && !ipv6)
        {
            TryDeleteMarker();
            return new Readiness(false, false);
        }

        Log.RoutesInstalled(_logger, InboundRoutes.Table, ipv4 ? pool : "none", ipv6 ? $"{VirtualAddressPool.Ipv6Prefix}/{VirtualAddressPool.Ipv6PrefixLength}" : "none");
        return new Readiness(ipv4, ipv6);
    }

    /// <summary>Deletes what a crashed daemon may have left (quietly), then adds; false (logged, and whatever was added removed) when a command fails.</summary>
    private async Task<bool> TryInstallAsync(IReadOnlyList<string[]> delete, IReadOnlyList<string[]> add, bool warn, CancellationToken cancellationToken)
    {
        await RunQuietlyAsync(delete, cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var command in add)
            {
                await ExternalCommand.RunAsync("ip", command, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            return true;
        }
        catch (ExternalCommandException e)
        {
            if (warn)
            {
                Log.Unavailable(_logger, $"the routes back to them could not be added: {e.Message}");
            }
            else
            {
                Log.Skipped(_logger, "no IPv6 route back to virtual addresses, IPv4 only", e.Message);
            }

            await RunQuietlyAsync(delete, CancellationToken.None).ConfigureAwait(false);
            return false;
        }
    }

    private async Task RemoveRoutesAsync(string pool, CancellationToken cancellationToken)
    {
        await RunQuietlyAsync([.. InboundRoutes.DeleteIpv4(pool), .. InboundRoutes.DeleteIpv6()], cancellationToken).ConfigureAwait(false);
        TryDeleteMarker();
    }

    private async Task RunQuietlyAsync(IEnumerable<string[]> commands, CancellationToken cancellationToken)
    {
        foreach (var command in commands)
        {
            try
            {
                await ExternalCommand.RunAsync("ip", command, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (ExternalCommandException e)
            {
                Log.Skipped(_logger, "nothing to remove", e.Message);
            }
        }
    }

    private void TryDeleteMarker()
    {
        try
        {
            File.Delete(_marker);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Skipped(_logger, "nothing to remove", e.Message);
        }
    }

    private static void SetTransparent(Socket socket)
    {
        if (socket.AddressFamily == AddressFamily.InterNetworkV6)
        {
            socket.SetRawSocketOption(SolIpv6, Ipv6Transparent, BitConverter.GetBytes(1));
        }
        else
        {
            socket.SetRawSocketOption(SolIp, IpTransparent, BitConverter.GetBytes(1));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(8800, LogLevel.Warning, "Exposed ports cannot deliver from peers' virtual addresses ({Reason}); they deliver from 127.0.0.1.")]
        public static partial void Unavailable(ILogger logger, string reason);

        [LoggerMessage(8801, LogLevel.Information, "Exposed ports deliver from peers' virtual addresses: local routes in table {Table} for {Ipv4} and {Ipv6}.")]
        public static partial void RoutesInstalled(ILogger logger, int table, string ipv4, string ipv6);

        [LoggerMessage(8802, LogLevel.Warning, "Inbound routes were installed when the daemon last stopped without cleaning up ({Marker}): removing them first.")]
        public static partial void Recovering(ILogger logger, string marker);

        [LoggerMessage(8803, LogLevel.Debug, "Delivering to port {Port} from {Guid}'s virtual address {Source}.")]
        public static partial void Delivering(ILogger logger, int port, string guid, IPAddress source);

        [LoggerMessage(8804, LogLevel.Debug, "Inbound delivery: {What} ({Error}).")]
        public static partial void Skipped(ILogger logger, string what, string error);
    }
}
