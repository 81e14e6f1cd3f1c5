using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Access;
using Mobility.Daemon.Peers;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using Mobility.Net.EndPoints;
using Mobility.Transport;

namespace Mobility.Daemon.Forwarding;

/// <summary>
/// A SOCKS5 endpoint (RFC 1928; no-auth, CONNECT only) for unmodified applications:
/// <c>&lt;guid&gt;.guid</c> or a GNS name as the domain opens a mobile stream to that host's port
/// (through <see cref="MobileForwarder.OpenAsync"/>); an IPv4/IPv6 address (or an address literal
/// as the domain) is reached through <see cref="MobileForwarder.ConnectAddressAsync"/>: mobile when its
/// owner proves a GUID and publishes a transport endpoint, plain TCP otherwise. Listens on <see cref="MobilitydOptions.Socks"/>
/// (loopback by default); off when empty. Only callers the <see cref="LocalAccessPolicy"/> admits
/// (their uid read from the kernel's TCP table) may use it: anyone else gets reply 0x02, "connection
/// not allowed by ruleset", to their request, and a Debug log line.
/// </summary>
public sealed partial class Socks5Endpoint : IHostedService
{
    /// <summary>The suffix that marks a GUID in the SOCKS domain: <c>&lt;40 hex&gt;.guid</c>.</summary>
    public const string GuidSuffix = ".guid";

    private readonly MobilitydOptions _options;
    private readonly MobileForwarder _forwarder;
    private readonly WatchedRecords _records;
    private readonly LocalAccessPolicy _access;
    private readonly TimeProvider _time;
    private readonly ILogger<Socks5Endpoint> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;

    public Socks5Endpoint(IOptions<MobilitydOptions> options, MobileForwarder forwarder, WatchedRecords records, LocalAccessPolicy access, TimeProvider time,
        ILogger<Socks5Endpoint> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _forwarder = forwarder;
        _records = records;
        _access = access;
        _time = time;
        _logger = logger;
    }

