using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Protocol;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Transport;
using Mobility.Transport.Flows;
using Mobility.Transport.Internal;

namespace Mobility.Transport;

/// <summary>
/// Opens mobile connections from one local identity. Keeps the set of its live connections so
/// that one <see cref="NotifyLocalAddressChanged"/> moves them all (each reconnects on its own, concurrently).
/// Connecting to a plain address (mobile or plain TCP, decided by a verified GUID) is in <c>MobileConnector.Address.cs</c>.
/// </summary>
public sealed partial class MobileConnector
{
    private readonly HostKey _key;
    private readonly MobileConnectionOptions _options;
    private readonly ConcurrentDictionary<MobileConnection, byte> _connections = new();
    private readonly ConcurrentDictionary<UInt128, MobileConnection> _byToken = new(); // a call back names its connection by token
    private readonly ILogger _logger;
    private IPAddress? _localAddress;
    private IPAddress[]? _localAddresses; // the last NotifyLocalAddresses (null: never told)

    public MobileConnector(HostKey localKey, MobileConnectionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(localKey);
        _key = localKey;
        _options = options ?? new MobileConnectionOptions();
        _options.Validate();
        _localAddress = _options.LocalAddress;
        _logger = _options.LoggerFactory.CreateLogger<MobileConnector>();
    }

    public HostGuid LocalGuid => _key.Guid;

    /// <summary>Connections opened by this connector that have not ended.</summary>
    public IReadOnlyCollection<MobileConnection> Connections => [.. _connections.Keys];

    /// <summary>One-shot form: connect to <paramref name="server"/>, found through <paramref name="locator"/>.</summary>
    public static Task<MobileConnection> ConnectAsync(HostKey local, HostGuid server, IPeerLocator locator, MobileConnectionOptions? options, CancellationToken cancellationToken)
        => new MobileConnector(local, options).ConnectAsync(server, locator, cancellationToken);

    /// <summary>
    /// Connects to the host <paramref name="server"/>: its endpoints come from <paramref name="locator"/>,
    /// which is asked again (and listened to for pushes) whenever the path is lost.
    /// </summary>
    public async Task<MobileConnection> ConnectAsync(HostGuid server, IPeerLocator locator, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(locator);
        if (server.IsEmpty)
        {
            throw new ArgumentException("The server GUID is required.", nameof(server));
        }

        // Listening for pushes before the lookup: a record the peer publishes while we look it up is raced too.
        using var race = new HandshakeRace(this, server, locator, cancellationToken);
        LocatedEndpoints located;
        using (var locate = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            locate.CancelAfter(_options.LocateTimeout);
            try
            {
                var started = _options.TimeProvider.GetTimestamp();
                // A record the locator keeps current (watched) saves a lookup per connect; the race falls back to a fresh one.
                located = await locator.LocateForConnectAsync(server, locate.Token).ConfigureAwait(false);
                TransportLog.Located(_logger, server.ToShortString(), located.Endpoints.Count, _options.TimeProvider.GetElapsedTime(started).TotalMilliseconds);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new MobileHandshakeException($"Locating {server} timed out after {_options.LocateTimeout.TotalSeconds:0.###} s.");
            }
        }

        if (located.Endpoints.Count == 0)
        {
            if (!located.FromCache)
            {
                throw new MobileHandshakeException($"No mobile peer: {server} has no known transport endpoint (no record, or a record without one).");
            }

            // The kept record lists no endpoint: the GNS is asked before giving up.
            located = new LocatedEndpoints(await locator.LocateAsync(server, cancellationToken).ConfigureAwait(false), FromCache: false);
            if (located.Endpoints.Count == 0)
            {
                throw new MobileHandshakeException($"No mobile peer: {server} has no known transport endpoint (no record, or a record without one).");
            }
        }

        return await race.RunAsync(located.Endpoints, located.FromCache).ConfigureAwait(false);
    }

    /// <summary>
    /// Connects to an address. <paramref name="expectedServer"/> (when not empty) must be the GUID the
    /// server proves. Fails with <see cref="MobileHandshakeException"/> when the peer does not speak the
    /// protocol (wrong bytes, silence past the handshake timeout, or an immediate close), so the
    /// caller can fall back to plain TCP.
    /// </summary>
    public Task<MobileConnection> ConnectAsync(IPEndPoint endpoint, HostGuid expectedServer = default, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        return ConnectCoreAsync([endpoint], expectedServer, null, cancellationToken);
    }

