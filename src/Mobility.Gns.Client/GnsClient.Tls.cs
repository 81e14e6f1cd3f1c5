using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Mobility.Net.Tls;
using Mobility.Protocol;
using Mobility.Protocol.Gns;

namespace Mobility.Gns.Client;

/// <summary>
/// The TLS side (<see cref="GnsClientOptions.TlsServer"/>; docs/protocol.md, "GNS over TLS"): the same request datagrams,
/// length-prefixed, over one TLS connection, opened when a request needs it and opened again after it closed; replies
/// are matched to requests by id as datagrams are. The server's certificate must match a pin.
/// </summary>
public sealed partial class GnsClient
{
    private readonly SemaphoreSlim _tlsGate = new(1, 1);
    private TlsConnection? _tls;

    // Fallback: set when a reply came over TLS, cleared when one comes over UDP or the host's addresses change.
    private volatile bool _preferTls;

    /// <summary>Whether a request's attempt goes over TLS rather than UDP (<see cref="GnsClientOptions.TlsUse"/>).</summary>
    private bool OverTls(int attempt, IPEndPoint? to)
        => _options.TlsServer is not null && to is null && (_options.TlsUse == GnsTlsUse.Always || _preferTls || attempt > 0);

    /// <summary>Whether requests go over TLS now (always, or as the fallback after UDP went silent).</summary>
    public bool UsingTls => _options.TlsServer is not null && (_options.TlsUse == GnsTlsUse.Always || _preferTls);

    /// <summary>
    /// Sends one request over TLS, connecting first when there is no open connection. Never throws: a failure is logged and
    /// the connection dropped; the attempt's timeout, already running, paces the next try.
    /// </summary>
    private async Task SendOverTlsAsync(byte[] datagram)
    {
        var server = _options.TlsServer!;
        var frame = GnsStreamFrame.Frame(datagram);
        TlsConnection? connection = null;
        try
        {
            var token = _closed.Token;
            await _tlsGate.WaitAsync(token).ConfigureAwait(false);
            try
            {
                connection = _tls;
                if (connection is null || connection.Closed)
                {
                    connection = await ConnectTlsAsync(server, token).ConfigureAwait(false);
                    _tls = connection;
                }

                await connection.Stream.WriteAsync(frame, token).ConfigureAwait(false);
                await connection.Stream.FlushAsync(token).ConfigureAwait(false);
            }
            finally
            {
                _tlsGate.Release();
            }
        }
        catch (Exception e) when (e is IOException or SocketException or AuthenticationException or OperationCanceledException or ObjectDisposedException)
        {
            if (_disposed == 0)
            {
                GnsClientLog.TlsSendFailed(_logger, server, e.Message);
            }

            connection?.Abort();
        }
    }

    private async Task<TlsConnection> ConnectTlsAsync(IPEndPoint server, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.TlsConnectTimeout);
        var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        SslStream? tls = null;
        string? seen = null;
        try
        {
            await socket.ConnectAsync(server, timeout.Token).ConfigureAwait(false);
            tls = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
            await tls.AuthenticateAsClientAsync(CertificatePins.ClientOptions(server.Address.ToString(), _options.TlsPins, hash => seen = hash), timeout.Token)
                .ConfigureAwait(false);
        }
        catch (Exception e)
        {
            if (tls is not null)
            {
                await tls.DisposeAsync().ConfigureAwait(false);
            }

            socket.Dispose();
            if (e is AuthenticationException && seen is not null)
            {
                throw new AuthenticationException($"The GNS at tls://{server} presented a certificate with SHA-256 {seen}, which is not pinned.", e);
            }

            throw;
        }

        GnsClientLog.TlsConnected(_logger, server, (IPEndPoint?)socket.LocalEndPoint);
        var connection = new TlsConnection(tls);
        connection.Reader = ReadTlsAsync(connection, server);
        return connection;
    }

    /// <summary>Reads replies until the connection closes; a bad length prefix closes it (the stream cannot be resynchronised).</summary>
    private async Task ReadTlsAsync(TlsConnection connection, IPEndPoint server)
    {
        await Task.Yield();
        var prefix = new byte[GnsStreamFrame.PrefixSize];
        var message = new byte[GnsDatagram.MaxDatagramSize];
        var reason = "closed by the GNS";
        try
        {
            while (true)
            {
                await connection.Stream.ReadExactlyAsync(prefix).ConfigureAwait(false);
                var length = GnsStreamFrame.ReadLength(prefix);
                await connection.Stream.ReadExactlyAsync(message.AsMemory(0, length)).ConfigureAwait(false);
                OnReply(message.AsSpan(0, length), overTls: true);
            }
        }
        catch (Exception e) when (e is IOException or EndOfStreamException or MalformedMessageException or ObjectDisposedException or OperationCanceledException)
        {
            reason = e is EndOfStreamException ? reason : e.Message;
        }
        finally
        {
            connection.Abort();
            if (_disposed == 0)
            {
                GnsClientLog.TlsClosed(_logger, server, reason);
            }
        }
    }

    /// <summary>A reply came over <paramref name="overTls"/> or UDP: in fallback, which of the two later requests use first.</summary>
    private void RepliedOver(bool overTls)
    {
        if (_options.TlsServer is null || _options.TlsUse != GnsTlsUse.Fallback || _preferTls == overTls)
        {
            return;
        }

        _preferTls = overTls;
        GnsClientLog.TlsPreferred(_logger, overTls ? $"tls://{_options.TlsServer}" : Server.ToString());
    }

    /// <summary>The host's addresses changed: the TLS connection may be from an address that is gone, and UDP may work again.</summary>
    private void ResetTls()
    {
        _preferTls = false;
        _tls?.Abort();
    }

    private async Task StopTlsAsync()
    {
        if (_tls is { } connection)
        {
            connection.Abort();
            await connection.Reader.ConfigureAwait(false);
        }
    }

    private sealed class TlsConnection(SslStream stream)
    {
        private int _closed;

        public SslStream Stream => stream;

        public Task Reader { get; set; } = Task.CompletedTask;

        public bool Closed => _closed != 0;

        public void Abort()
        {
            if (Interlocked.Exchange(ref _closed, 1) == 0)
            {
                stream.Dispose();
            }
        }
    }
}
