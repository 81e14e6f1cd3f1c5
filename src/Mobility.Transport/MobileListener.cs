using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Mobility.Protocol;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Transport;
using Mobility.Transport.Flows;
using Mobility.Transport.Handshakes;
using Mobility.Transport.Internal;

namespace Mobility.Transport;

/// <summary>
/// Accepts mobile connections for one host identity, and the Resume flows of the connections it
/// already has. Can move to another local endpoint (<see cref="RebindAsync"/>) without losing them.
/// </summary>
public sealed partial class MobileListener : IAsyncDisposable
{
    private readonly HostKey _key;
    private readonly MobileListenerOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<(HostGuid Client, UInt128 Token), MobileConnection> _connections = new();
    private readonly ConcurrentDictionary<int, Task> _handshakes = new();
    private readonly Channel<MobileConnection> _accepted;
    private readonly CancellationTokenSource _stopping = new();
    private readonly object _gate = new();
    private Bound? _bound;
    private readonly HandshakeAdmission _admission;
    private readonly CookieSecrets _cookies;
    private int _handshakeIds;
    private MobileConnector? _callBackConnector; // whose connections this host's call backs resume (client side)
    private long _callBacksDropped;
    private long _reversesDropped;

    public MobileListener(HostKey key, MobileListenerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        _key = key;
        _options = options ?? new MobileListenerOptions();
        _options.Validate();
        _logger = _options.LoggerFactory.CreateLogger<MobileListener>();
        _admission = new HandshakeAdmission(_options.MaxPendingHandshakes + _options.MaxQueuedHandshakes, _options.MaxPendingHandshakes,
            _options.MaxPendingHandshakesPerSource, _options.CookieLoadThreshold, _options.HandshakeFinishGrace, _options.TimeProvider);
        _cookies = new CookieSecrets(_options.TimeProvider, _options.CookieSecretLifetime);
        _accepted = Channel.CreateBounded<MobileConnection>(new BoundedChannelOptions(_options.AcceptBacklog)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = false,
        });
    }

    public HostGuid Guid => _key.Guid;

    /// <summary>The endpoint currently listened on.</summary>
    public IPEndPoint LocalEndPoint => _bound?.Listener.LocalEndPoint ?? throw new InvalidOperationException("The listener is not started.");

    /// <summary>Live connections (accepted or waiting in the backlog).</summary>
    public IReadOnlyCollection<MobileConnection> Connections => [.. _connections.Values];

    /// <summary>ClientHellos holding a handshake slot.</summary>
    internal int PendingHandshakes => _admission.Slots;

    /// <summary>Flows accepted and not yet handed over or closed: before their first message, waiting for a slot, or holding one.</summary>
    internal int AdmittedFlows => _admission.Admitted;

    /// <summary>Flows accepted whose first message has not arrived.</summary>
    internal int UnidentifiedFlows => _admission.Unidentified;

    /// <summary>CookieReplies sent (hellos turned away statelessly under load).</summary>
    internal long CookiesSent => Interlocked.Read(ref _cookiesSent);

    private long _cookiesSent;

    public void Start(IPEndPoint endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        lock (_gate)
        {
            if (_bound is not null)
            {
                throw new InvalidOperationException("Already started; use RebindAsync to move.");
            }

            _bound = Bind(endpoint);
        }
    }

    /// <summary>
    /// Also accepts the flows of <paramref name="flows"/> (a relay registration, <c>Relay/RelayFlowListener</c>)
    /// beside the TCP endpoint, through the same admission, until <paramref name="flows"/> ends or this
    /// listener is disposed; then the task completes. The caller disposes <paramref name="flows"/>.
    /// </summary>
    public async Task ServeAsync(IFlowListener flows)
    {
        ArgumentNullException.ThrowIfNull(flows);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        await AcceptLoopAsync(new Bound(flows, stop)).ConfigureAwait(false);
    }

    /// <summary>
    /// Moves to <paramref name="endpoint"/>: listens there, stops listening on the old endpoint and,
    /// when the address changed and <paramref name="dropFlowsOnOldAddress"/>, drops the flows that ran
    /// over the old address (it is gone), so clients resume to the new one. Returns the new endpoint.
    /// </summary>
    public async Task<IPEndPoint> RebindAsync(IPEndPoint endpoint, bool dropFlowsOnOldAddress = true)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var fresh = Bind(endpoint);
        Bound? old;
        lock (_gate)
        {
            old = _bound;
            _bound = fresh;
        }

        if (old is not null)
        {
            await old.StopAsync().ConfigureAwait(false);
            var oldAddress = old.Listener.LocalEndPoint.Address;
            if (dropFlowsOnOldAddress && !oldAddress.Equals(fresh.Listener.LocalEndPoint.Address))
            {
                foreach (var connection in _connections.Values)
                {
                    connection.DropFlowOnLocalAddress(oldAddress, fresh.Listener.LocalEndPoint.Address);
                }
            }
        }

        return fresh.Listener.LocalEndPoint;
    }

    /// <summary>
    /// Client side of call backs (<see cref="MobileTransportOptions.CallBack"/>): a CallBack arriving here for one of
    /// <paramref name="connector"/>'s connections (same host key) is checked by that connection and, if it passes,
    /// the connection resumes on the flow. Without this (or with call backs off) every CallBack is dropped.
    /// </summary>
    public void AcceptCallBacksFor(MobileConnector connector)
    {
        ArgumentNullException.ThrowIfNull(connector);
        if (connector.LocalGuid != _key.Guid)
        {
            throw new ArgumentException("The connector must have this listener's identity.", nameof(connector));
        }

        Volatile.Write(ref _callBackConnector, connector);
    }

    /// <summary>
    /// Server: the host's usable addresses (the daemon calls this on every change, whatever the listener is bound
    /// to): a connection whose path ran over an address that is gone drops it and, with call backs on, calls its
    /// client back from one of these.
    /// </summary>
    public void NotifyLocalAddresses(IReadOnlyList<IPAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        IPAddress[] list = [.. addresses];
        foreach (var connection in _connections.Values)
        {
            connection.NotifyLocalAddresses(list);
        }
    }

    /// <summary>CallBacks this listener dropped: unknown connection, no connector, or a check failed.</summary>
    internal long CallBacksDropped => Interlocked.Read(ref _callBacksDropped);

    public async ValueTask<MobileConnection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await _accepted.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException e)
        {
            throw new ObjectDisposedException(nameof(MobileListener), e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        Bound? bound;
        lock (_gate)
        {
            bound = _bound;
            _bound = null;
        }

        if (bound is not null)
        {
            await bound.StopAsync().ConfigureAwait(false);
        }

        await Task.WhenAll(_handshakes.Values).ConfigureAwait(false);
        _accepted.Writer.TryComplete();
        while (_accepted.Reader.TryRead(out var unclaimed))
        {
            await unclaimed.DisposeAsync().ConfigureAwait(false);
        }
    }

    private Bound Bind(IPEndPoint endpoint)
    {
        var listener = _options.ListenerFactory.Listen(endpoint, _options.ListenBacklog, _options.FastOpen ? _options.FastOpenQueue : 0);
        var bound = new Bound(listener, CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token));
        // Two accept loops: under a flood the kernel's accept queue must drain faster than it fills, or it
        // drops SYNs (a genuine client then waits for its 1 s SYN retransmission).
        bound.Loop = Task.WhenAll(Task.Run(() => AcceptLoopAsync(bound)), Task.Run(() => AcceptLoopAsync(bound)));
        TransportLog.Listening(_logger, listener.LocalEndPoint);
        if (_options.FastOpen)
        {
            FastOpenLog.Listening(_logger, listener.LocalEndPoint, listener.FastOpen
                ? "on (Resumes in a SYN are taken)"
                : $"off (net.ipv4.tcp_fastopen needs the server bit 0x{Flows.TcpFastOpen.ServerBit:x}, e.g. 3; resumes take one more half round trip)");
        }

        return bound;
    }

    private async Task AcceptLoopAsync(Bound bound)
    {
        var ct = bound.Cts.Token;
        while (!ct.IsCancellationRequested)
        {
            IFlow flow;
            try
            {
                flow = await bound.Listener.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
            {
                TransportLog.AcceptFailed(_logger, bound.Listener.LocalEndPoint, e.Message);
                continue;
            }

            Admit(flow);
        }
    }

    /// <summary>
    /// An accepted flow, or one a connection's simultaneous open connected (<see cref="PunchResponder"/>):
    /// admitted like any (per-source slots), then its first message decides (a punched flow's is the
    /// client's Join, checked as every Join).
    /// </summary>
    private void Admit(IFlow flow)
    {
        if (_stopping.IsCancellationRequested)
        {
            flow.Abort();
            return;
        }

        if (_admission.TryAdmit(SourcePrefix.Of(flow.RemoteEndPoint?.Address)) is not { } ticket)
        {
            TransportLog.FlowRefused(_logger, flow.RemoteEndPoint, "too many handshakes, all past their first message");
            flow.Abort();
            return;
        }

        var id = Interlocked.Increment(ref _handshakeIds);
        var acceptedAt = _options.TimeProvider.GetTimestamp();
        var task = Task.Run(async () =>
        {
            try
            {
                await HandleFlowAsync(flow, ticket, acceptedAt).ConfigureAwait(false);
            }
            finally
            {
                _admission.Release(ticket);
                _handshakes.TryRemove(id, out _);
            }
        });
        _handshakes.TryAdd(id, task);
        if (task.IsCompleted)
        {
            _handshakes.TryRemove(id, out _);
        }
    }
    /// <param name="acceptedAt">When the flow was accepted (the listener's clock), for the Resume's timing (event 9302).</param>
    private async Task HandleFlowAsync(IFlow flow, HandshakeAdmission.Ticket ticket, long acceptedAt)
    {
        // Reads of 64 KiB until the peer is authenticated (a half-done handshake holds no more), of up to 256 KiB after.
        var buffers = new FlowReadBuffers(bulk: false);
        var reader = buffers.CreateReader(flow.Stream);
        var handedOver = false;
        using var timeout = new CancellationTokenSource(_options.HandshakeTimeout, _options.TimeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, _stopping.Token, ticket.CutToken);
        var ct = linked.Token;
        var stage = "timeout before the first message";
        try
        {
            // The handshake timeout runs from the accept, whatever the flow waits for.
            var message = await HandshakeIo.ReadAsync(reader, ct).ConfigureAwait(false);
            if (message is not (ResumeRequest or CallBackRequest or ReverseRequest) && flow.IsHandshakePending)
            {
                // Data in a SYN without a cookie comes from an address nobody has proven: only a
                // Resume, a CallBack or a Reverse (MAC and counter checked, cheap) is acted on before the TCP
                // handshake completes; our peers never send anything else that way.
                FastOpenLog.Dropped(_logger, flow.RemoteEndPoint, message.Type.ToString());
                return;
            }

            if (message is not (ResumeRequest or CallBackRequest or ReverseRequest))
            {
                // A Resume (or CallBack, or Reverse) stays evictable until it is accepted: a forged one only costs its refusal.
                _admission.Identified(ticket);
            }

            stage = "timeout";
            byte[]? cookie = null;
            if (message is CookieEcho echo)
            {
                cookie = echo.Cookie;
                message = await HandshakeIo.ReadAsync(reader, ct).ConfigureAwait(false);
                if (message is not ClientHello)
                {
                    TransportLog.HandshakeDropped(_logger, flow.RemoteEndPoint, $"{message.Type} after a cookie echo");
                    return;
                }
            }

            switch (message)
            {
                case ClientHello hello:
                    if (!await AdmitHelloAsync(flow, ticket, hello, cookie, ct).ConfigureAwait(false))
                    {
                        break;
                    }

                    stage = "timeout in the handshake";
                    handedOver = await AcceptHelloAsync(flow, reader, hello, ticket, ct).ConfigureAwait(false);
                    break;
                case ResumeRequest resume:
                    // Served ahead of new handshakes: a resume takes no slot and waits for nothing.
                    handedOver = await AcceptResumeAsync(flow, reader, resume, ticket, acceptedAt).ConfigureAwait(false);
                    break;
                case CallBackRequest callBack:
                    handedOver = await AcceptCallBackAsync(flow, reader, callBack, ticket).ConfigureAwait(false);
                    break;
                case ReverseRequest reverse:
                    handedOver = await AcceptReverseAsync(flow, reader, reverse, ticket).ConfigureAwait(false);
                    break;
                case UnsupportedVersion:
                    await RefuseAsync(flow, reader, RejectReason.UnsupportedVersion, "unsupported version").ConfigureAwait(false);
                    break;
                default:
                    TransportLog.HandshakeDropped(_logger, flow.RemoteEndPoint, $"unexpected {message.Type} as first message");
                    break;
            }
        }
        catch (MalformedMessageException e)
        {
            TransportLog.HandshakeDropped(_logger, flow.RemoteEndPoint, e.Message);
        }
        catch (OperationCanceledException)
        {
            TransportLog.HandshakeDropped(_logger, flow.RemoteEndPoint, ticket.CutToken.IsCancellationRequested
                ? "cut to make room (idle at capacity, or slow to finish while others waited)"
                : stage);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            TransportLog.HandshakeDropped(_logger, flow.RemoteEndPoint, e.Message);
        }
        finally
        {
            if (handedOver)
            {
                // The connection reads this flow from now on: an authenticated peer, bulk reads.
                buffers.StartBulk();
            }
            else
            {
                await reader.CompleteAsync().ConfigureAwait(false);
                flow.Abort();
            }

            _admission.Release(ticket);
        }
    }

    /// <summary>
    /// Under load, a hello without a valid cookie gets a CookieReply and its flow is closed (false);
    /// otherwise the hello waits for a slot (true once it holds one).
    /// </summary>
    private async Task<bool> AdmitHelloAsync(IFlow flow, HandshakeAdmission.Ticket ticket, ClientHello hello, byte[]? cookie, CancellationToken ct)
    {
        if (_admission.UnderLoad)
        {
            var source = SourcePrefix.Of(flow.RemoteEndPoint?.Address);
            var helloBytes = hello.ToArray();
            if (cookie is null || !_cookies.Verify(source, helloBytes, cookie))
            {
                _admission.Release(ticket);
                Interlocked.Increment(ref _cookiesSent);
                TransportLog.FlowRefused(_logger, flow.RemoteEndPoint, cookie is null ? "under load: cookie sent" : "under load: stale or wrong cookie, a new one sent");
                await flow.Stream.WriteAsync(new CookieReply(_cookies.Issue(source, helloBytes)).ToArray(), ct).ConfigureAwait(false);
                // A graceful close, so the reply is read rather than lost to a reset; nothing of the flow is kept.
                await flow.DisposeAsync().ConfigureAwait(false);
                return false;
            }
        }

        await _admission.AcquireSlotAsync(ticket, ct).ConfigureAwait(false);
        return true;
    }

    private async Task RefuseAsync(IFlow flow, PipeReader reader, RejectReason reason, string why)
    {
        TransportLog.FlowRefused(_logger, flow.RemoteEndPoint, why);
        await HandshakeIo.RejectAsync(flow, reader, reason, _options.TimeProvider).ConfigureAwait(false);
    }

    private async Task<bool> AcceptHelloAsync(IFlow flow, PipeReader reader, ClientHello hello, HandshakeAdmission.Ticket ticket, CancellationToken ct)
    {
        if (HostGuid.FromPublicKey(hello.ClientPublicKey) != hello.ClientGuid)
        {
            await RefuseAsync(flow, reader, RejectReason.BadHandshake, "client GUID is not the hash of its key").ConfigureAwait(false);
            return false;
        }

        if (_options.AuthorizeClient is { } authorize && !authorize(hello.ClientGuid))
        {
            await RefuseAsync(flow, reader, RejectReason.Unauthorized, $"client {hello.ClientGuid} not authorized").ConfigureAwait(false);
            return false;
        }

        var id = (hello.ClientGuid, hello.Token);
        if (_connections.ContainsKey(id))
        {
            await RefuseAsync(flow, reader, RejectReason.DuplicateToken, "token already in use").ConfigureAwait(false);
            return false;
        }

        var authenticateOnly = hello.Flags.HasFlag(HandshakeFlags.AuthenticateOnly) && _options.AllowAuthenticateOnly;
        var flags = authenticateOnly ? HandshakeFlags.AuthenticateOnly : HandshakeFlags.None;
        using var ephemeral = new EphemeralKey();
        var unsigned = new ServerHello(flags, _key.Guid, _key.PublicKeyBytes(), ephemeral.PublicKey, TransportRandom.Nonce(),
            (uint)_options.ReceiveWindow, new byte[HostKey.SignatureSize]);
        var transcript = HandshakeTranscript.Hash(hello.ToArray(), unsigned.ToArray().AsSpan(0, ServerHello.UnsignedSize));
        var serverHello = unsigned.WithSignature(_key.Sign(HandshakeTranscript.ServerSigned(transcript)));
        using var secrets = ephemeral.DeriveSecrets(hello.EphemeralPublicKey, transcript);
        await flow.Stream.WriteAsync(serverHello.ToArray(), ct).ConfigureAwait(false);
        _admission.AwaitingFinish(ticket);

        var finish = await HandshakeIo.ReadAsync(reader, ct).ConfigureAwait(false);
        if (finish is not ClientFinish clientFinish
            || !Signatures.Verify(hello.ClientPublicKey, HandshakeTranscript.ClientSigned(transcript), clientFinish.Signature))
        {
            TransportLog.HandshakeDropped(_logger, flow.RemoteEndPoint, "client did not prove its identity");
            return false;
        }

        var connection = new MobileConnection(false, _key.Guid, hello.ClientGuid, hello.Token, secrets, !authenticateOnly,
            hello.ReceiveWindow, _options, c => _connections.TryRemove(new KeyValuePair<(HostGuid, UInt128), MobileConnection>((c.ClientGuid, c.Token), c)))
        {
            Punches = _options.DirectPaths && _options.PunchFlowFactory.CanPunch ? new PunchResponder(_options.PunchFlowFactory, Admit, _options.PunchTargetLocator) : null,
            CallBacks = (_options.CallBack || (_options.ConnectionReversal && _options.DirectPaths)) && _options.PunchTargetLocator is { } targets
                ? new CallBackDialer(_options.PunchFlowFactory, () => _bound?.Listener.LocalEndPoint.Port ?? 0, targets, BoundAddress)
                : null,
        };
        if (!_connections.TryAdd(id, connection))
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            await RefuseAsync(flow, reader, RejectReason.DuplicateToken, "token already in use").ConfigureAwait(false);
            return false;
        }

        connection.StartServer(flow, reader);
        if (!_accepted.Writer.TryWrite(connection))
        {
            TransportLog.FlowRefused(_logger, flow.RemoteEndPoint, "accept backlog full");
            await connection.DisposeAsync().ConfigureAwait(false);
        }

        return true;
    }

    private async Task<bool> AcceptResumeAsync(IFlow flow, PipeReader reader, ResumeRequest resume, HandshakeAdmission.Ticket ticket, long acceptedAt)
    {
        var time = _options.TimeProvider;
        var readAt = time.GetTimestamp();
        if (resume.ServerGuid != _key.Guid || !_connections.TryGetValue((resume.ClientGuid, resume.Token), out var connection))
        {
            await RefuseAsync(flow, reader, RejectReason.UnknownConnection, "resume for an unknown connection").ConfigureAwait(false);
            return false;
        }

        var refused = await connection.TryAcceptResumeAsync(flow, reader, resume).ConfigureAwait(false);
        ResumeTimingLog.Answered(_logger, resume.Counter, flow.RemoteEndPoint, time.GetElapsedTime(acceptedAt, readAt).TotalMilliseconds,
            time.GetElapsedTime(readAt).TotalMilliseconds, refused?.ToString() ?? "accepted");
        if (refused is { } reason)
        {
            await RefuseAsync(flow, reader, reason, "resume refused").ConfigureAwait(false);
            return false;
        }

        _admission.Release(ticket);
        return true;
    }

    /// <summary>
    /// Client side: a CallBack as a flow's first message. Acted on only when it names a live connection of the
    /// connector (<see cref="AcceptCallBacksFor"/>) and that connection finds its MAC and counter good; then the
    /// connection resumes on this flow (true). Anything else is dropped: the flow is closed at once, nothing is
    /// kept, nothing is sent on it (logged at Debug).
    /// </summary>
    private async Task<bool> AcceptCallBackAsync(IFlow flow, PipeReader reader, CallBackRequest callBack, HandshakeAdmission.Ticket ticket)
    {
        var connection = _options.CallBack && callBack.ClientGuid == _key.Guid ? Volatile.Read(ref _callBackConnector)?.FindForCallBack(callBack.ServerGuid, callBack.Token) : null;
        if (connection is null || !await connection.TryAcceptCallBackAsync(flow, reader, callBack).ConfigureAwait(false))
        {
            Interlocked.Increment(ref _callBacksDropped);
            TransportLog.HandshakeDropped(_logger, flow.RemoteEndPoint, connection is null ? "call back for no connection of this host" : "call back failed its checks");
            return false;
        }

        _admission.Release(ticket);
        return true;
    }

    /// <summary>The address the listener is bound to, null when it listens on all of them (a dial's source is then the route's).</summary>
    private IPAddress? BoundAddress()
        => _bound?.Listener.LocalEndPoint.Address is { } address && !address.Equals(IPAddress.Any) && !address.Equals(IPAddress.IPv6Any) ? address : null;

    /// <summary>
    /// Client side: a Reverse as a flow's first message (connection reversal). Acted on only when it names a live
    /// connection of the connector (<see cref="AcceptCallBacksFor"/>) and that connection finds its MAC and counter good
    /// and runs through a relay; then the connection joins on this flow (true). Anything else is dropped: the flow is
    /// closed at once, nothing is kept, nothing is sent on it (logged at Debug).
    /// </summary>
    private async Task<bool> AcceptReverseAsync(IFlow flow, PipeReader reader, ReverseRequest reverse, HandshakeAdmission.Ticket ticket)
    {
        var connection = _options.ConnectionReversal && reverse.ClientGuid == _key.Guid ? Volatile.Read(ref _callBackConnector)?.FindForCallBack(reverse.ServerGuid, reverse.Token) : null;
        if (connection is null || !await connection.TryAcceptReverseAsync(flow, reader, reverse).ConfigureAwait(false))
        {
            Interlocked.Increment(ref _reversesDropped);
            TransportLog.HandshakeDropped(_logger, flow.RemoteEndPoint, connection is null ? "reversal for no connection of this host" : "reversal failed its checks");
            return false;
        }

        _admission.Release(ticket);
        return true;
    }

    /// <summary>Reverses this listener dropped: unknown connection, no connector, or a check failed.</summary>
    internal long ReversesDropped => Interlocked.Read(ref _reversesDropped);

    private static partial class ResumeTimingLog
    {
        [LoggerMessage(9302, LogLevel.Debug, "Resume {Counter} from {Remote}: read {ReadMs:0.0} ms after the flow was accepted, {Verdict} by the connection {AnswerMs:0.0} ms after that")]
        public static partial void Answered(ILogger logger, ulong counter, IPEndPoint? remote, double readMs, double answerMs, string verdict);
    }

    private static partial class FastOpenLog
    {
        [LoggerMessage(9400, LogLevel.Information, "Mobile listener on {Endpoint}: TCP Fast Open {State}")]
        public static partial void Listening(ILogger logger, IPEndPoint endpoint, string state);

        [LoggerMessage(9401, LogLevel.Debug, "Flow from {Remote} dropped: {Type} in a SYN (only a Resume is taken before the TCP handshake completes)")]
        public static partial void Dropped(ILogger logger, IPEndPoint? remote, string type);
    }

    private sealed class Bound(IFlowListener listener, CancellationTokenSource cts)
    {
        public IFlowListener Listener { get; } = listener;

        public CancellationTokenSource Cts { get; } = cts;

        public Task Loop { get; set; } = Task.CompletedTask;

        public async Task StopAsync()
        {
            await Cts.CancelAsync().ConfigureAwait(false);
            await Listener.DisposeAsync().ConfigureAwait(false);
            await Loop.ConfigureAwait(false);
            Cts.Dispose();
        }
    }
}
