using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.Challenges;
using Mobility.Daemon.Identity;
using Mobility.Net.EndPoints;
using Mobility.Net.RateLimiting;
using Mobility.Net.Threading;
using Mobility.Protocol;
using Mobility.Protocol.Challenge;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Control;

/// <summary>
/// The UDP control endpoint: answers challenges for this host's GUID (verify_self) and hands
/// challenge responses to <see cref="PendingChallenges"/>. Binds <see cref="MobilitydOptions.Control"/>,
/// or <see cref="MobilitydOptions.ControlPort"/> on each fixed host address (re-binding when they
/// change), or on 0.0.0.0 and [::]. One receive loop per socket. Everything a peer sends that is not
/// a good request or an awaited response is dropped and logged at Debug only; requests are rate
/// limited per source IP and a reply is never larger than 3x its request.
/// </summary>
public sealed partial class ControlEndpoint : BackgroundService
{
    /// <summary>Receive buffer: larger than any datagram we accept, so an oversized one is seen whole and dropped.</summary>
    private const int ReceiveBufferSize = 4096;

    private readonly MobilitydOptions _options;
    private readonly DaemonIdentity _identity;
    private readonly AddressMonitor _addresses;
    private readonly PendingChallenges _pending;
    private readonly SourceRateLimiter _limiter;
    private readonly TimeProvider _time;
    private readonly ILogger<ControlEndpoint> _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<IPEndPoint, Binding> _bindings = [];
    private readonly AsyncAutoResetSignal _reconcile = new();
    private readonly bool _followAddresses;
    private CancellationToken _stopping;
    private long _answered;
    private long _sent;
    private long _dropped;

    public ControlEndpoint(IOptions<MobilitydOptions> options, DaemonIdentity identity, AddressMonitor addresses,
        PendingChallenges pending, TimeProvider time, ILogger<ControlEndpoint> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _identity = identity;
        _addresses = addresses;
        _pending = pending;
        _time = time;
        _logger = logger;
        _limiter = new SourceRateLimiter(_options.ControlLimits.ToRateLimits(), time);
        _followAddresses = _options.Control.Length == 0;
    }

    /// <summary>The bound endpoints (real ports).</summary>
    public ImmutableArray<IPEndPoint> LocalEndPoints
    {
        get
        {
            lock (_gate)
            {
                return [.. _bindings.Values.Select(b => b.LocalEndPoint)];
            }
        }
    }

    /// <summary>Challenges answered since start.</summary>
    public long Answered => Interlocked.Read(ref _answered);

