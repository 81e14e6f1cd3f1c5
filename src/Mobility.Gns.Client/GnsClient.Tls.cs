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

    // Why the last TLS connect or send failed (null after a connect succeeded): named when a request finds the GNS unreachable.
    private volatile string? _tlsFailure;

    // Fallback: set when a reply came over TLS, cleared when one comes over UDP or the host's addresses change.
    private volatile bool _preferTls;

    /// <summary>Whether a request's attempt goes over TLS rather than UDP (<see cref="GnsClientOptions.TlsUse"/>).</summary>
    private bool OverTls(int attempt, IPEndPoint? to)
        => _options.TlsServer is not null && to is null && (_options.TlsUse == GnsTlsUse.Always || _preferTls || attempt > 0);

    /// <summary>Whether requests go over TLS now (always, or as the fallback after UDP went silent).</summary>
    public bool UsingTls => _options.TlsServer is not null && (_options.TlsUse == GnsTlsUse.Always || _preferTls);

    /// <summary>
    /// Opens the TLS connection when there is none (within <see cref="GnsClientOptions.TlsConnectTimeout"/>, before an attempt's
    /// timeout starts: a slow handshake is not a lost reply). False when that failed (logged, and named by the request's error).
    /// </summary>
    private async Task<bool> EnsureTlsAsync(CancellationToken cancellationToken)
    {
        var server = _options.TlsServer!;
        try
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
            await _tlsGate.WaitAsync(linked.Token).ConfigureAwait(false);
            try
            {
                if (_tls is null || _tls.Closed)
                {
                    _tls = await ConnectTlsAsync(server, linked.Token).ConfigureAwait(false);
                }

                return true;
            }
            finally
            {
                _tlsGate.Release();
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e) when (e is IOException or SocketException or AuthenticationException or OperationCanceledException or ObjectDisposedException)
        {
            if (_disposed == 0)
            {
                _tlsFailure = e.Message;
                GnsClientLog.TlsSendFailed(_logger, server, e.Message);
            }

            return false;
        }
    }

    /// <summary>
    /// Sends one request on the TLS connection (<see cref="EnsureTlsAsync"/> opened it). Never throws: a failure is logged
    /// and the connection dropped; the attempt's timeout, already running, paces the next try, which connects again.
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
                connection = _tls ?? throw new IOException("no TLS connection");
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
                _tlsFailure = e.Message;
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

        _tlsFailure = null;
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

    /// <summary>Why TLS failed last, for an "unreachable" error (empty when it did not).</summary>
    private string TlsFailureSuffix()
        => _options.TlsServer is { } tls && _tlsFailure is { } failure ? $" (TLS to {tls}: {failure})" : "";

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