    /// <summary>
    /// The local address changed: every live connection abandons its flow and resumes at once from
    /// <paramref name="newLocalAddress"/> (null: the OS chooses); new connections use it too.
    /// </summary>
    public void NotifyLocalAddressChanged(IPAddress? newLocalAddress = null)
    {
        _localAddress = newLocalAddress ?? _localAddress;
        foreach (var connection in _connections.Keys)
        {
            connection.NotifyLocalAddressChanged(newLocalAddress);
        }
    }

    /// <summary>
    /// The host's usable local addresses (the daemon calls this on every change): every live
    /// connection drops the paths whose address is gone (switching to a standby path at once when
    /// one is up, else resuming) and joins standby paths from addresses it does not use yet (see
    /// <see cref="MobileConnection.NotifyLocalAddresses"/>); connections opened later start with this list.
    /// </summary>
    public void NotifyLocalAddresses(IReadOnlyList<IPAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        IPAddress[] list = [.. addresses];
        Volatile.Write(ref _localAddresses, list);
        if (_localAddress is { } current && !list.Contains(current))
        {
            _localAddress = list.FirstOrDefault(a => a.AddressFamily == current.AddressFamily);
        }

        var told = 0;
        foreach (var connection in _connections.Keys)
        {
            connection.NotifyLocalAddresses(list);
            told++;
        }

        AddressesLog.Told(_logger, string.Join(' ', list), told);
    }

    /// <summary>The live connection of this connector to <paramref name="server"/> with <paramref name="token"/> (a call back names it), or null.</summary>
    internal MobileConnection? FindForCallBack(HostGuid server, UInt128 token)
        => _byToken.TryGetValue(token, out var connection) && connection.ServerGuid == server ? connection : null;

    private static partial class AddressesLog
    {
        // Its time in the log, against the address monitor's "Host addresses are now" (7001), is the daemon's hand-over.
        [LoggerMessage(9303, LogLevel.Debug, "Local addresses [{Addresses}] handed to {Count} connections")]
        public static partial void Told(ILogger logger, string addresses, int count);
    }