    /// <summary>Challenge requests sent since start (a challenge that waited past an attempt's timeout is sent again).</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Datagrams dropped since start (malformed, not for us, rate limited, unsolicited responses).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Bind before the host reports ready, so the ready line carries real ports.
        Reconcile(initial: true);
        return base.StartAsync(cancellationToken);
    }

    /// <summary>Sends a challenge request to <paramref name="target"/> from a socket of its family; false when there is none.</summary>
    public async ValueTask<bool> SendAsync(ReadOnlyMemory<byte> datagram, IPEndPoint target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var family = target.Address.IsIPv4MappedToIPv6 ? AddressFamily.InterNetwork : target.AddressFamily;
        var destination = target.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(target.Address.MapToIPv4(), target.Port) : target;
        Binding? binding;
        lock (_gate)
        {
            binding = _bindings.Values.Where(b => b.LocalEndPoint.AddressFamily == family)
                .OrderBy(b => IsWildcard(b.LocalEndPoint.Address) ? 0 : 1)
                .FirstOrDefault();
        }

        if (binding is null)
        {
            return false;
        }

        await binding.Socket.SendToAsync(datagram, SocketFlags.None, destination, cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref _sent);
        return true;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        lock (_gate)
        {
            foreach (var binding in _bindings.Values)
            {
                binding.Start(this);
            }
        }

        using var subscription = _followAddresses ? _addresses.Subscribe(_reconcile.Set) : null;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await _reconcile.WaitAsync(Timeout.InfiniteTimeSpan, _time, stoppingToken).ConfigureAwait(false);
                Reconcile(initial: false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            Binding[] all;
            lock (_gate)
            {
                all = [.. _bindings.Values];
                _bindings.Clear();
            }

            foreach (var binding in all)
            {
                binding.Socket.Dispose();
            }

            await Task.WhenAll(all.Select(b => b.Loop)).ConfigureAwait(false);
        }
    }

    private IEnumerable<IPEndPoint> Wanted()
    {
        if (_options.Control.Length > 0)
        {
            return _options.ParsedControl();
        }

        var current = _addresses.Current;
        if (current.Fixed)
        {
            return current.Addresses.Select(a => new IPEndPoint(a, _options.ControlPort));
        }

        var wildcard = new List<IPEndPoint> { new(IPAddress.Any, _options.ControlPort) };
        if (Socket.OSSupportsIPv6)
        {
            wildcard.Add(new IPEndPoint(IPAddress.IPv6Any, _options.ControlPort));
        }

        return wildcard;
    }

    private void Reconcile(bool initial)
    {
        var wanted = Wanted().ToHashSet();
        lock (_gate)
        {
            foreach (var (requested, binding) in _bindings.ToArray())
            {
                if (!wanted.Contains(requested))
                {
                    _bindings.Remove(requested);
                    binding.Socket.Dispose();
                    Log.Unbound(_logger, binding.LocalEndPoint);
                }
            }

            foreach (var requested in wanted)
            {
                if (_bindings.ContainsKey(requested))
                {
                    continue;
                }

                Socket socket;
                try
                {
                    socket = Bind(requested);
                }
                catch (ListenerBindException e) when (!initial || _options.Control.Length == 0)
                {
                    // A followed address that is not (or no longer) on the host, or an IPv6 wildcard without IPv6.
                    Log.BindFailed(_logger, requested, e.SocketErrorCode.ToString());
                    continue;
                }

                // A configured endpoint that cannot be bound at start is thrown: the host reports it as its one start-up line.
                var binding = new Binding(socket, (IPEndPoint)socket.LocalEndPoint!);
                _bindings[requested] = binding;
                Log.Bound(_logger, binding.LocalEndPoint);
                if (!initial)
                {
                    binding.Start(this);
                }
            }
        }
    }

    /// <summary>
    /// One socket per family and address, IPv6 ones IPv6-only even on [::] (an IPv4 socket beside it
    /// serves IPv4): the answer must leave from the address the challenge reached, which packet
    /// information gives per socket.
    /// </summary>
    private Socket Bind(IPEndPoint endPoint)
        => ListenSockets.BindUdp(endPoint, $"control endpoint, {(_options.Control.Length > 0 ? MobilitydOptions.ControlOption : "ControlPort")}", static socket =>
        {
            if (socket.AddressFamily == AddressFamily.InterNetworkV6)
            {
                socket.DualMode = false;
                socket.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.PacketInformation, true);
            }
            else
            {
                socket.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.PacketInformation, true);
            }
        });

    private async Task ReceiveLoopAsync(Binding binding)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(ReceiveBufferSize, pinned: true);
        var any = binding.LocalEndPoint.AddressFamily == AddressFamily.InterNetworkV6
            ? new IPEndPoint(IPAddress.IPv6Any, 0)
            : new IPEndPoint(IPAddress.Any, 0);
        while (!_stopping.IsCancellationRequested)
        {
            SocketReceiveMessageFromResult result;
            try
            {
                result = await binding.Socket.ReceiveMessageFromAsync(buffer, SocketFlags.None, any, _stopping).ConfigureAwait(false);
            }
            catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.OperationAborted or SocketError.Interrupted or SocketError.Shutdown)
            {
                return;
            }
            catch (SocketException e)
            {
                // ICMP errors and similar, caused by peers: keep serving.
                Log.ReceiveError(_logger, binding.LocalEndPoint, e.SocketErrorCode.ToString());
                continue;
            }

            var remote = (IPEndPoint)result.RemoteEndPoint;
            var local = IsWildcard(binding.LocalEndPoint.Address) && result.PacketInformation.Address is { } destination
                ? new IPEndPoint(Locator.Normalize(destination), binding.LocalEndPoint.Port)
                : binding.LocalEndPoint;
            try
            {
                await HandleAsync(binding, buffer.AsMemory(0, result.ReceivedBytes), (result.SocketFlags & SocketFlags.Truncated) != 0, remote, local)
                    .ConfigureAwait(false);
            }
            catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException)
            {
                return;
            }
            catch (SocketException e)
            {
                Log.SendError(_logger, remote, e.SocketErrorCode.ToString());
            }
        }
    }

    private async ValueTask HandleAsync(Binding binding, ReadOnlyMemory<byte> datagram, bool truncated, IPEndPoint remote, IPEndPoint local)
    {
        if (truncated || datagram.Length > ChallengeDatagram.MaxDatagramSize)
        {
            Drop(remote, "oversized datagram");
            return;
        }

        if (!ChallengeDatagram.TryReadHeader(datagram.Span, out _, out var type))
        {
            Drop(remote, "not a challenge datagram");
            return;
        }

        switch (type)
        {
            case ChallengeMessageType.Request:
                await AnswerAsync(binding, datagram, remote, local).ConfigureAwait(false);
                break;
            case ChallengeMessageType.Response:
                Accept(datagram.Span, remote);
                break;
            default:
                Drop(remote, $"unknown message type 0x{(byte)type:x2}");
                break;
        }
    }

    private async ValueTask AnswerAsync(Binding binding, ReadOnlyMemory<byte> datagram, IPEndPoint remote, IPEndPoint local)
    {
        // Rate-limit before any parsing or signing: signatures are the expensive part.
        if (!_limiter.TryAcquire(Locator.Normalize(remote.Address)))
        {
            Drop(remote, "rate limited");
            return;
        }

        ChallengeRequest request;
        try
        {
            request = ChallengeDatagram.ParseRequest(datagram.Span);
        }
        catch (MalformedMessageException e)
        {
            Drop(remote, e.Message);
            return;
        }

        if (request.Expected != _identity.Guid)
        {
            // verify_self answers only for its own GUID; silence tells an impostor's victim nothing it can use.
            Drop(remote, $"challenge for {request.Expected.ToShortString()}, not for us");
            return;
        }

        var reply = ChallengeDatagram.WriteResponse(ChallengeResponse.Create(_identity.Key, request, local));
        if (reply.Length > ChallengeDatagram.AmplificationFactor * datagram.Length)
        {
            Drop(remote, "reply would exceed 3x the request");
            return;
        }

        // Counted before the send: a challenger that has the reply must find it counted.
        Interlocked.Increment(ref _answered);
        await binding.Socket.SendToAsync(reply, SocketFlags.None, remote, _stopping).ConfigureAwait(false);
        Log.Answered(_logger, remote, request.Challenger.ToShortString());
    }

    private void Accept(ReadOnlySpan<byte> datagram, IPEndPoint remote)
    {
        ChallengeResponse response;
        try
        {
            response = ChallengeDatagram.ParseResponse(datagram);
        }
        catch (MalformedMessageException e)
        {
            Drop(remote, e.Message);
            return;
        }

        switch (_pending.Complete(response, remote, out var rejection))
        {
            case ResponseDisposition.Accepted:
                Log.ResponseAccepted(_logger, remote, response.Responder.ToShortString());
                break;
            case ResponseDisposition.NotOutstanding:
                Drop(remote, "response to no outstanding challenge (never sent, replayed or late)");
                break;
            default:
                Drop(remote, $"response refused: {rejection}");
                break;
        }
    }

    private void Drop(IPEndPoint remote, string reason)
    {
        Interlocked.Increment(ref _dropped);
        Log.Dropped(_logger, remote, reason);
    }

    private static bool IsWildcard(IPAddress address) => address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);

    private sealed class Binding(Socket socket, IPEndPoint localEndPoint)
    {
        public Socket Socket { get; } = socket;

        public IPEndPoint LocalEndPoint { get; } = localEndPoint;

        public Task Loop { get; private set; } = Task.CompletedTask;

        public void Start(ControlEndpoint owner) => Loop = Task.Run(() => owner.ReceiveLoopAsync(this));
    }

    private static partial class Log
    {
        [LoggerMessage(2001, LogLevel.Information, "Control endpoint listening on {EndPoint}.")]
        public static partial void Bound(ILogger logger, IPEndPoint endPoint);

        [LoggerMessage(2002, LogLevel.Information, "Control endpoint closed on {EndPoint}.")]
        public static partial void Unbound(ILogger logger, IPEndPoint endPoint);

        [LoggerMessage(2003, LogLevel.Warning, "Could not bind the control endpoint to {EndPoint}: {Error}.")]
        public static partial void BindFailed(ILogger logger, IPEndPoint endPoint, string error);

        [LoggerMessage(2004, LogLevel.Debug, "Dropped a control datagram from {Remote}: {Reason}.")]
        public static partial void Dropped(ILogger logger, IPEndPoint remote, string reason);

        [LoggerMessage(2005, LogLevel.Debug, "Answered a challenge from {Remote} (challenger {Challenger}).")]
        public static partial void Answered(ILogger logger, IPEndPoint remote, string challenger);

        [LoggerMessage(2006, LogLevel.Debug, "Accepted a challenge response from {Remote} ({Responder}).")]
        public static partial void ResponseAccepted(ILogger logger, IPEndPoint remote, string responder);

        [LoggerMessage(2007, LogLevel.Debug, "Receive error on {EndPoint}: {Error}.")]
        public static partial void ReceiveError(ILogger logger, IPEndPoint endPoint, string error);

        [LoggerMessage(2008, LogLevel.Debug, "Could not send to {Remote}: {Error}.")]
        public static partial void SendError(ILogger logger, IPEndPoint remote, string error);
    }
}