    /// <summary>The bound endpoint, or null when off (or when the address was taken).</summary>
    public IPEndPoint? LocalEndPoint => _listener?.LocalEndPoint as IPEndPoint;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_options.SocksEndPoint is not { } endpoint)
        {
            return Task.CompletedTask;
        }

        Socket listener;
        try
        {
            listener = ListenSockets.ListenTcp(endpoint, $"SOCKS5 endpoint, {MobilitydOptions.SocksOption}", backlog: 512);
        }
        catch (ListenerBindException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse
                                              && string.Equals(_options.Socks, MobilitydOptions.DefaultSocks, StringComparison.Ordinal))
        {
            // The default endpoint is taken (another SOCKS server, or a second daemon on the host): the
            // daemon's other services do not need it, so it runs without. A configured one is required.
            Log.Unavailable(_logger, endpoint, e.InnerException!.Message);
            return Task.CompletedTask;
        }

        _listener = listener;
        Log.Listening(_logger, (IPEndPoint)listener.LocalEndPoint!);
        _acceptLoop = AcceptLoopAsync(listener, _stopping.Token);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        await _acceptLoop.ConfigureAwait(false);
    }

    private async Task AcceptLoopAsync(Socket listener, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            if (!_forwarder.TryReserveRelay())
            {
                Log.Refused(_logger, client.RemoteEndPoint, "too many relays");
                client.Dispose();
                continue;
            }

            client.NoDelay = true;
            _forwarder.Track(ServeAsync(client, cancellationToken));
        }
    }

    private async Task ServeAsync(Socket client, CancellationToken cancellationToken)
    {
        var relaying = false;
        var buffer = ArrayPool<byte>.Shared.Rent(Socks5Parser.MaxGreetingSize + Socks5Parser.MaxRequestSize);
        try
        {
            using var handshake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            handshake.CancelAfter(_options.Forwarding.HandshakeTimeout);
            var ct = handshake.Token;
            // Who is calling is settled before anything is read: the client's socket is in the kernel's table now.
            var verdict = _access.Check(client);
            var filled = 0;
            var consumed = 0;

            Socks5Greeting greeting = default;
            int used;
            while (!TryParse(buffer, consumed, filled, (ref SequenceReader<byte> r) => Socks5Parser.TryReadGreeting(ref r, out greeting), out used))
            {
                filled += await ReadMoreAsync(client, buffer, filled, ct).ConfigureAwait(false);
            }

            consumed += used;
            if (!greeting.OffersNoAuthentication)
            {
                await client.SendAsync(new byte[] { Socks5Parser.Version, Socks5Parser.NoAcceptableMethods }, ct).ConfigureAwait(false);
                return;
            }

            await client.SendAsync(new byte[] { Socks5Parser.Version, Socks5Parser.NoAuthentication }, ct).ConfigureAwait(false);
            Socks5Request request = default;
            while (!TryParse(buffer, consumed, filled, (ref SequenceReader<byte> r) => Socks5Parser.TryReadRequest(ref r, out request), out used))
            {
                filled += await ReadMoreAsync(client, buffer, filled, ct).ConfigureAwait(false);
            }

            consumed += used;
            if (!verdict.Admitted)
            {
                Log.NotAdmitted(_logger, client.RemoteEndPoint, verdict.Reason);
                await client.SendAsync(Socks5Parser.Reply(Socks5Reply.NotAllowed), ct).ConfigureAwait(false);
                return;
            }

            if (request.Command != Socks5Command.Connect)
            {
                await client.SendAsync(Socks5Parser.Reply(Socks5Reply.CommandNotSupported), ct).ConfigureAwait(false);
                return;
            }

            var early = buffer.AsMemory(consumed, filled - consumed).ToArray();
            var address = request.Address ?? AddressLiteral(request.Host!);
            if (address is null)
            {
                relaying = await ConnectMobileAsync(client, request.Host!, request.Port, early, ct).ConfigureAwait(false);
            }
            else
            {
                relaying = await ConnectAddressAsync(client, new IPEndPoint(address, request.Port), early, ct, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Socks5FormatException e)
        {
            Log.Malformed(_logger, client.RemoteEndPoint, e.Message);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            Log.Refused(_logger, client.RemoteEndPoint, e.Message);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (!relaying)
            {
                _forwarder.ReleaseRelay();
                client.Dispose();
            }
        }
    }

    /// <summary>A dotted-quad IPv4 literal sent as a domain (some clients do); not the shorthand "1234" or "10.1", which are names.</summary>
    private static IPAddress? AddressLiteral(string host)
        => host.Count(c => c == '.') == 3 && IPAddress.TryParse(host, out var address) && address.AddressFamily == AddressFamily.InterNetwork ? address : null;

    private delegate bool Parse(ref SequenceReader<byte> reader);

    private static bool TryParse(byte[] buffer, int start, int end, Parse parse, out int used)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(buffer, start, end - start));
        var done = parse(ref reader);
        used = (int)reader.Consumed;
        return done;
    }

    private static async Task<int> ReadMoreAsync(Socket client, byte[] buffer, int filled, CancellationToken cancellationToken)
    {
        if (filled == buffer.Length)
        {
            throw new Socks5FormatException("The SOCKS5 handshake is longer than any valid one.");
        }

        var read = await client.ReceiveAsync(buffer.AsMemory(filled), cancellationToken).ConfigureAwait(false);
        return read == 0 ? throw new Socks5FormatException("The client closed inside the SOCKS5 handshake.") : read;
    }

    /// <summary>Resolves <paramref name="host"/> (<c>&lt;guid&gt;.guid</c> or a GNS name) and opens a mobile stream to it.</summary>
    private async Task<bool> ConnectMobileAsync(Socket client, string host, ushort port, byte[] early, CancellationToken cancellationToken)
    {
        HostGuid guid;
        if (host.EndsWith(GuidSuffix, StringComparison.OrdinalIgnoreCase) && HostGuid.TryParse(host[..^GuidSuffix.Length], out var parsed))
        {
            guid = parsed;
        }
        else if (HostName.Normalize(host, out _) is { } name && await LookupNameAsync(name, cancellationToken).ConfigureAwait(false) is { } found)
        {
            guid = found;
        }
        else
        {
            return await RefuseAsync(client, $"'{host}' is neither <guid>.guid nor a registered name", Socks5Reply.HostUnreachable, cancellationToken).ConfigureAwait(false);
        }

        MobileConnection connection;
        try
        {
            connection = await _forwarder.OpenAsync(guid, port, cancellationToken).ConfigureAwait(false);
        }
        catch (OpenRefusedException e)
        {
            var reply = e.Status == OpenStatus.NotExposed ? Socks5Reply.NotAllowed : Socks5Reply.ConnectionRefused;
            return await RefuseAsync(client, e.Message, reply, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is MobileConnectionException or GnsException or OperationCanceledException && !_stopping.IsCancellationRequested)
        {
            return await RefuseAsync(client, e.Message, Socks5Reply.HostUnreachable, CancellationToken.None).ConfigureAwait(false);
        }

        await ReplySucceededAsync(client, connection, cancellationToken).ConfigureAwait(false);

        _forwarder.StartRelay(connection, client, early);
        return true;
    }

    /// <summary>Logs why (at Debug: a client can cause it) and answers the client with <paramref name="reply"/>; false, as nothing is relayed.</summary>
    private async Task<bool> RefuseAsync(Socket client, string reason, Socks5Reply reply, CancellationToken cancellationToken)
    {
        Log.Refused(_logger, client.RemoteEndPoint, reason);
        await client.SendAsync(Socks5Parser.Reply(reply), cancellationToken).ConfigureAwait(false);
        return false;
    }

    /// <summary>Tells the client the target is connected; the connection is disposed when that cannot be said.</summary>
    private static async Task ReplySucceededAsync(Socket client, IAsyncDisposable connection, CancellationToken cancellationToken)
    {
        try
        {
            await client.SendAsync(Socks5Parser.Reply(Socks5Reply.Succeeded), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task<HostGuid?> LookupNameAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            return (await _records.LookupNameAsync(name, cancellationToken).ConfigureAwait(false))?.Guid;
        }
        catch (GnsException e)
        {
            Log.Refused(_logger, null, $"GNS lookup of '{name}' failed: {e.Message}");
            return null;
        }
    }

    /// <summary>
    /// IP address targets: a mobile stream when the address's owner proves a GUID and publishes a
    /// transport endpoint, else plain TCP (no identity, no mobility), relayed with the same copier.
    /// </summary>
    private async Task<bool> ConnectAddressAsync(Socket client, IPEndPoint target, byte[] early, CancellationToken handshake, CancellationToken stopping)
    {
        AddressConnection connection;
        try
        {
            connection = await _forwarder.ConnectAddressAsync(target, handshake).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            var reply = e.SocketErrorCode switch
            {
                SocketError.ConnectionRefused => Socks5Reply.ConnectionRefused,
                SocketError.NetworkUnreachable => Socks5Reply.NetworkUnreachable,
                _ => Socks5Reply.HostUnreachable,
            };
            return await RefuseAsync(client, $"{target}: {e.Message}", reply, handshake).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!stopping.IsCancellationRequested)
        {
            return await RefuseAsync(client, $"{target}: {e.Message}", Socks5Reply.HostUnreachable, CancellationToken.None).ConfigureAwait(false);
        }

        await ReplySucceededAsync(client, connection, handshake).ConfigureAwait(false);

        if (connection.Mobile is { } mobile)
        {
            Log.AddressMobile(_logger, client.RemoteEndPoint, target, mobile.RemoteGuid.ToString());
            _forwarder.StartRelay(mobile, client, early);
        }
        else
        {
            Log.AddressPlain(_logger, client.RemoteEndPoint, target, connection.PlainReason ?? "");
            _forwarder.StartPlainRelay(client, connection.PlainSocket!, early);
        }

        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(8201, LogLevel.Information, "SOCKS5 endpoint listening on {EndPoint}.")]
        public static partial void Listening(ILogger logger, IPEndPoint endPoint);

        [LoggerMessage(8202, LogLevel.Information, "Default SOCKS5 endpoint {EndPoint} not available, running without it: {Error}.")]
        public static partial void Unavailable(ILogger logger, IPEndPoint endPoint, string error);

        [LoggerMessage(8203, LogLevel.Debug, "SOCKS5 client {Client}: malformed handshake: {Error}.")]
        public static partial void Malformed(ILogger logger, EndPoint? client, string error);

        [LoggerMessage(8204, LogLevel.Debug, "SOCKS5 client {Client}: {Reason}.")]
        public static partial void Refused(ILogger logger, EndPoint? client, string reason);

        [LoggerMessage(8205, LogLevel.Debug, "SOCKS5 client {Client}: {Target} over the mobile transport to its verified owner {Guid}.")]
        public static partial void AddressMobile(ILogger logger, EndPoint? client, IPEndPoint target, string guid);

        [LoggerMessage(8206, LogLevel.Debug, "SOCKS5 client {Client}: {Target} over plain TCP: {Reason}.")]
        public static partial void AddressPlain(ILogger logger, EndPoint? client, IPEndPoint target, string reason);

        [LoggerMessage(8207, LogLevel.Debug, "SOCKS5 client {Client}: not admitted: {Reason}.")]
        public static partial void NotAdmitted(ILogger logger, EndPoint? client, string reason);
    }
}