    private async Task<MobileConnection> HandshakeAsync(IPEndPoint endpoint, HostGuid expected, IPeerLocator? locator, IReadOnlyList<IPEndPoint> endpoints, Func<bool> claim, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(_options.HandshakeTimeout, _options.TimeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var ct = linked.Token;
        var local = _localAddress;
        using var ephemeral = new EphemeralKey();
        var token = TransportRandom.Token();
        var requested = _options.Encrypt ? HandshakeFlags.None : HandshakeFlags.AuthenticateOnly;
        var hello = new ClientHello(requested, _key.Guid, _key.PublicKeyBytes(), ephemeral.PublicKey, TransportRandom.Nonce(),
            token, expected, (uint)_options.ReceiveWindow);
        var helloBytes = hello.ToArray();
        byte[]? cookie = null;

        // At most two flows: a server under load answers the first hello with a cookie, and the same
        // hello goes again on a new flow behind a CookieEcho (all within the handshake timeout).
        while (true)
        {
            IFlow flow;
            try
            {
                flow = await _options.FlowFactory.ConnectAsync(endpoint, local, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new MobileHandshakeException($"Could not open a flow to {endpoint} within {_options.HandshakeTimeout.TotalSeconds:0.###} s.");
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
            {
                throw new MobileHandshakeException($"Could not open a flow to {endpoint}: {e.Message}", e);
            }

            var reader = FlowReadBuffers.CreateReader(flow.Stream, bulk: true);
            var handedOver = false;
            try
            {
                var first = cookie is null ? helloBytes : [.. new CookieEcho(cookie).ToArray(), .. helloBytes];
                HandshakeMessage answer;
                try
                {
                    await flow.Stream.WriteAsync(first, ct).ConfigureAwait(false);
                    answer = await HandshakeIo.ReadAsync(reader, ct).ConfigureAwait(false);
                }
                catch (MalformedMessageException e)
                {
                    throw new MobileHandshakeException($"The peer at {endpoint} does not speak the mobile transport protocol: {e.Message}", e);
                }
                catch (EndOfStreamException e)
                {
                    throw new MobileHandshakeException($"The peer at {endpoint} closed the flow during the handshake (not a mobile transport endpoint?): {e.Message}", e);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new MobileHandshakeException($"No handshake answer from {endpoint} within {_options.HandshakeTimeout.TotalSeconds:0.###} s (not a mobile transport endpoint?).");
                }
                catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
                {
                    throw new MobileHandshakeException($"The flow to {endpoint} failed during the handshake: {e.Message}", e);
                }

                if (answer is CookieReply reply)
                {
                    if (cookie is not null)
                    {
                        throw new MobileHandshakeException($"The server at {endpoint} is under load and sent a cookie again after the retry with one.");
                    }

                    cookie = reply.Cookie;
                    continue;
                }

                var connection = Finish(endpoint, expected, locator, endpoints, local, ephemeral, token, requested, helloBytes, answer, flow, reader, claim);
                handedOver = true;
                return connection;
            }
            finally
            {
                if (!handedOver)
                {
                    await reader.CompleteAsync().ConfigureAwait(false);
                    flow.Abort();
                }
            }
        }
    }

    /// <summary>
    /// Checks the server's answer to our hello and, when it proves the server and <paramref name="claim"/>
    /// says no other handshake of the connect has won, starts the connection on <paramref name="flow"/>.
    /// </summary>
    private MobileConnection Finish(IPEndPoint endpoint, HostGuid expected, IPeerLocator? locator, IReadOnlyList<IPEndPoint> endpoints, IPAddress? local,
        EphemeralKey ephemeral, UInt128 token, HandshakeFlags requested, byte[] helloBytes, HandshakeMessage answer, IFlow flow, PipeReader reader, Func<bool> claim)
    {
        var serverHello = answer switch
        {
            ServerHello sh => sh,
            HandshakeReject reject => throw new MobileHandshakeException($"The server at {endpoint} refused the connection: {reject.Reason}."),
            UnsupportedVersion v => throw new MobileHandshakeException($"The server at {endpoint} speaks protocol version {v.Version}, not {TransportConstants.Version}."),
            _ => throw new MobileHandshakeException($"The server at {endpoint} answered with {answer.Type}."),
        };

        if (HostGuid.FromPublicKey(serverHello.ServerPublicKey) != serverHello.ServerGuid)
        {
            throw new MobileHandshakeException($"The server at {endpoint} claims a GUID that is not the hash of its key.");
        }

        if (!expected.IsEmpty && serverHello.ServerGuid != expected)
        {
            throw new MobileHandshakeException($"The server at {endpoint} is {serverHello.ServerGuid}, not the expected {expected}.");
        }

        if (serverHello.Flags.HasFlag(HandshakeFlags.AuthenticateOnly) && !requested.HasFlag(HandshakeFlags.AuthenticateOnly))
        {
            throw new MobileHandshakeException($"The server at {endpoint} tried to turn encryption off.");
        }

        var serverHelloBytes = serverHello.ToArray();
        var transcript = HandshakeTranscript.Hash(helloBytes, serverHelloBytes.AsSpan(0, ServerHello.UnsignedSize));
        if (!Signatures.Verify(serverHello.ServerPublicKey, HandshakeTranscript.ServerSigned(transcript), serverHello.Signature))
        {
            throw new MobileHandshakeException($"The server at {endpoint} did not prove its identity (bad signature).");
        }

        SessionSecrets secrets;
        try
        {
            secrets = ephemeral.DeriveSecrets(serverHello.EphemeralPublicKey, transcript);
        }
        catch (MalformedMessageException e)
        {
            throw new MobileHandshakeException($"The server at {endpoint} sent an invalid key share.", e);
        }

        using (secrets)
        {
            // Another handshake of the same connect won the race: this one ends before its ClientFinish.
            if (!claim())
            {
                throw new OperationCanceledException($"A handshake to another endpoint of {serverHello.ServerGuid} finished first.");
            }

            var finish = new ClientFinish(_key.Sign(HandshakeTranscript.ClientSigned(transcript)));
            var encrypt = !serverHello.Flags.HasFlag(HandshakeFlags.AuthenticateOnly);
            var connection = new MobileConnection(true, _key.Guid, serverHello.ServerGuid, token, secrets, encrypt,
                serverHello.ReceiveWindow, _options, c =>
                {
                    _connections.TryRemove(c, out _);
                    _byToken.TryRemove(new KeyValuePair<UInt128, MobileConnection>(c.Token, c));
                });
            _connections.TryAdd(connection, 0);
            _byToken.TryAdd(connection.Token, connection);
            connection.StartClient(flow, reader, finish.ToArray(), _options, locator, endpoints.Contains(endpoint) ? [endpoint, .. endpoints.Where(e => !e.Equals(endpoint))] : [endpoint], local);
            if (Volatile.Read(ref _localAddresses) is { } addresses)
            {
                connection.NotifyLocalAddresses(addresses);
            }

            return connection;
        }
    }
}
